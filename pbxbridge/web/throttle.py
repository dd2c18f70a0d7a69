"""Sign-in throttling per username and address: each failure doubles the wait."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

# A few typos are free; after that the wait doubles with each failure.
FREE_FAILURES = 3
BASE_DELAY_S = 1.0
MAX_DELAY_S = 900.0
# Entries untouched this long are forgotten, so the table cannot grow without end.
FORGET_AFTER_S = 24 * 3600.0
MAX_ENTRIES = 100_000


@dataclass(slots=True)
class _Failures:
    count: int
    last_at: float
    blocked_until: float


class LoginThrottle:
    """Remembers failed sign-ins by (username, address) and says how long to wait."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._failures: dict[tuple[str, str], _Failures] = {}

    def retry_after(self, username: str, address: str) -> float:
        """Seconds until this pair may try again (0: now)."""
        entry = self._failures.get((username.lower(), address))
        if entry is None:
            return 0.0
        return max(0.0, entry.blocked_until - self._clock())

    def failed(self, username: str, address: str) -> float:
        """Note a failure; return the wait it brings."""
        now = self._clock()
        key = (username.lower(), address)
        entry = self._failures.get(key)
        if entry is None or now - entry.last_at > FORGET_AFTER_S:
            entry = _Failures(0, now, now)
        entry.count += 1
        entry.last_at = now
        delay = 0.0
        if entry.count >= FREE_FAILURES:
            delay = min(MAX_DELAY_S, BASE_DELAY_S * 2 ** (entry.count - FREE_FAILURES))
        entry.blocked_until = now + delay
        self._failures[key] = entry
        if len(self._failures) > MAX_ENTRIES:
            self._prune(now)
        return delay

    def succeeded(self, username: str, address: str) -> None:
        """A correct password clears the pair's failures."""
        self._failures.pop((username.lower(), address), None)

    def _prune(self, now: float) -> None:
        stale = [k for k, v in self._failures.items() if now - v.last_at > FORGET_AFTER_S]
        for key in stale:
            del self._failures[key]
        if len(self._failures) > MAX_ENTRIES:
            oldest = sorted(self._failures, key=lambda k: self._failures[k].last_at)
            for key in oldest[: len(self._failures) - MAX_ENTRIES]:
                del self._failures[key]
