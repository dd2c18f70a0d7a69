"""The kinds of sound file a call can hold, and the root each is found under."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path

from pbxbridge.config import RecordingsConfig


class RecordingKind(StrEnum):
    # The conversation, recorded by MixMonitor, under the recordings root.
    CALL = "call"
    # A message the caller left when nobody answered, under the voicemail root.
    VOICEMAIL = "voicemail"


def kind_root(kind: str, recordings: RecordingsConfig) -> Path:
    """The directory a recording of this kind is stored relative to."""
    if kind == RecordingKind.VOICEMAIL:
        return Path(recordings.voicemail_root)
    return Path(recordings.root)
