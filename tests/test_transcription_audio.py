"""Reading recordings' format, channels, rate and duration; clear errors for broken files."""

from __future__ import annotations

import shutil
from pathlib import Path

import av
import pytest

from pbxbridge.recordings.audio import (
    RecordingCorrupt,
    RecordingEmpty,
    RecordingMissing,
    RecordingSilent,
    read_info,
)
from tests.fixtures_transcription import speech_recordings, stereo_recording


def test_mixmonitor_wav_is_8khz_mono_with_duration_from_its_size() -> None:
    path = speech_recordings()[0].path
    info = read_info(path)
    assert (info.format, info.channels, info.sample_rate) == ("wav", 1, 8000)
    assert info.size_bytes == path.stat().st_size
    # 16-bit mono at 8 kHz: 16000 bytes a second after the 44-byte header.
    assert info.duration_s == pytest.approx((path.stat().st_size - 44) / 16000, abs=0.01)


def test_stereo_recording_has_two_channels() -> None:
    info = read_info(stereo_recording())
    assert info.channels == 2
    assert info.duration_s > 20


def test_non_wav_recording_is_read_through_av(tmp_path: Path) -> None:
    source = speech_recordings()[0].path
    target = tmp_path / "call.flac"
    # Convert a real recording, as a PBX set to record FLAC/Ogg would write it.
    with av.open(str(source)) as src, av.open(str(target), "w") as dst:
        out = dst.add_stream("flac", rate=8000, layout="mono")
        for frame in src.decode(audio=0):
            for packet in out.encode(frame):
                dst.mux(packet)
        for packet in out.encode(None):
            dst.mux(packet)
    info = read_info(target)
    assert (info.format, info.channels, info.sample_rate) == ("flac", 1, 8000)
    assert info.duration_s == pytest.approx(read_info(source).duration_s, abs=0.1)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(RecordingMissing, match="not found"):
        read_info(tmp_path / "gone.wav")


def test_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.wav"
    path.touch()
    with pytest.raises(RecordingEmpty, match="empty"):
        read_info(path)


def test_header_only_wav_is_a_zero_second_recording(tmp_path: Path) -> None:
    # What MixMonitor(…,b) leaves for a call nobody answered: the real 44-byte file.
    header_only = next(p for p in (stereo_recording().parent.parent / "recordings").rglob("*.wav") if p.stat().st_size == 44)
    with pytest.raises(RecordingSilent, match="0 seconds"):
        read_info(header_only)


def test_corrupt_wav(tmp_path: Path) -> None:
    path = tmp_path / "corrupt.wav"
    path.write_bytes(b"this is not audio at all, just a text file renamed" * 20)
    with pytest.raises(RecordingCorrupt, match="corrupt"):
        read_info(path)


def test_corrupt_non_wav(tmp_path: Path) -> None:
    path = tmp_path / "corrupt.mp3"
    path.write_bytes(bytes(range(256)) * 8)
    with pytest.raises(RecordingCorrupt):
        read_info(path)


def test_truncated_wav_reports_the_audio_actually_present(tmp_path: Path) -> None:
    source = speech_recordings()[0].path
    path = tmp_path / "cut.wav"
    shutil.copy(source, path)
    with path.open("r+b") as fh:
        fh.truncate(44 + 16000 * 3)  # the PBX stopped 3 s into the call
    assert read_info(path).duration_s == pytest.approx(3.0, abs=0.01)
