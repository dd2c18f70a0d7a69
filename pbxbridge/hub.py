"""The one seam between the daemon and the domains that attach to it.

A domain (KPIs, transcription, routing, the web app, a CRM connector) is
given the hub at attach time and takes part through it only: it subscribes
to what happens and asks for the services it needs. It never imports the
composition root and never sets attributes on it.

What a domain can subscribe to:

* ``on_event(fn)``: ``fn(pbx, frame)`` for every AMI event read, after the
  call tracker has seen it (plain functions in stream order, coroutines as
  tasks). Bulk events nobody asked for are skipped undecoded: ask with
  ``interest.want_event`` / ``want_variable`` at attach time.
* ``after_write(hook)``: ``await hook(session, written)`` inside the
  transaction that writes a batch of finished calls (``written``: the rows,
  the finished calls, whether each is new).
* ``on_call(fn)``: ``fn(finished_call, row)`` once a call is in the journal.
* ``on_pbx_connected(fn)`` / ``on_pbx_dropped(fn)``: ``fn(pbx)`` when a PBX's
  AMI session has logged in / has ended.
* ``on_recording_ready(fn)``: ``fn(recording_row)`` for each recording with
  sound a written call brought; ``on_transcript_ready(fn)``:
  ``fn(recording_id)`` once a recording's transcript is stored.

What it can ask for: ``send_action(pbx, action)`` (an AMI action over that
PBX's session), ``clock()``, ``pbx_clock(pbx)``, ``sessions`` and
``write_sessions`` (the database), ``database_turn()`` and
``writer_first(until)`` (database work that must not overtake the call
writer), ``calls_in_progress()`` (what the trackers hold now), and the
services other domains provide (``provide`` / ``service`` with a typed
``ServiceKey``): the web app asks for the KPI metrics and for click-to-call
without importing either domain's daemon parts.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import time
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from pbxbridge.ami.frames import Frame
from pbxbridge.ami.interest import EventInterest
from pbxbridge.calls.model import FinishedCall
from pbxbridge.calls.store import AfterWrite
from pbxbridge.calls.tables import Call, Recording
from pbxbridge.config import Config

log = logging.getLogger(__name__)

T = TypeVar("T")
EventSubscriber = Callable[[str, Frame], Awaitable[None] | None]
CallSubscriber = Callable[[FinishedCall, Call], Awaitable[None] | None]
PbxSubscriber = Callable[[str], Awaitable[None] | None]
RecordingSubscriber = Callable[[Recording], Awaitable[None] | None]
TranscriptSubscriber = Callable[[int], Awaitable[None] | None]
SendAction = Callable[[str, dict[str, str], bool | None], Awaitable[Any]]


class Component(Protocol):
    """A part started after the database and stopped before it."""

    async def start(self) -> None: ...

    async def stop(self) -> None: ...


@dataclass(frozen=True, slots=True)
class ServiceKey(Generic[T]):
    """Names a service one domain provides to others, with its type."""

    name: str


# Prometheus exposition text of the KPI figures (the KPI domain provides it).
METRICS_TEXT: ServiceKey[Callable[[], str]] = ServiceKey("metrics_text")
# Click-to-call: ring a manager's extension, then dial a number (the routing domain provides it).
ORIGINATE: ServiceKey[Callable[[str, str], Awaitable[dict[str, Any]]]] = ServiceKey("originate")
# The extension of the manager the CRM holds responsible for a number, or None (the CRM domain provides it).
CRM_OWNER: ServiceKey[Callable[[str], Awaitable[str | None]]] = ServiceKey("crm_owner")


@dataclass(slots=True)
class HubStats:
    subscriber_errors: int = 0


class Hub:
    """What the daemon offers the domains attached to it, and what they offer each other."""

    def __init__(
        self,
        config: Config,
        *,
        live: bool = True,
        interest: EventInterest | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.config = config
        # False: the daemon is fed from captured streams (``pbxbridge replay``): nothing is live.
        self.live = live
        self.clock = clock
        # The AMI events nobody reads are skipped undecoded; a domain that reads more asks here.
        self.interest = interest or EventInterest()
        self.after_write_hooks: list[AfterWrite] = []
        # Awaited by the daemon's flush() once the journal has every finished call.
        self.flushers: list[Callable[[], Awaitable[None]]] = []
        self.components: list[Component] = []
        # Components that serve the world outside (web, FastAGI, worker processes): live only.
        self.serving: list[Component] = []
        self.stats = HubStats()
        self.event_subscribers: list[EventSubscriber] = []
        self.call_subscribers: list[CallSubscriber] = []
        self.connected_subscribers: list[PbxSubscriber] = []
        self.dropped_subscribers: list[PbxSubscriber] = []
        self.recording_subscribers: list[RecordingSubscriber] = []
        self.transcript_subscribers: list[TranscriptSubscriber] = []
        self._services: dict[ServiceKey[Any], Any] = {}
        self._tasks: set[asyncio.Future[Any]] = set()
        # Filled by the composition root as the parts start.
        self.sessions: async_sessionmaker[AsyncSession] | None = None
        # The daemon's own short write transactions (inline on SQLite): for work that follows the journal.
        self.write_sessions: async_sessionmaker[AsyncSession] | None = None
        self._send_action: SendAction | None = None
        self._pbx_clock: Callable[[str], float | None] = lambda _pbx: None
        self._calls_up: Callable[[], int] = lambda: 0
        self._calls_in_progress: Callable[[], list[dict[str, Any]]] = list
        self._database_turn: Callable[[], AbstractAsyncContextManager[None]] | None = None
        self._writer_first: Callable[[float], Awaitable[None]] | None = None

    # -- subscribing --------------------------------------------------------

    def on_event(self, subscriber: EventSubscriber) -> None:
        self.event_subscribers.append(subscriber)

    def on_call(self, subscriber: CallSubscriber) -> None:
        self.call_subscribers.append(subscriber)

    def after_write(self, hook: AfterWrite) -> None:
        self.after_write_hooks.append(hook)

    def on_pbx_connected(self, subscriber: PbxSubscriber) -> None:
        self.connected_subscribers.append(subscriber)

    def on_pbx_dropped(self, subscriber: PbxSubscriber) -> None:
        self.dropped_subscribers.append(subscriber)

    def on_recording_ready(self, subscriber: RecordingSubscriber) -> None:
        self.recording_subscribers.append(subscriber)

    def on_transcript_ready(self, subscriber: TranscriptSubscriber) -> None:
        self.transcript_subscribers.append(subscriber)

    def add_component(self, component: Component, *, serving: bool = False) -> None:
        """Start ``component`` after the database, stop it before; ``serving``: only when live."""
        self.components.append(component)
        if serving:
            self.serving.append(component)

    def add_flusher(self, flusher: Callable[[], Awaitable[None]]) -> None:
        self.flushers.append(flusher)

    # -- services -----------------------------------------------------------

    def provide(self, key: ServiceKey[T], service: T) -> None:
        """Offer a service to the other domains."""
        self._services[key] = service

    def service(self, key: ServiceKey[T]) -> T | None:
        """A service another domain offers, if that domain is attached."""
        found: T | None = self._services.get(key)
        return found

    async def send_action(self, pbx: str, action: dict[str, str], as_list: bool | None = None) -> Any:
        """Send an AMI action over that PBX's session (ConnectionError when it has none)."""
        if self._send_action is None:
            raise ConnectionError(f"no AMI session to {pbx}")
        return await self._send_action(pbx, action, as_list)

    def calls_in_progress(self) -> list[dict[str, Any]]:
        """Every PBX's calls in progress as the trackers hold them (for the wallboard)."""
        return self._calls_in_progress()

    def calls_up(self) -> int:
        """How many calls are in progress on every PBX (cheap: for gauges polled often)."""
        return self._calls_up()

    def pbx_clock(self, pbx: str) -> float | None:
        """The PBX's clock: the time of its latest event (Asterisk's Timestamp), None before any."""
        return self._pbx_clock(pbx)

    def database_turn(self) -> AbstractAsyncContextManager[None]:
        """The daemon's turn at the database: writes of calls, saves and other work never overlap."""
        if self._database_turn is None:
            # Before the daemon serves its database there is nothing to take turns at.
            return contextlib.nullcontext()
        return self._database_turn()

    async def writer_first(self, until: float) -> None:
        """Wait for the call writer to run dry, not past ``until`` (a ``time.monotonic`` moment)."""
        if self._writer_first is not None:
            await self._writer_first(until)

    # -- what the composition root tells --------------------------------------

    def serve(
        self,
        *,
        sessions: async_sessionmaker[AsyncSession],
        write_sessions: async_sessionmaker[AsyncSession],
        send_action: SendAction,
        calls_in_progress: Callable[[], list[dict[str, Any]]],
        pbx_clock: Callable[[str], float | None],
        calls_up: Callable[[], int],
        database_turn: Callable[[], AbstractAsyncContextManager[None]],
        writer_first: Callable[[float], Awaitable[None]],
    ) -> None:
        """The daemon's services, once its database is up."""
        self.sessions = sessions
        self.write_sessions = write_sessions
        self._send_action = send_action
        self._calls_in_progress = calls_in_progress
        self._pbx_clock = pbx_clock
        self._calls_up = calls_up
        self._database_turn = database_turn
        self._writer_first = writer_first

    def event_seen(self, pbx: str, frame: Frame) -> None:
        for subscriber in self.event_subscribers:
            self._notify(subscriber, pbx, frame)

    def call_written(self, call: FinishedCall, row: Call) -> None:
        for subscriber in self.call_subscribers:
            self._notify(subscriber, call, row)
        if self.recording_subscribers:
            for recording in row.recordings:
                if recording.status == "ok":
                    for listener in self.recording_subscribers:
                        self._notify(listener, recording)

    def pbx_connected(self, pbx: str) -> None:
        for subscriber in self.connected_subscribers:
            self._notify(subscriber, pbx)

    def pbx_dropped(self, pbx: str) -> None:
        for subscriber in self.dropped_subscribers:
            self._notify(subscriber, pbx)

    def transcript_ready(self, recording_id: int) -> None:
        for subscriber in self.transcript_subscribers:
            self._notify(subscriber, recording_id)

    def cancel_tasks(self) -> None:
        """Stop what subscribers left running (at the daemon's stop)."""
        for task in list(self._tasks):
            task.cancel()

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
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            self.stats.subscriber_errors += 1
            log.error("subscriber failed", exc_info=task.exception())
