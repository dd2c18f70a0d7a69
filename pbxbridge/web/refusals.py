"""Refused requests and sign-ins in the audit log, without letting a burst flood it.

The first refusal of a kind (same action, reason, person and address; for a signed-in
person also the same method and path) is written at once, so whoever reads the log sees
it straight away. Further ones in the next minute are counted, not written; when the
minute is over one more entry says how many there were, from when to when, and a few of
the addresses asked for. A page that keeps polling after its session ended, or a scanner
trying a thousand paths, costs two rows a minute instead of thousands, and nothing is
lost: the count is written even when the daemon stops before the minute ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from pbxbridge.web.audit import anonymous_entry
from pbxbridge.web.context import CONTEXT, WebContext, write_session
from pbxbridge.web.tables import AuditEntry

log = logging.getLogger(__name__)

WINDOW_S = 60.0
# Distinct paths kept in a summary, as examples of what was asked for.
MAX_SAMPLES = 5
# Bursts followed at once; past this the oldest are summed up early (memory stays bounded).
MAX_BURSTS = 10_000


@dataclass(frozen=True, slots=True)
class Refusal:
    """One refused request or sign-in, as the audit log will show it."""

    at: float
    action: str
    reason: str
    username: str
    role: str
    address: str
    target: str
    details: dict[str, Any] = field(default_factory=dict)

    def key(self) -> tuple[str, str, str, str, str, str]:
        # A signed-in person refused at three colleagues' calls did three things worth seeing; a
        # stranger's refusals are one burst whatever they ask for (a scanner tries a thousand paths).
        what = self.target if self.role else ""
        return (self.action, self.reason, self.username.lower(), self.role, self.address, what)


@dataclass(slots=True)
class _Burst:
    first: Refusal
    last_at: float
    held: int = 0
    targets: list[str] = field(default_factory=list)


def _iso(unix: float) -> str:
    return datetime.fromtimestamp(unix, UTC).isoformat().replace("+00:00", "Z")


def _entry(refusal: Refusal, at: float, **more: Any) -> AuditEntry:
    return anonymous_entry(
        datetime.fromtimestamp(at, UTC), refusal.username, refusal.action, refusal.address, refusal.target,
        role=refusal.role, reason=refusal.reason, **refusal.details, **more,
    )


class RefusalLog:
    """Decides which refusals become audit entries now and which are summed up later."""

    def __init__(self, window_s: float = WINDOW_S, clock: Callable[[], float] = time.time) -> None:
        self.window_s = window_s
        self.clock = clock
        self._bursts: dict[tuple[str, str, str, str, str, str], _Burst] = {}

    def note(self, refusal: Refusal) -> list[AuditEntry]:
        """The entries to write for this refusal (and for bursts whose minute is over)."""
        out = self.due(refusal.at)
        burst = self._bursts.get(refusal.key())
        if burst is None:
            self._bursts[refusal.key()] = _Burst(refusal, refusal.at)
            out.append(_entry(refusal, refusal.at))
            if len(self._bursts) > MAX_BURSTS:
                out.extend(self._close(sorted(self._bursts, key=lambda k: self._bursts[k].first.at)[: MAX_BURSTS // 2]))
        else:
            burst.held += 1
            burst.last_at = max(burst.last_at, refusal.at)
            if refusal.target not in burst.targets and len(burst.targets) < MAX_SAMPLES:
                burst.targets.append(refusal.target)
        return out

    def due(self, now: float | None = None) -> list[AuditEntry]:
        """Summaries of the bursts whose window is over."""
        now = self.clock() if now is None else now
        return self._close([k for k, b in self._bursts.items() if now - b.first.at >= self.window_s])

    def drain(self) -> list[AuditEntry]:
        """Summaries of every burst still open (the daemon is stopping)."""
        return self._close(list(self._bursts))

    def _close(self, keys: list[tuple[str, str, str, str, str, str]]) -> list[AuditEntry]:
        out = []
        for key in keys:
            burst = self._bursts.pop(key)
            if burst.held:
                out.append(_entry(burst.first, burst.last_at, repeated=burst.held, since=_iso(burst.first.at),
                                  until=_iso(burst.last_at), targets=burst.targets))
        return out


REFUSALS: web.AppKey[RefusalLog] = web.AppKey("pbxbridge_refusals", RefusalLog)


async def write(context: WebContext, entries: list[AuditEntry]) -> None:
    """Add entries to the log. A failure is logged, never passed on: the refusal itself stands."""
    if not entries:
        return
    try:
        async with write_session(context) as db:
            db.add_all(entries)
    except Exception:
        log.exception("could not write %d refusal(s) to the audit log", len(entries))


async def note(request: web.Request, refusal: Refusal) -> None:
    """Write what this refusal calls for now."""
    refusals = request.app.get(REFUSALS)
    if refusals is not None:
        await write(request.app[CONTEXT], refusals.note(refusal))


async def _flushing(app: web.Application) -> AsyncIterator[None]:
    refusals, context = app[REFUSALS], app[CONTEXT]

    async def every_window() -> None:
        while True:
            await asyncio.sleep(refusals.window_s / 2)
            await write(context, refusals.due())

    task = asyncio.create_task(every_window(), name="pbxbridge-refusal-summaries")
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await write(context, refusals.drain())


def install(app: web.Application, refusals: RefusalLog | None = None) -> None:
    """Give the app its refusal log, summed up every half window and when the app stops."""
    app[REFUSALS] = refusals or RefusalLog(clock=app[CONTEXT].clock)
    app.cleanup_ctx.append(_flushing)
