"""The composition root: builds the daemon's parts, attaches the domains, starts and stops them in order.

Start: database schema -> call writer (``calls.pipeline``) -> attached
components (web, workers) -> one call tracker per PBX, given back the calls
that were in progress when the daemon last stopped (``calls.in_progress``)
-> one AMI listener per PBX (``calls.following``). Stop runs the other way
round, writing every call already finished and saving those still in
progress before the database is let go. Under systemd the daemon reports
through ``service.notify``.

Domains never see this module: each is given the ``Hub`` (pbxbridge.hub) by
its ``attach(hub)`` and takes part through it alone.

``Daemon(config, live=False)`` is the same pipeline fed from captured streams
(``pbxbridge replay``, ``pbxbridge.calls.replay.replay_into``): the same writer,
hooks, call subscribers and flushers, and the components that follow the
journal; no listener, no saved calls in progress, no systemd, and none of the
components that serve the world outside.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import logging
import time
from collections.abc import Iterable
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from sqlalchemy.orm import configure_mappers

from pbxbridge.ami.interest import EventInterest
from pbxbridge.ami.listener import AmiListener
from pbxbridge.calls.following import PbxFollower, PbxLink
from pbxbridge.calls.in_progress import SAVE_INTERVAL_S, InProgressSaver
from pbxbridge.calls.open_calls import OpenCallStore, forget_written
from pbxbridge.calls.pipeline import CallPipeline, CallStats
from pbxbridge.calls.store import AfterWrite, CallWriter
from pbxbridge.calls.tracker import TRACKER_VARIABLES
from pbxbridge.config import Config
from pbxbridge.db.engine import (
    can_run_inline,
    make_engine,
    session_factory,
    upgrade_async,
)
from pbxbridge.hub import CallSubscriber, Component, EventSubscriber, Hub
from pbxbridge.service import logging as service_logging
from pbxbridge.service import systemd
from pbxbridge.service.notify import ServiceNotifier, tell

log = logging.getLogger(__name__)

# Modules that may attach a domain's parts: each has ``attach(hub)``.
DOMAIN_MODULES = (
    "pbxbridge.transcription.daemon",
    "pbxbridge.kpi.daemon",
    "pbxbridge.workflow.daemon",
    "pbxbridge.routing.daemon",
    "pbxbridge.web.daemon",
    "pbxbridge.crm.daemon",
    "pbxbridge.backfill.daemon",
    "pbxbridge.analytics.daemon",
)
# How long stop() waits for finished calls still queued to reach the database.
STOP_FLUSH_TIMEOUT_S = 30.0
# How long stop() may spend saving calls in progress (systemd's TimeoutStopSec is 30 s).
STOP_SAVE_TIMEOUT_S = 10.0


class Daemon:
    """pbxbridge's long-running process: AMI events in, calls in the journal, domains attached."""

    def __init__(
        self,
        config: Config,
        *,
        listener_options: dict[str, Any] | None = None,
        retry_initial_s: float = 0.5,
        save_interval_s: float = SAVE_INTERVAL_S,
        live: bool = True,
    ) -> None:
        self.config = config
        self.live = live
        self.save_interval_s = save_interval_s
        self.hub = Hub(config, live=live, interest=EventInterest(variables=TRACKER_VARIABLES))
        # Asked through the daemon each time, so that what decides health can be looked at (tests wrap it).
        self.notifier = ServiceNotifier(self._listeners, lambda: self.healthy())
        self.pipeline = CallPipeline(
            retry_initial_s=retry_initial_s, on_written=self.hub.call_written, on_status=self.notifier.status
        )
        self.follower = PbxFollower(
            finished=self.pipeline.put,
            seen=self.hub.event_seen,
            connected=self.hub.pbx_connected,
            dropped=self.hub.pbx_dropped,
            interest=self.hub.interest,
            listener_options=listener_options or {},
        )
        self.engine: AsyncEngine | None = None
        self.session_factory: async_sessionmaker[AsyncSession] | None = None
        # For the daemon's own short write transactions (see start()); the web and readers use session_factory.
        self.write_engine: AsyncEngine | None = None
        self.open_calls: OpenCallStore | None = None
        self.saver: InProgressSaver | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._saver_task: asyncio.Task[None] | None = None
        self._started: list[Component] = []

    # -- what domains and tests reach through the daemon -------------------------------

    @property
    def links(self) -> dict[str, PbxLink]:
        return self.follower.links

    @property
    def stats(self) -> CallStats:
        return self.pipeline.stats

    @property
    def interest(self) -> EventInterest:
        return self.hub.interest

    @property
    def after_write(self) -> list[AfterWrite]:
        return self.hub.after_write_hooks

    @property
    def event_subscribers(self) -> list[EventSubscriber]:
        return self.hub.event_subscribers

    @property
    def call_subscribers(self) -> list[CallSubscriber]:
        return self.hub.call_subscribers

    @property
    def components(self) -> list[Component]:
        return self.hub.components

    @property
    def writer(self) -> CallWriter | None:
        return self.pipeline.writer

    @property
    def ready(self) -> bool:
        return self.notifier.ready

    @property
    def calls_pending(self) -> int:
        """Finished calls waiting for the database."""
        return self.pipeline.pending

    def add_component(self, component: Component) -> None:
        """Have ``component`` started with the daemon and stopped before the database."""
        self.hub.add_component(component)

    # -- life cycle ------------------------------------------------------------------------

    async def start(self) -> None:
        """Start everything, in order; on failure stop what was started."""
        # Secrets must be hidden from the very first line that might show them.
        service_logging.install(self.config)
        try:
            url = self.config.database.url
            self.notifier.status("migrating the database")
            await upgrade_async(url)
            # Every domain's tables are imported by now: their mappings are worked out here,
            # once (some 40 ms), rather than by whichever call happens to be written first.
            configure_mappers()
            self.engine = make_engine(url)
            self.session_factory = session_factory(self.engine)
            # The daemon's own writes (journal, saves, KPI) are short transactions:
            # on SQLite they run on the loop, not a thread hop per statement.
            self.write_engine = make_engine(url, inline=True) if can_run_inline(url) else self.engine
            write_sessions = session_factory(self.write_engine)
            self.hub.serve(
                sessions=self.session_factory,
                write_sessions=write_sessions,
                send_action=self.send_action,
                calls_in_progress=self._calls_in_progress,
                pbx_clock=self._pbx_clock,
                calls_up=lambda: sum(link.tracker.active_count() for link in self.links.values()),
                database_turn=self.pipeline.database_turn,
                writer_first=self.pipeline.writer_first,
            )
            self.pipeline.start(CallWriter(write_sessions, self.config, after_write=[*self.after_write, forget_written]))
            for component in self.hub.components:
                if self.live or not any(component is serving for serving in self.hub.serving):
                    await component.start()
                    self._started.append(component)
            if self.live:
                # Calls in progress are a live PBX's: a replay neither takes them back nor saves its own.
                self.open_calls = OpenCallStore(write_sessions)
                await self._follow_pbxes(self.open_calls)
            log.info("pbxbridge daemon started: %s, database %s",
                     f"{len(self.links)} PBX(es)" if self.live else "fed from captured streams",
                     self.engine.url.render_as_string(hide_password=True))
        except BaseException:
            await self.stop()
            raise

    async def _follow_pbxes(self, store: OpenCallStore) -> None:
        """One tracker per PBX, given back its calls in progress; the periodic tasks; one AMI listener per PBX."""
        self.saver = InProgressSaver(store, self.pipeline, self.links)
        for pbx in self.config.pbx:
            link = self.links[pbx.name] = PbxLink.for_pbx(pbx)
            await self.saver.restore(link)
        self._saver_task = asyncio.create_task(self.saver.save_periodically(self.save_interval_s), name="open-call-saver")
        self._tasks.append(self._saver_task)
        self._tasks.append(asyncio.create_task(self.follower.release_held_periodically(), name="held-call-release"))
        self._tasks.append(asyncio.create_task(self.notifier.announce_ready(), name="sd-notify-ready"))
        interval = systemd.watchdog_interval()
        if interval:
            self._tasks.append(asyncio.create_task(self.notifier.watchdog(interval), name="sd-watchdog"))
        for link in self.links.values():
            await self.follower.listen(link, self.notifier.listener_changed).start()

    async def stop(self) -> None:
        """Stop listening, write what is queued, save calls in progress, stop components, close the database."""
        if self.live:
            tell(systemd.stopping)
        for link in self.links.values():
            if link.listener is not None:
                await link.listener.stop()
        for task in self._tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()
        await self.pipeline.stop(STOP_FLUSH_TIMEOUT_S)
        if self.saver is not None:
            # What is still in progress now is what the next start takes back.
            try:
                saved = await asyncio.wait_for(self.saver.save(), STOP_SAVE_TIMEOUT_S)
            except TimeoutError:
                saved = False
            if not saved:
                log.error("calls in progress could not be saved: the database is unreachable")
        self.hub.cancel_tasks()
        while self._started:
            component = self._started.pop()
            try:
                await component.stop()
            except Exception:
                log.exception("stopping %r failed", component)
        if self.write_engine is not None and self.write_engine is not self.engine:
            await self.write_engine.dispose()
        self.write_engine = None
        if self.engine is not None:
            await self.engine.dispose()
            self.engine = None
        log.info("pbxbridge daemon stopped")

    async def flush(self) -> None:
        """Wait until every call finished so far is in the journal (or set aside), and what follows it is done."""
        await self.flush_journal()
        for flusher in self.hub.flushers:
            await flusher()

    async def flush_journal(self) -> None:
        """Wait until every call finished so far is in the journal (or set aside)."""
        await self.pipeline.flush()

    async def save_open_calls(self) -> bool:
        """Save every PBX's changed calls in progress now; False if the database refused."""
        return await self.saver.save() if self.saver is not None else True

    # -- services --------------------------------------------------------------------------

    async def send_action(self, pbx: str, action: dict[str, str], as_list: bool | None = None) -> Any:
        """Send an AMI action (an Originate for click-to-call) over that PBX's session."""
        link = self.links.get(pbx)
        if link is None or link.listener is None:
            raise KeyError(f"no PBX named {pbx!r}")
        return await link.listener.send_action(action, as_list=as_list)

    def database_turn(self) -> contextlib.AbstractAsyncContextManager[None]:
        return self.pipeline.database_turn()

    async def writer_first(self, until: float) -> None:
        await self.pipeline.writer_first(until)

    def healthy(self) -> bool:
        """Whether the call writer and the saver run, and no database write is stuck."""
        if not self.pipeline.running:
            return False
        if self.live and (self._saver_task is None or self._saver_task.done()):
            return False
        interval = systemd.watchdog_interval() or SAVE_INTERVAL_S
        # A write may wait out a lock or an outage between attempts (that is
        # healthy: a restart would not help); one attempt hanging is not.
        began = self.pipeline.busy_since
        return began is None or time.monotonic() - began < 2 * interval

    def _listeners(self) -> Iterable[tuple[str, AmiListener | None]]:
        return [(name, link.listener) for name, link in self.links.items()]

    def _pbx_clock(self, pbx: str) -> float | None:
        link = self.links.get(pbx)
        return link.last_event_at if link is not None else None

    def _calls_in_progress(self) -> list[dict[str, Any]]:
        return [call for link in self.links.values() for call in link.tracker.active_calls()]


def attach_domains(daemon: Daemon, modules: tuple[str, ...] = DOMAIN_MODULES) -> list[str]:
    """The one plugin loader: each installed domain attaches its parts to the hub; returns those that did."""
    attached: list[str] = []
    for name in modules:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name == name:
                continue
            raise
        module.attach(daemon.hub)
        attached.append(name)
    return attached
