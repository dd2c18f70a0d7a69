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

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from typing import Any

from aiohttp import web

from pbxbridge.web.audit import anonymous_entry
from pbxbridge.web.bursts import WINDOW_S, Bursts, summed_up
from pbxbridge.web.context import CONTEXT, WebContext, write_session
from pbxbridge.web.tables import AuditEntry

log = logging.getLogger(__name__)

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


def _entry(refusal: Refusal, at: float, **more: Any) -> AuditEntry:
    return anonymous_entry(
        datetime.fromtimestamp(at, UTC), refusal.username, refusal.action, refusal.address, refusal.target,
        role=refusal.role, reason=refusal.reason, **refusal.details, **more,
    )


class RefusalLog(Bursts[tuple[str, str, str, str, str, str], Refusal]):
    """Decides which refusals become audit entries now and which are summed up later."""

    def __init__(self, window_s: float = WINDOW_S, clock: Callable[[], float] = time.time) -> None:
        super().__init__(_entry, lambda burst: _entry(burst.first, burst.last_at, **burst.counted()),
                         window_s, clock, max_open=MAX_BURSTS)

    def note(self, refusal: Refusal) -> list[AuditEntry]:
        """The entries to write for this refusal (and for bursts whose minute is over)."""
        return self.add(refusal.key(), refusal, refusal.at, refusal.target)


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


def install(app: web.Application, refusals: RefusalLog | None = None) -> None:
    """Give the app its refusal log, summed up every half window and when the app stops."""
    context = app[CONTEXT]
    app[REFUSALS] = refusals = refusals or RefusalLog(clock=context.clock)
    app.cleanup_ctx.append(summed_up(refusals, partial(write, context), "pbxbridge-refusal-summaries"))
