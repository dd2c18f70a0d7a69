"""The composition root: builds the daemon's parts and starts them in a fixed order.

Start: database schema -> call writer -> attached components (web, workers)
-> one call tracker per PBX, given back the calls that were in progress when
the daemon last stopped -> one AMI listener per PBX. Stop runs the other way
round, writing every call already finished and saving those still in
progress before the database is let go.

Under systemd (``Type=notify``) the daemon says READY=1 once the schema is
migrated and every PBX's AMI session is logged in, keeps STATUS= up to date,
pings the watchdog while its event loop and call writer are healthy, and says
STOPPING=1 when asked to stop.

Other domains attach without editing this module:

* ``daemon.event_subscribers``: ``fn(pbx, event)`` for every AMI event read,
  after the call tracker has seen it (plain functions are called in stream
  order; a coroutine function's calls are run as tasks); the bulk events no
  part reads (``VarSet`` of other variables, ``CEL``, ``Cdr``: see
  ``pbxbridge.ami.interest``) are skipped unless asked for with
  ``daemon.interest.want_event`` or ``want_variable``;
* ``daemon.call_subscribers``: ``fn(finished_call, call_row)`` once a call is
  in the journal;
* ``daemon.after_write``: ``CallWriter`` hooks, run for each call inside
  the transaction that writes it (calls that finish together share one; a
  hook with a batch form, ``AfterWriteMany``, gets them all at once);
* ``daemon.add_component(obj)``: anything with ``async start()`` and
  ``async stop()`` (started after the database, stopped before it);
* a module ``pbxbridge.<domain>.daemon`` with ``attach(daemon)``, found by
  ``attach_domains``.

``daemon.send_action(pbx, action)`` sends an AMI action (an Originate) over a
PBX's session; ``daemon.links[pbx]`` holds that PBX's tracker and listener.

``Daemon(config, live=False)`` is the same pipeline fed from captured streams
(``pbxbridge replay``, ``pbxbridge.calls.replay.replay_into``) instead of AMI
listeners: the same writer, ``after_write`` hooks, call subscribers and
flushers, and the components that follow the journal; no listener, no saved
calls in progress, no systemd, and none of the components that serve the
world outside (``SERVING_DOMAINS``).
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import inspect
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from sqlalchemy import exc as sa_exc
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from sqlalchemy.orm import configure_mappers

from pbxbridge.ami.frames import Frame
from pbxbridge.ami.interest import EventInterest
from pbxbridge.ami.listener import AmiListener, ListenerState
from pbxbridge.calls.model import FinishedCall
from pbxbridge.calls.open_calls import OpenCallState, OpenCallStore, forget_written
from pbxbridge.calls.replay import tracker_settings
from pbxbridge.calls.store import AfterWrite, CallWriter
from pbxbridge.calls.tables import Call
from pbxbridge.calls.tracker import TRACKER_VARIABLES, CallTracker
from pbxbridge.config import Config, PbxConfig
from pbxbridge.db.engine import (
    can_run_inline,
    make_engine,
    session_factory,
    upgrade_async,
)
from pbxbridge.service import logging as service_logging
from pbxbridge.service import systemd

log = logging.getLogger(__name__)

EventSubscriber = Callable[[str, Frame], Awaitable[None] | None]
CallSubscriber = Callable[[FinishedCall, Call], Awaitable[None] | None]

# Modules that may attach a domain's parts to the daemon: each has ``attach(daemon)``.
DOMAIN_MODULES = (
    "pbxbridge.transcription.daemon",
    "pbxbridge.kpi.daemon",
    "pbxbridge.routing.daemon",
    "pbxbridge.web.daemon",
)
# Domains whose components serve the world outside the journal: the web app,
# the FastAGI server, transcription worker processes. A daemon that is not
# live (a replay) attaches their hooks but starts none of these: it ends when
# its captures do, and would only take ports (or load a model) that the
# daemon running beside it holds.
SERVING_DOMAINS = frozenset({"pbxbridge.web.daemon", "pbxbridge.routing.daemon", "pbxbridge.transcription.daemon"})

# Database errors worth waiting out: the server restarting, the network, a lock.
TRANSIENT_DB_ERRORS: tuple[type[BaseException], ...] = (
    sa_exc.OperationalError,
    sa_exc.InterfaceError,
    sa_exc.TimeoutError,
    OSError,
    asyncio.TimeoutError,
)
RETRY_CAP_S = 30.0
# A call the database keeps refusing for another reason is set aside after
# this many attempts, so that it cannot hold up every call behind it.
MAX_ATTEMPTS_ON_ERROR = 5
# Most finished calls written in one transaction: a backlog drains in a few
# commits, and one batch still holds the database only briefly.
WRITE_BATCH_MAX = 200
# How long stop() waits for finished calls still queued to reach the database.
STOP_FLUSH_TIMEOUT_S = 30.0
# How long the PBX may take to list its channels after a reconnect.
CATCH_UP_TIMEOUT_S = 30.0
# How often calls in progress are saved: what a crash can lose is at most
# this much of the PBX's events (a reconnect's channel list mends the rest).
SAVE_INTERVAL_S = 0.2
# How long stop() may spend saving them (systemd's TimeoutStopSec is 30 s).
STOP_SAVE_TIMEOUT_S = 10.0
# Most calls in progress one save transaction writes: a call that finishes
# meanwhile waits behind one such transaction at most (some 5-20 ms), not
# behind every change.
SAVE_CHUNK = 20
# Finished calls waiting for the journal go first: a periodic save waits for the
# writer to run dry, but never longer than this past its due time.
SAVE_DEFER_MAX_S = 1.0
# How often calls the tracker holds back (a click-to-call waiting for its
# OriginateResponse) are looked at on the PBX's clock: when the PBX falls
# silent, no event moves that clock, so the daemon moves it with the wall's.
HELD_CHECK_INTERVAL_S = 0.2
# A captured stream is read faster than its calls are written: reading waits
# for the writer once this many finished calls are queued (some KB each).
REPLAY_QUEUE_MAX = 10 * WRITE_BATCH_MAX


class Component(Protocol):
    """A part started after the database and stopped before it."""

    async def start(self) -> None: ...

    async def stop(self) -> None: ...


@dataclass(slots=True)
class PbxLink:
    """One PBX: its settings, its call tracker and its AMI listener (none for a captured stream)."""

    config: PbxConfig
    tracker: CallTracker
    listener: AmiListener | None = None
    # Events handed to the tracker (those nobody reads are counted by the listener).
    events_read: int = 0
    # The PBX's clock as of the latest event, for closing calls that vanished.
    last_event_at: float | None = None
    # When (time.monotonic) that event was read: the PBX's clock runs on from there while it is silent.
    last_event_read: float | None = None
    # Whether this PBX stamps its events (timestampevents=yes): then frames
    # without a stamp (login greetings, list answers) do not move its clock.
    stamps_events: bool = False
    # Linkedids seen while a channel list is on its way (see Daemon._catch_up).
    seen_while_asking: set[str] | None = None
    reconciled_calls: int = 0
    # Completed catch-ups (one per login whose channel list arrived).
    catch_ups: int = 0
    # Calls taken back from the database at start.
    restored_calls: int = 0
    # Changed calls whose save failed (the database was away): saved next time.
    unsaved: set[str] = field(default_factory=set)

    @property
    def events(self) -> int:
        """Events received from this PBX: read, or skipped as nobody's (``EventInterest``)."""
        skipped = self.listener.decode_stats.ignored if self.listener is not None else 0
        return self.events_read + skipped


@dataclass(slots=True)
class DaemonStats:
    calls_finished: int = 0
    calls_written: int = 0
    calls_failed: int = 0
    write_retries: int = 0
    subscriber_errors: int = 0
    open_call_saves: int = 0
    open_call_save_errors: int = 0
    by_pbx: dict[str, int] = field(default_factory=dict)


class Daemon:
    """pbxbridge's long-running process: AMI events in, calls in the journal."""

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
        # False: fed from captured streams (replay_session), not by AMI listeners.
        self.live = live
        self.save_interval_s = save_interval_s
        # First pause before writing a call again after the database failed.
        self.retry_initial_s = retry_initial_s
        # Passed to every AmiListener (ping interval, backoff); tests shorten them.
        self.listener_options = dict(listener_options or {})
        self.event_subscribers: list[EventSubscriber] = []
        self.call_subscribers: list[CallSubscriber] = []
        self.after_write: list[AfterWrite] = []
        # Awaited by flush() once the journal has every finished call (work that follows the journal).
        self.flushers: list[Callable[[], Awaitable[None]]] = []
        self.components: list[Component] = []
        # Components of SERVING_DOMAINS: not started unless live.
        self.serving: list[Component] = []
        self.links: dict[str, PbxLink] = {}
        # The AMI events nobody reads are skipped undecoded; a part that reads more asks here before start().
        self.interest = EventInterest(variables=TRACKER_VARIABLES)
        self.stats = DaemonStats()
        self.engine: AsyncEngine | None = None
        self.session_factory: async_sessionmaker[AsyncSession] | None = None
        # For the daemon's own short write transactions (see start()); the web and readers use session_factory.
        self.write_engine: AsyncEngine | None = None
        self.write_sessions: async_sessionmaker[AsyncSession] | None = None
        self.writer: CallWriter | None = None
        self.open_calls: OpenCallStore | None = None
        self._calls: asyncio.Queue[FinishedCall] = asyncio.Queue()
        self._writer_task: asyncio.Task[None] | None = None
        self._saver_task: asyncio.Task[None] | None = None
        self._holder_task: asyncio.Task[None] | None = None
        self._service_tasks: list[asyncio.Task[None]] = []
        self._started_components: list[Component] = []
        self._tasks: set[asyncio.Task[Any]] = set()
        # Finished calls not yet in the journal: their saved in-progress state
        # is removed by the journal's own transaction, never by the saver.
        self._unwritten: set[tuple[str, str]] = set()
        # Saving calls in progress and writing finished ones take turns, so a
        # save that read a call before it finished cannot land after its write.
        self._db_turn = asyncio.Lock()
        # Set while no finished call waits for the writer (periodic saves defer to it).
        self._writer_idle = asyncio.Event()
        self._writer_idle.set()
        # When the database work under way (a save or a write) began, for the watchdog.
        self._db_busy_since: float | None = None
        self._last_progress: tuple[int, int, int, int] | None = None
        self._status = ""
        self.ready = False

    def add_component(self, component: Component) -> None:
        """Have ``component`` started with the daemon and stopped before the database."""
        self.components.append(component)

    # -- life cycle ------------------------------------------------------

    async def start(self) -> None:
        """Start everything, in order; on failure stop what was started."""
        # Secrets must be hidden from the very first line that might show them.
        service_logging.install(self.config)
        try:
            url = self.config.database.url
            self._set_status("migrating the database")
            await upgrade_async(url)
            # Every domain's tables are imported by now: their mappings are worked out here,
            # once (some 40 ms), rather than by whichever call happens to be written first.
            configure_mappers()
            self.engine = make_engine(url)
            self.session_factory = session_factory(self.engine)
            # The daemon's own writes (journal, saves, KPI) are short transactions:
            # on SQLite they run on the loop, not a thread hop per statement.
            self.write_engine = make_engine(url, inline=True) if can_run_inline(url) else self.engine
            self.write_sessions = session_factory(self.write_engine)
            # Calls in progress are a live PBX's: a replay neither takes them back nor saves its own.
            self.open_calls = OpenCallStore(self.write_sessions) if self.live else None
            self.writer = CallWriter(
                self.write_sessions, self.config, after_write=[*self.after_write, forget_written]
            )
            self._writer_task = asyncio.create_task(self._write_calls(), name="call-writer")
            for component in self.components:
                if not self.live and any(component is serving for serving in self.serving):
                    continue
                await component.start()
                self._started_components.append(component)
            if self.live:
                await self._follow_pbxes()
            log.info("pbxbridge daemon started: %s, database %s",
                     f"{len(self.links)} PBX(es)" if self.live else "fed from captured streams",
                     self.engine.url.render_as_string(hide_password=True))
        except BaseException:
            await self.stop()
            raise

    async def _follow_pbxes(self) -> None:
        """One tracker per PBX, given back its calls in progress; the periodic tasks; one AMI listener per PBX."""
        for pbx in self.config.pbx:
            link = PbxLink(pbx, CallTracker(tracker_settings(pbx)))
            self.links[pbx.name] = link
            await self._restore_open_calls(link)
        self._saver_task = asyncio.create_task(self._save_periodically(), name="open-call-saver")
        self._holder_task = asyncio.create_task(self._release_held_periodically(), name="held-call-release")
        self._service_tasks.append(asyncio.create_task(self._announce_ready(), name="sd-notify-ready"))
        interval = systemd.watchdog_interval()
        if interval:
            self._service_tasks.append(
                asyncio.create_task(self._watchdog(interval), name="sd-watchdog")
            )
        for link in self.links.values():
            link.listener = self._listener_for(link)
            await link.listener.start()

    async def stop(self) -> None:
        """Stop listening, write what is queued, save calls in progress, stop components, close the database."""
        if self.live:
            _tell_systemd(systemd.stopping)
        for task in self._service_tasks:
            task.cancel()
        for task in self._service_tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._service_tasks.clear()
        for link in self.links.values():
            if link.listener is not None:
                await link.listener.stop()
        for periodic in (self._saver_task, self._holder_task):
            if periodic is not None:
                periodic.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await periodic
        self._saver_task = self._holder_task = None
        if self._writer_task is not None:
            try:
                await asyncio.wait_for(self._calls.join(), STOP_FLUSH_TIMEOUT_S)
            except TimeoutError:
                log.error("stopping with %d finished call(s) not written: the database is unreachable",
                          self._calls.qsize())
            self._writer_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._writer_task
            self._writer_task = None
        if self.open_calls is not None:
            # What is still in progress now is what the next start takes back.
            try:
                saved = await asyncio.wait_for(self.save_open_calls(), STOP_SAVE_TIMEOUT_S)
            except TimeoutError:
                saved = False
            if not saved:
                log.error("calls in progress could not be saved: the database is unreachable")
        for task in list(self._tasks):
            task.cancel()
        while self._started_components:
            component = self._started_components.pop()
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
        for flusher in self.flushers:
            await flusher()

    async def flush_journal(self) -> None:
        """Wait until every call finished so far is in the journal (or set aside)."""
        await self._calls.join()

    async def send_action(self, pbx: str, action: dict[str, str], as_list: bool | None = None) -> Any:
        """Send an AMI action (an Originate for click-to-call) over that PBX's session."""
        link = self.links.get(pbx)
        if link is None or link.listener is None:
            raise KeyError(f"no PBX named {pbx!r}")
        return await link.listener.send_action(action, as_list=as_list)

    @property
    def calls_pending(self) -> int:
        """Finished calls waiting for the database."""
        return self._calls.qsize()

    def healthy(self) -> bool:
        """Whether the call writer and the saver run, and no database write is stuck."""
        for task in (self._writer_task, self._saver_task) if self.live else (self._writer_task,):
            if task is None or task.done():
                return False
        interval = systemd.watchdog_interval() or SAVE_INTERVAL_S
        # A write may wait out a lock or an outage between attempts (that is
        # healthy: a restart would not help); one attempt hanging is not.
        began = self._db_busy_since
        return began is None or time.monotonic() - began < 2 * interval

    @contextlib.asynccontextmanager
    async def database_turn(self) -> AsyncIterator[None]:
        """Hold the daemon's turn at the database: writes of calls, saves and other work never overlap."""
        async with self._db_turn:
            self._db_busy_since = time.monotonic()
            try:
                yield
            finally:
                self._db_busy_since = None

    # -- systemd ---------------------------------------------------------

    def _set_status(self, text: str) -> None:
        if text != self._status:
            self._status = text
            _tell_systemd(systemd.status, text)

    def _ami_status(self) -> str:
        parts = []
        for name, link in self.links.items():
            state = link.listener.state if link.listener is not None else ListenerState.STOPPED
            parts.append(f"{name} {state}")
        return "AMI " + ", ".join(parts) if parts else "no PBX configured"

    def _on_listener_state(self, listener: AmiListener) -> None:
        log.debug("[%s] AMI %s", listener.name, listener.state, extra={"pbx": listener.name})
        if self.ready:
            self._set_status(self._ami_status())

    async def _announce_ready(self) -> None:
        """READY=1 once every PBX's AMI session has logged in (the schema is migrated by now)."""
        self._set_status("logging in to AMI")
        for link in self.links.values():
            assert link.listener is not None
            await link.listener.wait_for_logins(1)
        self.ready = True
        status = self._ami_status()
        self._status = status
        _tell_systemd(systemd.ready, status)
        log.info("ready: %s", status)

    async def _watchdog(self, interval: float) -> None:
        """Ping systemd's watchdog while the daemon is healthy; a hung daemon gets restarted."""
        was_healthy = True
        while True:
            healthy = self.healthy()
            if healthy:
                _tell_systemd(systemd.watchdog_ping)
            elif was_healthy:
                log.error("unhealthy (call writer stopped or stuck): no watchdog ping")
            was_healthy = healthy
            await asyncio.sleep(interval)

    # -- events ----------------------------------------------------------

    def _listener_for(self, link: PbxLink) -> AmiListener:
        pbx = link.config

        def on_event(frame: Frame, received_at: float) -> None:
            self._on_event(link, frame, received_at)

        async def on_connected(listener: AmiListener) -> None:
            await self._catch_up(link, listener)

        options = {"on_state": self._on_listener_state, "interest": self.interest, **self.listener_options}
        return AmiListener(
            pbx.host, pbx.port, pbx.username, pbx.secret, on_event, on_connected,
            name=pbx.name, **options,
        )

    def _on_event(self, link: PbxLink, frame: Frame, received_at: float) -> None:
        link.events_read += 1
        if "Timestamp" in frame:
            link.stamps_events = True
            link.last_event_at = received_at
            link.last_event_read = time.monotonic()
        elif not link.stamps_events:
            link.last_event_at = received_at
            link.last_event_read = time.monotonic()
        if link.seen_while_asking is not None:
            linkedid = frame.get("Linkedid") or frame.get("LinkedID")
            if linkedid:
                link.seen_while_asking.add(linkedid)
        tracker = link.tracker
        for call in tracker.feed(frame, received_at):
            self._finished(call)
        warnings = tracker.take_warnings()
        if warnings:
            _log_warnings(link, warnings)
        for subscriber in self.event_subscribers:
            self._notify(subscriber, link.config.name, frame)

    async def _release_held_periodically(self) -> None:
        # A held call waits on the PBX's clock, which only events move: a PBX
        # that falls silent would hold it for good. Its clock runs on with the wall's.
        while True:
            await asyncio.sleep(HELD_CHECK_INTERVAL_S)
            now = time.monotonic()
            for link in self.links.values():
                if link.last_event_at is None or link.last_event_read is None:
                    continue
                for call in link.tracker.release_held(link.last_event_at + (now - link.last_event_read)):
                    self._finished(call)

    async def _catch_up(self, link: PbxLink, listener: AmiListener) -> None:
        """After a (re)login: take on channels missed, close the calls the PBX no longer has."""
        link.seen_while_asking = set()
        try:
            reply = await asyncio.wait_for(listener.send_action({"Action": "CoreShowChannels"}), CATCH_UP_TIMEOUT_S)
            # Events keep being fed while the list is on its way; a call seen in
            # them is alive even if it started after the PBX made the list.
            seen = link.seen_while_asking
        finally:
            link.seen_while_asking = None
        if not isinstance(reply, list):
            log.warning("[%s] CoreShowChannels refused (%s); not reconciling calls",
                        link.config.name, getattr(reply, "message", reply))
            return
        listed: list[Mapping[str, str]] = [_frame_of(m) for m in reply if m.get("Event") == "CoreShowChannel"]
        live = {m.get("Linkedid", "") for m in listed} - {""}
        now = link.last_event_at if link.last_event_at is not None else time.time()
        closed = link.tracker.reconcile_channels(listed, seen, now)
        log.info("[%s] PBX has %d call(s) up; %d call(s) it no longer knows closed",
                 link.config.name, len(live), len(closed), extra={"pbx": link.config.name})
        link.reconciled_calls += len(closed)
        link.catch_ups += 1
        for call in closed:
            self._finished(call)

    # -- captured streams (live=False) ------------------------------------------

    def replay_session(self, pbx: PbxConfig) -> PbxLink:
        """A session fed from a captured stream: a tracker of its own, as each capture is one AMI session."""
        return PbxLink(pbx, CallTracker(tracker_settings(pbx)))

    def feed_replayed(self, session: PbxLink, frames: Iterable[Frame]) -> None:
        """One read of a captured stream: each event to the session's tracker at its Timestamp.

        An event without one is taken at the previous event's time: a capture
        has no wall clock worth reading. Frames that are no event (the capturing
        session's own Login answer) are left out. No event subscriber is fed:
        they follow what a PBX has up now (line states, the wallboard, the
        KPIs' live gauges and alerts), which a capture's past events do not tell.
        """
        tracker = session.tracker
        now = session.last_event_at or 0.0
        fed = 0
        for frame in frames:
            if "Event" not in frame:
                continue
            stamp = frame.get("Timestamp")
            if stamp is not None:
                try:
                    now = float(stamp)
                except ValueError:
                    pass
            fed += 1
            for call in tracker.feed(frame, now):
                self._finished(call)
        session.events_read += fed
        session.last_event_at = now
        warnings = tracker.take_warnings()
        if warnings:
            _log_warnings(session, warnings)

    def end_replay_session(self, session: PbxLink) -> None:
        """The capture is over: nothing more comes on its session.

        Calls held for a late answer are given out; a call still up was cut
        with the capture, and is journaled as far as it went (closed at its
        last event, named in a warning), not lost.
        """
        end = session.last_event_at if session.last_event_at is not None else 0.0
        for call in session.tracker.end_of_stream(end):
            self._finished(call)
        warnings = session.tracker.take_warnings()
        if warnings:
            _log_warnings(session, warnings)

    async def make_room(self) -> None:
        """Between reads of a captured stream: let the writer take a full batch, keep the queue bounded.

        The writer takes whatever is queued when it runs: yielding only once
        a batch is full writes the calls in the fewest transactions, and a
        writer waiting on the database lets the reading go on meanwhile.
        """
        queued = self._calls.qsize()
        if queued >= REPLAY_QUEUE_MAX:
            await self._writer_idle.wait()
        elif queued >= WRITE_BATCH_MAX:
            await asyncio.sleep(0)

    def _finished(self, call: FinishedCall) -> None:
        self.stats.calls_finished += 1
        self._unwritten.add((call.pbx, call.linkedid))
        self._writer_idle.clear()
        self._calls.put_nowait(call)

    # -- calls in progress ---------------------------------------------------

    async def _restore_open_calls(self, link: PbxLink) -> None:
        """Give the tracker back the calls that were in progress when the daemon last stopped."""
        assert self.open_calls is not None
        name = link.config.name
        states = await self.open_calls.load(name)
        for state in states:
            try:
                link.tracker.restore(state)
            except (KeyError, TypeError, ValueError) as exc:
                # A state saved by an older tracker: the call is left to the
                # reconnect's channel list and to its remaining events.
                log.warning("[%s] saved call %s not restored (%s)", name, state.get("linkedid"), exc,
                            extra={"pbx": name, "linkedid": state.get("linkedid")})
                continue
            link.restored_calls += 1
            stamp = state.get("last_event_at")
            if isinstance(stamp, (int, float)) and stamp and (link.last_event_at or 0) < stamp:
                link.last_event_at = float(stamp)
        if states:
            log.info("[%s] %d call(s) in progress taken back from the database",
                     name, link.restored_calls, extra={"pbx": name, "restored_calls": link.restored_calls})

    async def save_open_calls(self, writer_first_until: float | None = None) -> bool:
        """Save every PBX's changed calls in progress now; False if the database refused.

        Changes go in transactions of at most ``SAVE_CHUNK`` calls, the database
        turn given up between them. With ``writer_first_until`` (a ``time.monotonic``
        moment), each transaction first waits, until then at most, for the finished
        calls queued for the journal to be written.
        """
        assert self.open_calls is not None
        ok = True
        for link in self.links.values():
            # Taken now, kept as unsaved until their transaction commits.
            link.unsaved |= link.tracker.take_dirty()
            if not link.unsaved:
                continue
            pbx = link.config.name
            pending = sorted(link.unsaved)
            for start in range(0, len(pending), SAVE_CHUNK):
                chunk = pending[start : start + SAVE_CHUNK]
                if writer_first_until is not None:
                    await self.writer_first(writer_first_until)
                # Taken before the turn, so that it is held for the write alone.
                taken = {lid: link.tracker.snapshot(lid) for lid in chunk}
                async with self.database_turn():
                    # A call that finished meanwhile is saved as gone, unless its journal
                    # write is still to come: that deletes its state (forget_written).
                    # One still open is saved as taken; later changes mark it for the next save.
                    states: dict[str, OpenCallState | None] = {}
                    for lid, state in taken.items():
                        if link.tracker.is_open(lid):
                            states[lid] = state if state is not None else link.tracker.snapshot(lid)
                        elif (pbx, lid) not in self._unwritten:
                            states[lid] = None
                    try:
                        await self.open_calls.save(pbx, states)
                    except asyncio.CancelledError:
                        raise
                    except Exception as exc:
                        ok = False
                        self.stats.open_call_save_errors += 1
                        if _worth_logging(self.stats.open_call_save_errors):
                            log.warning("[%s] saving %d call(s) in progress failed: %s", pbx, len(link.unsaved),
                                        _short(exc), extra={"pbx": pbx})
                        break
                link.unsaved.difference_update(chunk)
            else:
                self.stats.open_call_saves += 1
        self._log_progress()
        return ok

    async def writer_first(self, until: float) -> None:
        """Wait for the call writer to run dry, but not past ``until`` (a ``time.monotonic`` moment).

        Other database work (saves, KPI) calls this first: finished calls reach the journal before it.
        """
        while not self._writer_idle.is_set():
            remaining = until - time.monotonic()
            if remaining <= 0:
                return
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._writer_idle.wait(), remaining)

    def _log_progress(self) -> None:
        # A line whenever what is safe on disk moved: tests (and an operator at
        # DEBUG) can tell how far the daemon got before it was stopped.
        events = sum(link.events for link in self.links.values())
        in_progress = sum(link.tracker.active_count() for link in self.links.values())
        unsaved = sum(len(link.unsaved) for link in self.links.values())
        progress = (events, len(self._unwritten), in_progress, unsaved)
        if progress != self._last_progress:
            self._last_progress = progress
            log.debug("calls in progress saved", extra={
                "events": events, "calls_in_progress": in_progress,
                "calls_unwritten": len(self._unwritten), "calls_unsaved": unsaved,
            })

    async def _save_periodically(self) -> None:
        while True:
            await asyncio.sleep(self.save_interval_s)
            await self.save_open_calls(writer_first_until=time.monotonic() + SAVE_DEFER_MAX_S)

    # -- writing -------------------------------------------------------------

    async def _write_calls(self) -> None:
        # One writer, so calls reach the journal in the order they finished
        # and a slow database never holds up the event stream. What queued up
        # while the last batch was written goes in the next one.
        while True:
            batch = [await self._calls.get()]
            while len(batch) < WRITE_BATCH_MAX and not self._calls.empty():
                batch.append(self._calls.get_nowait())
            try:
                rows = await self._write_batch(batch)
                for call, row in zip(batch, rows, strict=True):
                    if row is None:
                        continue
                    log.info("call %s/%s written: %s %s", call.pbx, call.linkedid, call.direction, call.status,
                             extra={"pbx": call.pbx, "linkedid": call.linkedid, "direction": str(call.direction),
                                    "status": str(call.status), "closed_by": str(call.closed_by)})
                    for subscriber in self.call_subscribers:
                        self._notify(subscriber, call, row)
            finally:
                for call in batch:
                    self._unwritten.discard((call.pbx, call.linkedid))
                    self._calls.task_done()
                if self._calls.empty():
                    self._writer_idle.set()

    async def _write_batch(self, batch: list[FinishedCall]) -> list[Call | None]:
        """Write calls in one transaction, waiting out outages; one by one if the database refuses the batch."""
        assert self.writer is not None
        if len(batch) == 1:
            return [await self._write_one(batch[0])]
        attempt = 0
        while True:
            try:
                async with self.database_turn():
                    rows = await self.writer.write_many(batch)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if not _transient(exc):
                    # One bad call must not hold up the rest: write them singly,
                    # each with its own retries and, at worst, set aside alone.
                    log.warning("writing %d calls together failed; writing them one by one",
                                len(batch), exc_info=True)
                    return [await self._write_one(call) for call in batch]
                attempt += 1
                self.stats.write_retries += 1
                delay = min(RETRY_CAP_S, self.retry_initial_s * 2 ** min(attempt - 1, 10))
                log.warning("writing %d calls failed (%s); retry in %g s", len(batch), _short(exc), delay)
                self._set_status(f"database unreachable; {len(self._unwritten)} call(s) waiting")
                await asyncio.sleep(delay)
                continue
            self.stats.calls_written += len(batch)
            for call in batch:
                self.stats.by_pbx[call.pbx] = self.stats.by_pbx.get(call.pbx, 0) + 1
            if attempt and self.ready:
                self._set_status(self._ami_status())
            return list(rows)

    async def _write_one(self, call: FinishedCall) -> Call | None:
        """Write one call, waiting out database outages; None if it had to be set aside."""
        assert self.writer is not None
        attempt = 0
        refusals = 0
        while True:
            try:
                async with self.database_turn():
                    # The batch path, for one call: a new call is inserted without the
                    # read-back an idempotent single write does; a re-written one is refreshed.
                    (row,) = await self.writer.write_many([call])
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                attempt += 1
                self.stats.write_retries += 1
                delay = min(RETRY_CAP_S, self.retry_initial_s * 2 ** min(attempt - 1, 10))
                where = {"pbx": call.pbx, "linkedid": call.linkedid}
                if _transient(exc):
                    log.warning("writing call %s/%s failed (%s); retry in %g s",
                                call.pbx, call.linkedid, _short(exc), delay, extra=where)
                    self._set_status(f"database unreachable; {len(self._unwritten)} call(s) waiting")
                else:
                    refusals += 1
                    if refusals >= MAX_ATTEMPTS_ON_ERROR:
                        self.stats.calls_failed += 1
                        log.exception("call %s/%s could not be written; set aside: %r",
                                      call.pbx, call.linkedid, call, extra=where)
                        return None
                    log.warning("writing call %s/%s failed; retry in %g s",
                                call.pbx, call.linkedid, delay, exc_info=True, extra=where)
                await asyncio.sleep(delay)
                continue
            self.stats.calls_written += 1
            self.stats.by_pbx[call.pbx] = self.stats.by_pbx.get(call.pbx, 0) + 1
            if attempt and self.ready:
                self._set_status(self._ami_status())
            return row

    def _notify(self, subscriber: Callable[..., Any], *args: Any) -> None:
        try:
            result = subscriber(*args)
        except Exception:
            self.stats.subscriber_errors += 1
            log.exception("subscriber %r failed", subscriber)
            return
        # Called for every AMI event: a plain function's None is settled without the ABC checks.
        if result is not None and inspect.isawaitable(result):
            task = asyncio.ensure_future(result)
            self._tasks.add(task)
            task.add_done_callback(self._subscriber_done)

    def _subscriber_done(self, task: asyncio.Future[Any]) -> None:
        self._tasks.discard(task)  # type: ignore[arg-type]
        if not task.cancelled() and task.exception() is not None:
            self.stats.subscriber_errors += 1
            log.error("subscriber failed", exc_info=task.exception())


def attach_domains(daemon: Daemon, modules: tuple[str, ...] = DOMAIN_MODULES) -> list[str]:
    """Let each installed domain attach its parts; returns the modules that did."""
    attached: list[str] = []
    for name in modules:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name == name:
                continue
            raise
        before = len(daemon.components)
        module.attach(daemon)
        if name in SERVING_DOMAINS:
            daemon.serving.extend(daemon.components[before:])
        attached.append(name)
    return attached


def _log_warnings(link: PbxLink, warnings: list[tuple[str, str]]) -> None:
    """What the tracker found wrong with its input (an unknown channel, a second Hangup), a line each."""
    pbx = link.config.name
    for linkedid, message in warnings:
        log.warning("[%s] call %s: %s", pbx, linkedid, message, extra={"pbx": pbx, "linkedid": linkedid})


def _transient(exc: BaseException) -> bool:
    """Whether waiting may cure a database error (a lost connection, a restart, a lock)."""
    if isinstance(exc, TRANSIENT_DB_ERRORS):
        return True
    return isinstance(exc, sa_exc.DBAPIError) and bool(exc.connection_invalidated)


def _tell_systemd(send: Callable[..., bool], *args: str) -> None:
    """Notify systemd; a notify socket gone astray must not take the daemon down."""
    try:
        send(*args)
    except OSError as exc:
        log.warning("sd_notify failed: %s", exc)


def _frame_of(message: Any) -> Frame:
    """The frame as received (the listener keeps it on panoramisk's Message)."""
    frame = getattr(message, "__dict__", {}).get("frame")
    return frame if isinstance(frame, dict) else dict(message)


def _worth_logging(count: int) -> bool:
    # A long outage must not flood the log: the first few, then every hundredth.
    return count <= 5 or count % 100 == 0


def _short(exc: BaseException) -> str:
    text = str(exc).splitlines()[0] if str(exc) else ""
    return f"{type(exc).__name__}: {text[:200]}" if text else type(exc).__name__
