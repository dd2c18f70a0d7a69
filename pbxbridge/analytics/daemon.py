"""Speech analytics in the daemon: each call checked as its transcript is stored; re-check jobs run.

A checklist changed (in the web app or with ``pbxbridge checklist set``) queues a
re-check job in the database; the daemon finds it within ``POLL_S`` and runs it
in chunks, between the call writer's turns, keeping its progress in the job row.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING

from sqlalchemy import select

from pbxbridge.analytics.kpi import feed_kpi_store
from pbxbridge.analytics.store import check_recording, next_queued_job, requeue_interrupted, run_recheck
from pbxbridge.calls.tables import Recording
from pbxbridge.kpi.definitions import KpiSettings

if TYPE_CHECKING:
    from pbxbridge.hub import Hub

log = logging.getLogger(__name__)

# How often the daemon looks for a re-check job someone queued.
POLL_S = 5.0


class Analyst:
    """Checks calls as transcripts arrive and runs the queued re-checks, one at a time."""

    def __init__(self, hub: Hub, poll_s: float = POLL_S) -> None:
        self.hub = hub
        self.poll_s = poll_s
        self.jobs_run = 0
        self.kpi_settings = KpiSettings.from_config(hub.config)
        self._task: asyncio.Task[None] | None = None

    async def transcript_ready(self, recording_id: int) -> None:
        assert self.hub.sessions is not None
        await check_recording(
            self.hub.sessions, recording_id, turn=self.hub.database_turn, write_factory=self.hub.write_sessions
        )
        async with self.hub.sessions() as session:
            call_id = await session.scalar(select(Recording.call_id).where(Recording.id == recording_id))
        if call_id is not None:
            await self.feed_kpis([call_id])

    async def feed_kpis(self, call_ids: list[int] | None) -> None:
        """The KPI store's speech figures follow the checks just written (None: every call's)."""
        assert self.hub.sessions is not None
        write = self.hub.write_sessions or self.hub.sessions
        async with self.hub.database_turn(), write() as session, session.begin():
            await feed_kpi_store(session, self.kpi_settings, call_ids)

    async def start(self) -> None:
        if self.hub.sessions is not None:
            write = self.hub.write_sessions or self.hub.sessions
            async with self.hub.database_turn(), write() as session, session.begin():
                await requeue_interrupted(session)
            self._task = asyncio.create_task(self._run_jobs(), name="analytics-rechecks")

    async def _run_jobs(self) -> None:
        assert self.hub.sessions is not None
        while True:
            try:
                async with self.hub.sessions() as session:
                    job_id = await next_queued_job(session)
                if job_id is not None:
                    log.info("analytics: re-checking past calls (job %d)", job_id)
                    counts = await run_recheck(
                        self.hub.sessions, job_id, turn=self.hub.database_turn, write_factory=self.hub.write_sessions
                    )
                    await self.feed_kpis(None)
                    self.jobs_run += 1
                    log.info("analytics: job %d done: %d calls, %d checks", job_id, counts.calls, counts.checks)
                    continue
            except asyncio.CancelledError:
                raise
            except Exception:
                # The job row says failed and why; the next one is still run.
                log.exception("analytics: re-check failed")
            await asyncio.sleep(self.poll_s)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None


def attach(hub: Hub) -> Analyst:
    """Check each call when its transcript is stored; run re-checks in the background (live only)."""
    analyst = Analyst(hub)
    hub.on_transcript_ready(analyst.transcript_ready)
    hub.add_component(analyst, serving=True)
    return analyst
