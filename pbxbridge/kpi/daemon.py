"""KPIs in the daemon: figures following the journal, live gauges, and lead-at-risk alerts polled on the PBX's clock."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import TYPE_CHECKING, Any

from pbxbridge.ami.frames import Frame
from pbxbridge.hub import METRICS_TEXT
from pbxbridge.kpi.alerts import LeadAtRisk
from pbxbridge.kpi.follower import KpiFollower
from pbxbridge.kpi.live import QUEUE_EVENTS, LiveLine
from pbxbridge.kpi.service import KpiService

if TYPE_CHECKING:
    from pbxbridge.hub import Hub

log = logging.getLogger(__name__)

# Gauges and alerts are refreshed this often; a callback window is minutes long.
POLL_S = 5.0
# How long a stop may spend folding the last calls into the figures (the next start does the rest).
STOP_APPLY_TIMEOUT_S = 5.0
# How long the PBX may take to list its queues after a login (it also bounds the queue
# events kept meanwhile).
QUEUE_STATUS_TIMEOUT_S = 30.0


class KpiComponent:
    """Started after the database: reopens pending callback windows, follows the journal, polls gauges and alerts."""

    def __init__(self, hub: Hub, service: KpiService, poll_s: float = POLL_S) -> None:
        self.hub = hub
        self.service = service
        self.poll_s = poll_s
        self.follower = KpiFollower(service, hub.database_turn, hub.writer_first)
        self.line = LiveLine()
        # Waiting callers taken from a QueueStatus answer, all PBXs together (tests wait on it).
        self.queue_lists = 0
        self._task: asyncio.Task[None] | None = None
        # Per PBX: the QueueStatus being asked after its login, and the queue events received meanwhile.
        self._asking: dict[str, asyncio.Task[None]] = {}
        self._since_asked: dict[str, list[Frame]] = {}

    def on_event(self, pbx: str, event: Frame) -> None:
        """Daemon event subscriber: keep the queue waiters and the PBX's clock."""
        self.line.feed(pbx, event, time.monotonic(), self.hub.pbx_clock(pbx))
        if self._since_asked:
            kept = self._since_asked.get(pbx)
            if kept is not None and event.get("Event") in QUEUE_EVENTS:
                kept.append(event)
        if event.get("Event") == "FullyBooted":
            # Asterisk greets every login with FullyBooted: a new session, whose own list of
            # waiting callers replaces what the last one left behind.
            self._ask_queue_status(pbx)

    def on_connection_lost(self, pbx: str) -> None:
        """Daemon hook: a PBX's AMI session ended; its waiting callers are unknown until it lists them again.

        They may be answered or gone by then, and the events saying so are lost with the
        session: the gauge must not count them meanwhile.
        """
        self._stop_asking(pbx)
        self.line.forget_pbx(pbx)
        self._set_gauges()

    def _ask_queue_status(self, pbx: str) -> None:
        self._stop_asking(pbx)
        self.line.forget_pbx(pbx)
        kept: list[Frame] = []
        self._since_asked[pbx] = kept
        self._asking[pbx] = asyncio.ensure_future(self._read_queue_status(pbx, kept))

    def _stop_asking(self, pbx: str) -> None:
        # An answer asked over a session that has ended (or been replaced) must not land.
        task = self._asking.pop(pbx, None)
        if task is not None:
            task.cancel()
        self._since_asked.pop(pbx, None)

    async def _read_queue_status(self, pbx: str, kept: list[Frame]) -> None:
        try:
            reply = await asyncio.wait_for(
                self.hub.send_action(pbx, {"Action": "QueueStatus"}, as_list=True), QUEUE_STATUS_TIMEOUT_S
            )
            listed = _list_events(reply)
            if listed is None:
                # A PBX without app_queue refuses; its callers are then known from events alone.
                log.info("[%s] QueueStatus refused; callers waiting are counted from events", pbx)
                return
            self.line.rebuild_pbx(pbx, listed, kept)
            self.queue_lists += 1
            self._set_gauges()
        except (OSError, KeyError, TimeoutError) as exc:
            # The session went (or the PBX did not answer): the next login asks again.
            log.warning("[%s] asking the PBX who waits in its queues failed: %r", pbx, exc, extra={"pbx": pbx})
        finally:
            if self._since_asked.get(pbx) is kept:
                del self._since_asked[pbx]
                del self._asking[pbx]

    def _set_gauges(self) -> None:
        self.service.metrics.set_live(self.hub.calls_up(), self.line.callers_waiting)

    async def start(self) -> None:
        """Read open callback windows back from the store, catch up with the journal, start polling."""
        factory = self.hub.write_sessions
        if factory is not None:
            async with factory() as session:
                reopened = await self.service.start(session)
            log.info("KPI: %d missed callers still waiting for a callback", reopened)
            left = await self.follower.start(factory)
            if left:
                log.info("KPI: %d call(s) in the journal not yet in the figures; folding them in", left)
        self._task = asyncio.create_task(self._poll(), name="kpi-poll")

    async def stop(self) -> None:
        """Fold in the last calls written (for a few seconds at most), stop polling and asking."""
        asking = list(self._asking.values())
        for pbx in list(self._asking):
            self._stop_asking(pbx)
        for task in asking:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self.follower.stop(STOP_APPLY_TIMEOUT_S)
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    def tick(self, monotonic: float) -> list[LeadAtRisk]:
        """One poll: set the live gauges, publish the alerts due on the PBX's clock."""
        self._set_gauges()
        now = self.line.clock(monotonic)
        return [] if now is None else self.service.due_alerts(now)

    async def _poll(self) -> None:
        while True:
            try:
                self.tick(time.monotonic())
            except Exception:  # a bad poll must not end the polling
                log.exception("KPI poll failed")
            await asyncio.sleep(self.poll_s)


def _list_events(reply: Any) -> list[Frame] | None:
    """The events of a list action's answer (panoramisk Messages) as frames; None if the PBX refused."""
    items = reply if isinstance(reply, list) else [reply]
    frames = [{str(k): v for k, v in dict(m).items() if isinstance(v, str)} for m in items if m is not None]
    if frames and frames[0].get("Response", "").lower() == "error":
        return None
    return [f for f in frames if "Event" in f]


def log_alert(risk: LeadAtRisk) -> None:
    """Default alert subscriber: a warning in the log a sales head's tooling can pick up."""
    log.warning(
        "lead at risk: client %s missed at %.0f, lost at %.0f unless called back (rang: %s)",
        risk.client_key, risk.missed_at, risk.lost_at, ",".join(risk.rang) or "nobody",
    )


def attach(hub: Hub) -> KpiComponent:
    """Wire the KPI domain in: the journal's hook, the event feed, the component, ``METRICS_TEXT`` for the web app."""
    service = KpiService.from_config(hub.config)
    service.watch.subscribe(log_alert)
    component = KpiComponent(hub, service)
    # The journal's transaction only notes its calls; their figures follow in the KPI's own.
    hub.after_write(component.follower.note_written)
    hub.add_flusher(component.follower.flush)
    hub.on_event(component.on_event)
    hub.on_pbx_dropped(component.on_connection_lost)
    hub.add_component(component)
    hub.provide(METRICS_TEXT, service.metrics_text)
    return component
