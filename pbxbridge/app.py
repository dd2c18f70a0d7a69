"""The composition root: builds the daemon's parts and starts them in a fixed order.

Start: database schema -> call writer -> attached components (web, workers)
-> one call tracker and AMI listener per PBX. Stop runs the other way round,
writing every call already finished before the database is let go.

Other domains attach without editing this module:

* ``daemon.event_subscribers``: ``fn(pbx, event)`` for every AMI event, after
  the call tracker has seen it (plain functions are called in stream order;
  a coroutine function's calls are run as tasks);
* ``daemon.call_subscribers``: ``fn(finished_call, call_row)`` once a call is
  in the journal;
* ``daemon.after_write``: ``CallWriter`` hooks, run inside each call's
  transaction;
* ``daemon.add_component(obj)``: anything with ``async start()`` and
  ``async stop()`` (started after the database, stopped before it);
* a module ``pbxbridge.<domain>.daemon`` with ``attach(daemon)``, found by
  ``attach_domains``.

``daemon.send_action(pbx, action)`` sends an AMI action (an Originate) over a
PBX's session; ``daemon.links[pbx]`` holds that PBX's tracker and listener.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import inspect
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from sqlalchemy import exc as sa_exc
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from pbxbridge.ami.frames import Frame
from pbxbridge.ami.listener import AmiListener
from pbxbridge.calls.model import FinishedCall
from pbxbridge.calls.replay import tracker_settings
from pbxbridge.calls.store import AfterWriteHook, CallWriter
from pbxbridge.calls.tables import Call
from pbxbridge.calls.tracker import CallTracker
from pbxbridge.config import Config, PbxConfig
from pbxbridge.db.engine import make_engine, session_factory, upgrade_async

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
# How long stop() waits for finished calls still queued to reach the database.
STOP_FLUSH_TIMEOUT_S = 30.0
# How long the PBX may take to list its channels after a reconnect.
CATCH_UP_TIMEOUT_S = 30.0


class Component(Protocol):
    """A part started after the database and stopped before it."""

    async def start(self) -> None: ...

    async def stop(self) -> None: ...


@dataclass(slots=True)
class PbxLink:
    """One PBX: its settings, its call tracker and its AMI listener."""

    config: PbxConfig
    tracker: CallTracker
    listener: AmiListener | None = None
    events: int = 0
    # The PBX's clock as of the latest event, for closing calls that vanished.
    last_event_at: float | None = None
    # Linkedids seen while a channel list is on its way (see Daemon._catch_up).
    seen_while_asking: set[str] | None = None
    reconciled_calls: int = 0
    # Completed catch-ups (one per login whose channel list arrived).
    catch_ups: int = 0


@dataclass(slots=True)
class DaemonStats:
    calls_finished: int = 0
    calls_written: int = 0
    calls_failed: int = 0
    write_retries: int = 0
    subscriber_errors: int = 0
    by_pbx: dict[str, int] = field(default_factory=dict)


class Daemon:
    """pbxbridge's long-running process: AMI events in, calls in the journal."""

    def __init__(
        self,
        config: Config,
        *,
        listener_options: dict[str, Any] | None = None,
        retry_initial_s: float = 0.5,
    ) -> None:
        self.config = config
        # First pause before writing a call again after the database failed.
        self.retry_initial_s = retry_initial_s
        # Passed to every AmiListener (ping interval, backoff); tests shorten them.
        self.listener_options = dict(listener_options or {})
        self.event_subscribers: list[EventSubscriber] = []
        self.call_subscribers: list[CallSubscriber] = []
        self.after_write: list[AfterWriteHook] = []
        self.components: list[Component] = []
        self.links: dict[str, PbxLink] = {}
        self.stats = DaemonStats()
        self.engine: AsyncEngine | None = None
        self.session_factory: async_sessionmaker[AsyncSession] | None = None
        self.writer: CallWriter | None = None
        self._calls: asyncio.Queue[FinishedCall] = asyncio.Queue()
        self._writer_task: asyncio.Task[None] | None = None
        self._started_components: list[Component] = []
        self._tasks: set[asyncio.Task[Any]] = set()

    def add_component(self, component: Component) -> None:
        """Have ``component`` started with the daemon and stopped before the database."""
        self.components.append(component)

    # -- life cycle ------------------------------------------------------

    async def start(self) -> None:
        """Start everything, in order; on failure stop what was started."""
        try:
            url = self.config.database.url
            await upgrade_async(url)
            self.engine = make_engine(url)
            self.session_factory = session_factory(self.engine)
            self.writer = CallWriter(self.session_factory, self.config, after_write=self.after_write)
            self._writer_task = asyncio.create_task(self._write_calls(), name="call-writer")
            for component in self.components:
                await component.start()
                self._started_components.append(component)
            for pbx in self.config.pbx:
                link = PbxLink(pbx, CallTracker(tracker_settings(pbx)))
                link.listener = self._listener_for(link)
                self.links[pbx.name] = link
                await link.listener.start()
            log.info("pbxbridge daemon started: %d PBX(es), database %s",
                     len(self.links), self.engine.url.render_as_string(hide_password=True))
        except BaseException:
            await self.stop()
            raise

    async def stop(self) -> None:
        """Stop listening, write what is queued, stop components, close the database."""
        for link in self.links.values():
            if link.listener is not None:
                await link.listener.stop()
        if self._writer_task is not None:
            try:
                await asyncio.wait_for(self._calls.join(), STOP_FLUSH_TIMEOUT_S)
            except asyncio.TimeoutError:
                log.error("stopping with %d finished call(s) not written: the database is unreachable",
                          self._calls.qsize())
            self._writer_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._writer_task
            self._writer_task = None
        for task in list(self._tasks):
            task.cancel()
        while self._started_components:
            component = self._started_components.pop()
            try:
                await component.stop()
            except Exception:
                log.exception("stopping %r failed", component)
        if self.engine is not None:
            await self.engine.dispose()
            self.engine = None
        log.info("pbxbridge daemon stopped")

    async def flush(self) -> None:
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

    # -- events ----------------------------------------------------------

    def _listener_for(self, link: PbxLink) -> AmiListener:
        pbx = link.config

        def on_event(frame: Frame, received_at: float) -> None:
            self._on_event(link, frame, received_at)

        async def on_connected(listener: AmiListener) -> None:
            await self._catch_up(link, listener)

        return AmiListener(
            pbx.host, pbx.port, pbx.username, pbx.secret, on_event, on_connected,
            name=pbx.name, **self.listener_options,
        )

    def _on_event(self, link: PbxLink, frame: Frame, received_at: float) -> None:
        link.events += 1
        link.last_event_at = received_at
        if link.seen_while_asking is not None:
            linkedid = frame.get("Linkedid") or frame.get("LinkedID")
            if linkedid:
                link.seen_while_asking.add(linkedid)
        for call in link.tracker.feed(frame, received_at):
            self._finished(call)
        for subscriber in self.event_subscribers:
            self._notify(subscriber, link.config.name, frame)

    async def _catch_up(self, link: PbxLink, listener: AmiListener) -> None:
        """After a (re)login: close the calls the PBX no longer has."""
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
        live = {str(m.get("Linkedid", "")) for m in reply if m.get("Event") == "CoreShowChannel"} - {""}
        now = link.last_event_at if link.last_event_at is not None else time.time()
        closed = link.tracker.reconcile(live | seen, now)
        log.info("[%s] PBX has %d call(s) up; %d call(s) it no longer knows closed",
                 link.config.name, len(live), len(closed))
        link.reconciled_calls += len(closed)
        link.catch_ups += 1
        for call in closed:
            self._finished(call)

    def _finished(self, call: FinishedCall) -> None:
        self.stats.calls_finished += 1
        self._calls.put_nowait(call)

    # -- writing -------------------------------------------------------------

    async def _write_calls(self) -> None:
        # One writer, so calls reach the journal in the order they finished
        # and a slow database never holds up the event stream.
        while True:
            call = await self._calls.get()
            try:
                row = await self._write_one(call)
                if row is not None:
                    for subscriber in self.call_subscribers:
                        self._notify(subscriber, call, row)
            finally:
                self._calls.task_done()

    async def _write_one(self, call: FinishedCall) -> Call | None:
        """Write one call, waiting out database outages; None if it had to be set aside."""
        assert self.writer is not None
        attempt = 0
        refusals = 0
        while True:
            try:
                row = await self.writer.write(call)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                attempt += 1
                self.stats.write_retries += 1
                delay = min(RETRY_CAP_S, self.retry_initial_s * 2 ** min(attempt - 1, 10))
                if _transient(exc):
                    log.warning("writing call %s/%s failed (%s); retry in %g s",
                                call.pbx, call.linkedid, _short(exc), delay)
                else:
                    refusals += 1
                    if refusals >= MAX_ATTEMPTS_ON_ERROR:
                        self.stats.calls_failed += 1
                        log.exception("call %s/%s could not be written; set aside: %r",
                                      call.pbx, call.linkedid, call)
                        return None
                    log.warning("writing call %s/%s failed; retry in %g s",
                                call.pbx, call.linkedid, delay, exc_info=True)
                await asyncio.sleep(delay)
                continue
            self.stats.calls_written += 1
            self.stats.by_pbx[call.pbx] = self.stats.by_pbx.get(call.pbx, 0) + 1
            return row

    def _notify(self, subscriber: Callable[..., Any], *args: Any) -> None:
        try:
            result = subscriber(*args)
        except Exception:
            self.stats.subscriber_errors += 1
            log.exception("subscriber %r failed", subscriber)
            return
        if inspect.isawaitable(result):
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
        module.attach(daemon)
        attached.append(name)
    return attached


def _transient(exc: BaseException) -> bool:
    """Whether waiting may cure a database error (a lost connection, a restart, a lock)."""
    if isinstance(exc, TRANSIENT_DB_ERRORS):
        return True
    return isinstance(exc, sa_exc.DBAPIError) and bool(exc.connection_invalidated)


def _short(exc: BaseException) -> str:
    text = str(exc).splitlines()[0] if str(exc) else ""
    return f"{type(exc).__name__}: {text[:200]}" if text else type(exc).__name__
