"""What a recording file holds: format, channels, sample rate, duration, size."""

from __future__ import annotations

import wave
from dataclasses import dataclass
from pathlib import Path


class RecordingError(Exception):
    """A recording cannot be read; the message says why, for a sales head to read."""


class RecordingMissing(RecordingError):
    """The file is not there."""


class RecordingEmpty(RecordingError):
    """The file has no bytes at all."""


class RecordingCorrupt(RecordingError):
    """The file is not a readable audio file."""


class RecordingSilent(RecordingError):
    """A valid audio file holding 0 seconds of sound (e.g. a header-only WAV)."""


@dataclass(frozen=True, slots=True)
class AudioInfo:
    """Technical facts about one recording file."""

    format: str
    channels: int
    sample_rate: int
    duration_s: float
    size_bytes: int


def _wav_info(path: Path, size: int) -> AudioInfo:
    try:
        with wave.open(str(path), "rb") as wav:
            channels = wav.getnchannels()
            rate = wav.getframerate()
            frames = wav.getnframes()
            width = wav.getsampwidth()
    except (wave.Error, EOFError) as exc:
        raise RecordingCorrupt(f"{path}: corrupt WAV file ({exc})") from exc
    if rate <= 0 or channels <= 0:
        raise RecordingCorrupt(f"{path}: corrupt WAV header (rate {rate}, channels {channels})")
    # A header that claims more frames than the file holds (a recording cut
    # short), or none at all (a header not yet finalised), happens when the
    # PBX is stopped mid-call: trust the bytes actually present.
    present = max(0, size - 44) // max(1, channels * width)
    frames = min(frames, present) if frames else present
    return AudioInfo("wav", channels, rate, frames / rate, size)


def _av_info(path: Path, size: int) -> AudioInfo:
    import av  # only for non-WAV formats; the stdlib reads WAV

    try:
        with av.open(str(path)) as container:
            streams = container.streams.audio
            if not streams:
                raise RecordingCorrupt(f"{path}: no audio stream in the file")
            stream = streams[0]
            rate = stream.codec_context.sample_rate or stream.rate or 0
            channels = stream.codec_context.channels or 0
            if container.duration is not None:
                duration = container.duration / 1_000_000
            elif stream.duration is not None and stream.time_base is not None:
                duration = float(stream.duration * stream.time_base)
            else:
                duration = 0.0
            fmt = (container.format.name or path.suffix.lstrip(".")).split(",")[0]
    except av.error.FFmpegError as exc:
        raise RecordingCorrupt(f"{path}: corrupt or unknown audio file ({exc})") from exc
    return AudioInfo(fmt, channels, rate, duration, size)


def read_info(path: str | Path) -> AudioInfo:
    """Read a recording's facts; raise a RecordingError saying what is wrong with it."""
    path = Path(path)
    if not path.exists():
        raise RecordingMissing(f"{path}: recording file not found")
    if not path.is_file():
        raise RecordingMissing(f"{path}: not a regular file")
    size = path.stat().st_size
    if size == 0:
        raise RecordingEmpty(f"{path}: recording file is empty (0 bytes)")
    with path.open("rb") as fh:
        head = fh.read(12)
    if head[:4] == b"RIFF" and head[8:12] == b"WAVE":
        info = _wav_info(path, size)
    elif path.suffix.lower() == ".wav":
        raise RecordingCorrupt(f"{path}: corrupt WAV file (no RIFF/WAVE header)")
    else:
        info = _av_info(path, size)
    if info.duration_s <= 0:
        raise RecordingSilent(f"{path}: recording holds 0 seconds of audio (header only)")
    return info
