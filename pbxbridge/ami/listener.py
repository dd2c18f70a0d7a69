"""A long-lived AMI client: connects, logs in, hands every event on, and comes back.

Built on panoramisk's ``Manager`` and ``AMIProtocol``, with four changes made
in small subclasses below (panoramisk 1.4 itself runs on Python 3.11; its
``loop=`` arguments are still accepted there):

* reconnection: panoramisk retries forever after a fixed delay, from inside
  its callbacks; here one task owns the connection's life so that retries
  back off exponentially (capped) and every state change is logged;
* dead peers: panoramisk sends ``Ping`` but never checks for the answer, so a
  PBX that vanished without a TCP reset would go unnoticed; here an unanswered
  Ping closes the connection;
* decoding: panoramisk decodes each TCP read on its own with errors ignored
  (a Cyrillic caller name split between two reads loses letters), only knows
  CRLF frame ends, buffers without limit and drops what it cannot parse
  silently; here pbxbridge's bounded ``FrameDecoder`` does the decoding and
  malformed input is logged and counted;
* a failing event consumer can never break the connection: asyncio closes a
  transport whose ``data_received`` raises.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from panoramisk import Manager
from panoramisk.ami_protocol import AMIProtocol
from panoramisk.message import Message

from pbxbridge.ami.frames import DecodeStats, Frame, FrameDecoder, event_timestamp
from pbxbridge.ami.interest import EventInterest

log = logging.getLogger(__name__)

EventCallback = Callable[[Frame, float], None]
ConnectedCallback = Callable[["AmiListener"], Awaitable[None]]
StateCallback = Callable[["AmiListener"], None]


class ListenerState(StrEnum):
    STOPPED = "stopped"
    CONNECTING = "connecting"
    LOGGED_IN = "logged in"
    DISCONNECTED = "disconnected"


@dataclass(slots=True)
class ListenerStats:
    """What came over the wire, across reconnections."""

    events: int = 0
    # Frames that were neither an event nor a response.
    malformed_frames: int = 0
    # Exceptions raised by the event callback.
    callback_errors: int = 0
    logins: int = 0
    # Sessions that ended after a successful login.
    disconnects: int = 0
    # Times a Ping's answer was still owed after ping_timeout_s while the PBX
    # kept sending (a burst it was answering behind): the session was kept.
    pings_overdue: int = 0


class LoginRefused(Exception):
    """The PBX answered Login with an error (wrong username or secret)."""


# Most bytes one read takes off the socket. Every frame of a read is decoded
# and handed on before the event loop runs anything else: a busy PBX whose
# stream has piled up (asyncio reads up to 256 KiB at once, ~500 events) would
# hold the loop for tens of milliseconds, and every database round trip of the
# journal's writes waits that long for its turn. 16 KiB is some 35 events.
READ_CHUNK_BYTES = 16 * 1024


class _FrameProtocol(AMIProtocol, asyncio.BufferedProtocol):
    """panoramisk's AMI protocol reading through pbxbridge's ``FrameDecoder``, a bounded read at a time."""

    factory: _PbxManager
    # The PBX's version from its banner (panoramisk's attribute, set on connection).
    version: str | None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self.decoder = FrameDecoder()
        # Bytes that came before the manager took this protocol on (see below).
        self.early = bytearray()
        self._read_buffer = memoryview(bytearray(READ_CHUNK_BYTES))

    def get_buffer(self, sizehint: int) -> memoryview:
        return self._read_buffer

    def buffer_updated(self, nbytes: int) -> None:
        # One copy out of the buffer the next read reuses.
        self.data_received(bytes(self._read_buffer[:nbytes]))

    def data_received(self, data: bytes) -> None:
        if self.factory is None:
            # The banner can arrive before the connect future's callback has
            # handed the protocol to its manager (a busy loop runs the read
            # first); keep it for _PbxManager.connection_made.
            self.early += data
            return
        listener = self.factory.listener
        listener.last_read_at = time.monotonic()
        # Counters live on the listener so they add up across reconnections.
        self.decoder.stats = listener.decode_stats
        self.decoder.interest = listener.interest
        before = (listener.decode_stats.malformed_lines, listener.decode_stats.oversized_frames)
        frames = self.decoder.feed(data)
        if self.version is None and self.decoder.banner:
            self.version = self.decoder.banner.partition("/")[2]
            log.info("[%s] PBX says %r", listener.name, self.decoder.banner, extra=listener.log_fields)
        stats = listener.decode_stats
        if (stats.malformed_lines, stats.oversized_frames) != before and _worth_logging(sum(before) + 1):
            log.warning("[%s] malformed AMI input (%d lines, %d oversized frames so far): %s",
                        listener.name, stats.malformed_lines, stats.oversized_frames, stats.errors[-1])
        deliver = listener._deliver
        # With no action under way (nearly always), an event is nobody's answer.
        plain = self._plain_event if self.responses else _not_panoramisks
        for frame in frames:
            if "Response" not in frame and "Event" in frame and plain(frame):
                # Most of the stream: hand the frame straight on, without the
                # cost of panoramisk's case-insensitive Message.
                deliver(frame)
                continue
            if "Event" not in frame and "Response" not in frame:
                listener.stats.malformed_frames += 1
                if _worth_logging(listener.stats.malformed_frames):
                    log.warning("[%s] AMI frame with neither Event nor Response ignored (%d so far): %.120r",
                                listener.name, listener.stats.malformed_frames, frame)
                continue
            try:
                message = Message(frame)
                # Message adds a 'content' key of its own; the frame as received is what consumers get.
                message.frame = frame
                self.handle_message(message)
            except Exception:
                # Never let one frame take the connection down with it.
                listener.stats.callback_errors += 1
                log.exception("[%s] failed to handle AMI frame %.120r", listener.name, frame, extra=listener.log_fields)

    def _plain_event(self, frame: Frame) -> bool:
        """Whether an event frame is nobody's action answer and needs none of panoramisk's handling."""
        event = frame.get("Event", "").lower()
        # Shutdown closes the session and FullyBooted re-sends queued actions:
        # panoramisk's own dispatch does both (pbxbridge registers no other callbacks).
        if event in _PANORAMISK_EVENTS:
            return False
        if not self.responses:
            return True
        # An action under way (CoreShowChannels, Ping): its list events carry its
        # ActionID, in whatever case the PBX spelled the header.
        for key, value in frame.items():
            if key.lower() in _ACTION_ID_KEYS and value in self.responses:
                return False
        return True


_PANORAMISK_EVENTS = frozenset({"shutdown", "fullybooted"})


def _not_panoramisks(frame: Frame) -> bool:
    """Whether an event needs none of panoramisk's own handling, while no action is under way."""
    return frame["Event"].lower() not in _PANORAMISK_EVENTS
_ACTION_ID_KEYS = frozenset({"actionid", "commandid"})


def _worth_logging(count: int) -> bool:
    # A PBX spewing garbage must not flood the log: the first few, then every thousandth.
    return count <= 20 or count % 1000 == 0


class _PbxManager(Manager):
    """panoramisk's Manager with reconnection and pinging left to ``AmiListener``."""

    def __init__(self, listener: AmiListener, **config: Any) -> None:
        super().__init__(**config)
        self.listener = listener
        self.login_result: asyncio.Future[bool] = self.loop.create_future()
        self.lost: asyncio.Future[BaseException | None] = self.loop.create_future()

    def connection_made(self, f: asyncio.Future[Any]) -> None:
        # A failed connect is seen by the listener awaiting the same task; the
        # base class would schedule its own fixed-delay retry here.
        if f.cancelled() or f.exception() is not None:
            return
        super().connection_made(f)
        protocol = self.protocol
        if isinstance(protocol, _FrameProtocol) and protocol.early:
            early, protocol.early = bytes(protocol.early), bytearray()
            protocol.data_received(early)

    def login(self, future: asyncio.Future[Any]) -> bool:
        ok = bool(super().login(future))
        if not self.login_result.done():
            self.login_result.set_result(ok)
        return ok

    def ping(self) -> None:
        # The listener pings and waits for the answer; see AmiListener._watch.
        self.pinger = None

    def connection_lost(self, exc: BaseException | None) -> None:
        # The base class would reconnect after a fixed delay on its own.
        self._connected = False
        if self.pinger:
            self.pinger.cancel()
            self.pinger = None
        if not self.lost.done():
            self.lost.set_result(exc)

    def dispatch(self, event: Message) -> list[str]:
        self.listener._deliver(event.__dict__["frame"])
        return list(super().dispatch(event))


class AmiListener:
    """Keeps one PBX's AMI session up and feeds its events to ``on_event``.

    ``on_event(frame, received_at)`` is called synchronously, in stream order;
    ``received_at`` is the event's ``Timestamp`` or, without one, the local
    time it arrived. ``on_connected(listener)`` runs after each login, while
    events already flow, to let the caller catch up with what it missed.
    ``on_state(listener)`` is called whenever ``listener.state`` changes.
    With ``interest``, events it drops never reach ``on_event`` (they are
    counted in ``decode_stats.ignored``).
    """

    def __init__(
        self,
        host: str,
        port: int,
        username: str,
        secret: str,
        on_event: EventCallback,
        on_connected: ConnectedCallback | None = None,
        *,
        name: str = "main",
        ping_interval_s: float = 10.0,
        ping_timeout_s: float = 5.0,
        connect_timeout_s: float = 10.0,
        backoff_initial_s: float = 1.0,
        backoff_cap_s: float = 30.0,
        on_state: StateCallback | None = None,
        interest: EventInterest | None = None,
    ) -> None:
        self.host = host
        self.port = port
        self.username = username
        self.secret = secret
        self.on_event = on_event
        self.on_connected = on_connected
        self.name = name
        # On every log line about this session, so the JSON log can be filtered by PBX.
        self.log_fields = {"pbx": name}
        self.ping_interval_s = ping_interval_s
        self.ping_timeout_s = ping_timeout_s
        self.connect_timeout_s = connect_timeout_s
        self.backoff_initial_s = backoff_initial_s
        self.backoff_cap_s = backoff_cap_s
        # Told of every change of ``state`` (for systemd's STATUS line).
        self.on_state = on_state
        self.state = ListenerState.STOPPED
        self.stats = ListenerStats()
        self.decode_stats = DecodeStats()
        self.interest = interest
        # When the PBX last sent anything (time.monotonic): a Ping answer queued
        # behind a burst is late, yet the PBX is alive.
        self.last_read_at = 0.0
        self._manager: _PbxManager | None = None
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self._state_changed = asyncio.Condition()

    # -- life cycle ------------------------------------------------------

    async def start(self) -> None:
        """Start connecting in the background; returns at once."""
        if self._task is None:
            self._stopping = False
            self._task = asyncio.create_task(self._run(), name=f"ami-listener-{self.name}")

    async def stop(self) -> None:
        """Log off if connected and stop reconnecting."""
        self._stopping = True
        task, self._task = self._task, None
        manager = self._manager
        if manager is not None and manager.authenticated and not manager.lost.done():
            with contextlib.suppress(Exception):
                await asyncio.wait_for(manager.send_action({"Action": "Logoff"}), 2.0)
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self._set_state(ListenerState.STOPPED)

    async def wait_for_state(self, state: ListenerState) -> None:
        """Wait until the listener reaches ``state``."""
        async with self._state_changed:
            await self._state_changed.wait_for(lambda: self.state == state)

    async def wait_for_logins(self, count: int) -> None:
        """Wait until the listener has logged in ``count`` times in all."""
        async with self._state_changed:
            await self._state_changed.wait_for(lambda: self.stats.logins >= count)

    async def send_action(self, action: dict[str, str], as_list: bool | None = None) -> Any:
        """Send an action on the current session; returns panoramisk's response(s)."""
        manager = self._manager
        if manager is None or not manager.authenticated or manager.lost.done():
            raise ConnectionError(f"AMI session to {self.name} is not up")
        return await manager.send_action(dict(action), as_list=as_list)

    # -- internals -------------------------------------------------------

    async def _set_state(self, state: ListenerState) -> None:
        changed = state != self.state
        async with self._state_changed:
            self.state = state
            self._state_changed.notify_all()
        if changed and self.on_state is not None:
            try:
                self.on_state(self)
            except Exception:
                log.exception("[%s] state callback failed", self.name, extra=self.log_fields)

    async def _run(self) -> None:
        failures = 0
        while True:
            await self._set_state(ListenerState.CONNECTING)
            log.info("[%s] connecting to AMI at %s:%d", self.name, self.host, self.port, extra=self.log_fields)
            started = time.monotonic()
            logins_before = self.stats.logins
            try:
                await self._session()
            except LoginRefused:
                log.error("[%s] AMI login refused for user %r", self.name, self.username, extra=self.log_fields)
            except (TimeoutError, OSError) as exc:
                log.warning("[%s] AMI connection failed: %s", self.name, exc or type(exc).__name__,
                            extra=self.log_fields)
            except Exception:
                # Whatever went wrong, the PBX's calls still have to be followed.
                log.exception("[%s] AMI session failed", self.name, extra=self.log_fields)
            if self._stopping:
                return
            # A session that logged in or stayed up a while was a success: start
            # backing off afresh (a dropped link comes back within a second).
            if self.stats.logins > logins_before or time.monotonic() - started > self.backoff_cap_s:
                failures = 0
            delay = min(self.backoff_cap_s, self.backoff_initial_s * 2**failures)
            failures += 1
            await self._set_state(ListenerState.DISCONNECTED)
            log.warning("[%s] AMI disconnected; reconnect in %g s", self.name, delay, extra=self.log_fields)
            await asyncio.sleep(delay)

    async def _session(self) -> None:
        loop = asyncio.get_running_loop()
        manager = _PbxManager(
            self,
            host=self.host,
            port=self.port,
            username=self.username,
            secret=self.secret,
            events="on",
            loop=loop,
            protocol_factory=_FrameProtocol,
            # panoramisk's own pinger is disabled (see _PbxManager.ping).
            ping_delay=0,
        )
        self._manager = manager
        on_connected: asyncio.Task[None] | None = None
        logged_in = False
        try:
            await asyncio.wait_for(manager.connect(), self.connect_timeout_s)
            waited: set[asyncio.Future[Any]] = {manager.login_result, manager.lost}
            await asyncio.wait(
                waited,
                timeout=self.connect_timeout_s,
                return_when=asyncio.FIRST_COMPLETED,
            )
            # Asterisk hangs up right after refusing a login: the refusal
            # is what matters, so look at the answer first.
            if manager.login_result.done():
                if not manager.login_result.result():
                    raise LoginRefused()
            elif manager.lost.done():
                raise ConnectionError("connection closed during login")
            else:
                raise TimeoutError("no answer to Login")
            self.stats.logins += 1
            logged_in = True
            await self._set_state(ListenerState.LOGGED_IN)
            log.info("[%s] logged in to AMI at %s:%d", self.name, self.host, self.port, extra=self.log_fields)
            if self.on_connected is not None:
                on_connected = asyncio.create_task(self._after_login())
            await self._watch(manager)
        finally:
            if on_connected is not None and not on_connected.done():
                on_connected.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await on_connected
            self._manager = None
            manager.close()
            if logged_in:
                self.stats.disconnects += 1

    async def _after_login(self) -> None:
        assert self.on_connected is not None
        try:
            await self.on_connected(self)
        except asyncio.CancelledError:
            raise
        except ConnectionError as exc:
            log.warning("[%s] catching up after login failed: %s", self.name, exc, extra=self.log_fields)
        except Exception:
            log.exception("[%s] catching up after login failed", self.name, extra=self.log_fields)

    async def _watch(self, manager: _PbxManager) -> None:
        """Return when the connection is lost or the PBX stops answering Ping."""
        while True:
            done, _ = await asyncio.wait({manager.lost}, timeout=self.ping_interval_s)
            if done:
                log.warning("[%s] AMI connection lost: %s", self.name, manager.lost.result() or "closed by peer",
                            extra=self.log_fields)
                return
            pong = asyncio.ensure_future(manager.send_action({"Action": "Ping"}))
            while True:
                done, _ = await asyncio.wait(
                    {pong, manager.lost}, timeout=self.ping_timeout_s, return_when=asyncio.FIRST_COMPLETED
                )
                if done:
                    break
                if time.monotonic() - self.last_read_at < self.ping_timeout_s:
                    # Still reading what the PBX sent before its answer (a burst the
                    # daemon is behind on): a peer that sends is not gone.
                    self.stats.pings_overdue += 1
                    continue
                pong.cancel()
                log.warning("[%s] no answer to Ping in %g s; the PBX is gone", self.name, self.ping_timeout_s,
                            extra=self.log_fields)
                return

    def _deliver(self, frame: Frame) -> None:
        stamp = event_timestamp(frame)
        if stamp is None:
            received_at = time.time()
            if "Timestamp" in frame:
                log.warning("[%s] event %s with a bad Timestamp %r", self.name, frame.get("Event"), frame["Timestamp"],
                            extra=self.log_fields)
        else:
            received_at = stamp
        self.stats.events += 1
        try:
            self.on_event(frame, received_at)
        except Exception:
            self.stats.callback_errors += 1
            log.exception("[%s] handling AMI event %s failed", self.name, frame.get("Event"), extra=self.log_fields)
