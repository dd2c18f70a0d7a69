"""Repeated events in the audit log, a minute at a time: the first of a kind is written at once, the
rest of its minute counted; when the minute is over one more entry says how many there were, from
when to when, and a few of the addresses asked for. Refused requests and API token uses both read so.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Hashable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Generic, TypeVar

from aiohttp import web

from pbxbridge.web.tables import AuditEntry

WINDOW_S = 60.0
# Distinct targets kept in a summary, as examples of what was asked for.
MAX_SAMPLES = 5

K = TypeVar("K", bound=Hashable)
T = TypeVar("T")


def _iso(unix: float) -> str:
    return datetime.fromtimestamp(unix, UTC).isoformat().replace("+00:00", "Z")


@dataclass(slots=True)
class Burst(Generic[T]):
    """The first event of a kind this minute, and what followed it."""

    first: T
    first_at: float
    last_at: float
    held: int = 0
    targets: list[str] = field(default_factory=list)

    def counted(self) -> dict[str, Any]:
        """The summary's details: how many more, from when to when, a few targets."""
        return {"repeated": self.held, "since": _iso(self.first_at), "until": _iso(self.last_at),
                "targets": self.targets}


class Bursts(Generic[K, T]):
    """Which events become audit entries now (``first``), and which are summed up when their minute ends."""

    def __init__(
        self,
        first: Callable[[T, float], AuditEntry],
        summary: Callable[[Burst[T]], AuditEntry],
        window_s: float,
        clock: Callable[[], float],
        max_open: int | None = None,
    ) -> None:
        self.window_s = window_s
        self.clock = clock
        self._first = first
        self._summary = summary
        # Past this many kinds followed at once the oldest half is summed up early (memory stays bounded).
        self._max_open = max_open
        self._open: dict[K, Burst[T]] = {}

    def is_open(self, key: K) -> bool:
        """Whether this kind's minute has begun (its first event is written already)."""
        return key in self._open

    def add(self, key: K, event: T, at: float, target: str) -> list[AuditEntry]:
        """Entries to write for this event (the first of its minute), and for minutes now over."""
        out = self.due(at)
        burst = self._open.get(key)
        if burst is None:
            self._open[key] = Burst(event, at, at)
            out.append(self._first(event, at))
            if self._max_open is not None and len(self._open) > self._max_open:
                oldest = sorted(self._open, key=lambda k: self._open[k].first_at)
                out.extend(self._close(oldest[: self._max_open // 2]))
        else:
            burst.held += 1
            burst.last_at = max(burst.last_at, at)
            if target not in burst.targets and len(burst.targets) < MAX_SAMPLES:
                burst.targets.append(target)
        return out

    def due(self, now: float | None = None) -> list[AuditEntry]:
        """Summaries of the minutes that are over."""
        now = self.clock() if now is None else now
        return self._close([k for k, b in self._open.items() if now - b.first_at >= self.window_s])

    def drain(self) -> list[AuditEntry]:
        """Summaries of every open minute (the app is stopping)."""
        return self._close(list(self._open))

    def _close(self, keys: list[K]) -> list[AuditEntry]:
        out = []
        for key in keys:
            burst = self._open.pop(key)
            if burst.held:
                out.append(self._summary(burst))
        return out


def summed_up(
    bursts: Bursts[Any, Any], write: Callable[[list[AuditEntry]], Awaitable[None]], name: str
) -> Callable[[web.Application], AsyncIterator[None]]:
    """An app cleanup context writing the summaries due every half window, and every one left when the app stops."""

    async def flushing(app: web.Application) -> AsyncIterator[None]:
        async def every_window() -> None:
            while True:
                await asyncio.sleep(bursts.window_s / 2)
                await write(bursts.due())

        task = asyncio.create_task(every_window(), name=name)
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            await write(bursts.drain())

    return flushing
