"""Find a MixMonitor file under the recordings root and tell a recording from an empty header."""

from __future__ import annotations

import os
import re
import wave
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path, PurePosixPath

# A canonical WAV header; MixMonitor with option 'b' leaves just this behind
# when nobody answered.
WAV_HEADER_BYTES = 44
_DATED_TAIL = re.compile(r"(\d{4}/\d{2}/\d{2}/[^/]+)$")


class RecordingStatus(StrEnum):
    OK = "ok"
    # The file is there but holds no audio (header only).
    EMPTY = "empty"
    MISSING = "missing"


@dataclass(frozen=True, slots=True)
class LocatedRecording:
    """What was found for one MixMonitor path."""

    pbx_path: str
    # Relative to the recordings root, '/'-separated; None when not found.
    path: str | None
    status: RecordingStatus
    format: str | None = None
    channels: int | None = None
    sample_rate: int | None = None
    duration_s: float | None = None
    size_bytes: int | None = None
    # RecordingKind: "call" (MixMonitor) or "voicemail" (a message the caller left).
    kind: str = "call"


def resolve_path(pbx_path: str, root: Path, spool_prefix: str) -> Path | None:
    """The file under root for a path as Asterisk named it on the PBX, or None."""
    pbx = PurePosixPath(pbx_path)
    prefix = PurePosixPath(spool_prefix) if spool_prefix else None
    candidates: list[Path] = []
    if prefix is not None and pbx.is_relative_to(prefix):
        candidates.append(root / pbx.relative_to(prefix))
    elif not pbx.is_absolute():
        # CDR(recordingfile) and some dialplans give a path relative to the spool.
        candidates.append(root / pbx)
    # The root may be synced from another spool layout: FreePBX's YYYY/MM/DD/name tail.
    tail = _DATED_TAIL.search(pbx_path)
    if tail:
        candidates.append(root / tail.group(1))
    for candidate in candidates:
        if candidate.is_file() and _inside(candidate, root):
            return candidate
    if pbx.name and pbx.name not in (".", "..") and root.is_dir():
        return _find_by_name(root, pbx.name)
    return None


def _find_by_name(root: Path, name: str) -> Path | None:
    # Exact name comparison, not a glob: a name from the PBX may hold '*' or '['.
    # Dated directories newest first, since a just-finished call's file is recent.
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort(reverse=True)
        if name in filenames:
            return Path(dirpath) / name
    return None


def _inside(path: Path, root: Path) -> bool:
    # A path from the PBX with '..' in it must not reach files outside the root.
    return path.resolve().is_relative_to(root.resolve())


def locate_recording(pbx_path: str, root: Path | str, spool_prefix: str) -> LocatedRecording:
    """Find the file and describe it: ok (has audio), empty (header only) or missing."""
    root = Path(root)
    found = resolve_path(pbx_path, root, spool_prefix)
    if found is None:
        return LocatedRecording(pbx_path=pbx_path, path=None, status=RecordingStatus.MISSING)
    size = found.stat().st_size
    relative = found.relative_to(root).as_posix()
    status = RecordingStatus.OK if size > WAV_HEADER_BYTES else RecordingStatus.EMPTY
    fmt = found.suffix.lstrip(".").lower() or None
    channels = sample_rate = None
    duration = None
    if fmt == "wav":
        try:
            with wave.open(str(found), "rb") as wav:
                channels = wav.getnchannels()
                sample_rate = wav.getframerate()
                frame_bytes = channels * wav.getsampwidth()
                frames = wav.getnframes()
        except (wave.Error, EOFError, OSError):
            frames = 0
            frame_bytes = 0
        if sample_rate and frame_bytes:
            # A file cut short (PBX crash) has a header that says 0 frames; trust the size.
            frames = frames or max(0, size - WAV_HEADER_BYTES) // frame_bytes
            duration = round(frames / sample_rate, 3)
    return LocatedRecording(
        pbx_path=pbx_path,
        path=relative,
        status=status,
        format=fmt,
        channels=channels,
        sample_rate=sample_rate,
        duration_s=duration,
        size_bytes=size,
    )
