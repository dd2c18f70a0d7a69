"""The call tracker: AMI events in, finished calls out.  (Interface; body in progress.)"""

from __future__ import annotations

from dataclasses import dataclass

from pbxbridge.ami.frames import Frame
from pbxbridge.calls.model import FinishedCall


@dataclass(frozen=True, slots=True)
class TrackerSettings:
    pbx: str = "main"
    # Contexts in which a call from outside (a trunk) starts: FreePBX's defaults.
    inbound_contexts: tuple[str, ...] = ("from-trunk", "from-pstn", "from-did-direct", "ext-did", "from-sip-external")
    # Extensions of managers' handsets; client numbers are longer.
    extension_pattern: str = r"^\d{2,5}$"


class CallTracker:
    """Pure: no I/O, no clock; feed it events with the time they were received."""

    def __init__(self, settings: TrackerSettings | None = None) -> None:
        self.settings = settings or TrackerSettings()

    def feed(self, event: Frame, received_at: float) -> list[FinishedCall]:
        """Take one AMI event; return the calls it finished (usually none)."""
        return []

    def reconcile(self, live_linkedids: set[str], now: float) -> list[FinishedCall]:
        """Close calls Asterisk no longer has (after a restart or reconnect)."""
        return []

    def active_linkedids(self) -> set[str]:
        return set()
