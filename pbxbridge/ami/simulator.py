"""An AMI server that replays captured Asterisk streams over TCP.

It speaks to clients as Asterisk's manager interface does: the banner line,
``Login``/``Logoff``/``Ping``/``Events``, the list actions a reconnecting
client asks (``CoreShowChannels``, ``QueueStatus``, ``ExtensionStateList``,
answered from what is live in the replay so far), and the captured events,
paced by their ``Timestamp`` headers, to every logged-in client that wants
events.

Actions are looked up in ``AmiSimulator.action_handlers`` by lower-cased
name, so more actions can be taught to it without touching this module::

    async def originate(server: AmiSimulator, session: ClientSession, action: Frame) -> None:
        session.respond(action, "Success", Message="Originate successfully queued")
        await server.emit({"Event": "OriginateResponse", "Privilege": "call,all", ...})

    simulator.action_handlers["originate"] = originate

A handler gets the simulator, the client's session and the action frame. It
answers with ``session.respond(action, status, **headers)`` (the ActionID is
echoed for it) or ``session.send(frame)``; ``await server.emit(event)`` hands
an event to every listening client and to the live state, exactly as replayed
events are. Actions of one client are handled one after another, as Asterisk
does per session; a handler that has to wait (an Originate ringing a handset)
should answer first and run the rest as a task.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from pathlib import Path

from pbxbridge.ami.frames import Frame, FrameDecoder, encode_frame, event_timestamp
from pbxbridge.ami.live_state import LiveState
from pbxbridge.ami.traces import (
    DEFAULT_BANNER,
    Trace,
    load_trace,
    wire_template,
    with_fresh_ids,
    with_timestamp,
)

log = logging.getLogger(__name__)

ActionHandler = Callable[["AmiSimulator", "ClientSession", Frame], Awaitable[None]]

# Asterisk drops a manager client that does not read its events in time
# (manager.conf writetimeout); a stalled test client must not stall the replay.
WRITE_TIMEOUT_S = 5.0
# Unpaced replays write this many events at a time (some 7 KiB): enough to
# send hundreds of thousands a second, few enough that a client's action
# (the CoreShowChannels after a login) is answered within a few dozen events,
# as a PBX answers it amid its stream.
UNPACED_CHUNK_EVENTS = 16
# ... and keep at most this many events (as chunk bounds, a few MB) for the
# live state to take on when it is next asked.
MAX_UNAPPLIED_EVENTS = 2_000_000
# Pause between two traces of one replay, in capture seconds.
TRACE_GAP_S = 1.0
# Actions Asterisk accepts before authentication.
UNAUTHENTICATED_ACTIONS = frozenset({"login", "logoff", "challenge"})
# Asterisk greets each logged-in session with this when the trace has none.
FULLY_BOOTED: Frame = {"Event": "FullyBooted", "Privilege": "system,all", "Status": "Fully Booted"}


class ClientSession:
    """One connected manager client."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        peer = writer.get_extra_info("peername")
        self.peer = f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else str(peer)
        self.authenticated = False
        self.username: str | None = None
        # None: every event class; empty: events off; otherwise the classes wanted.
        self.event_classes: frozenset[str] | None = None
        self.closed = False

    @property
    def listening(self) -> bool:
        """Whether this client gets replayed events."""
        return self.authenticated and not self.closed and self.event_classes != frozenset()

    def set_event_mask(self, mask: str | None) -> None:
        """Apply an ``Events:``/``EventMask:`` value as Asterisk reads it."""
        value = (mask or "on").strip().lower()
        if value in ("on", "yes", "true", "1", "all"):
            self.event_classes = None
        elif value in ("off", "no", "false", "0", ""):
            self.event_classes = frozenset()
        else:
            self.event_classes = frozenset(p.strip() for p in value.split(",") if p.strip())

    def wants(self, event: Frame) -> bool:
        """Whether the client's event mask lets ``event`` through."""
        if not self.listening:
            return False
        if self.event_classes is None:
            return True
        classes = {p.strip().lower() for p in event.get("Privilege", "").split(",")} - {"all", ""}
        # Events without a class (lists, FullyBooted-like greetings) always pass.
        return not classes or bool(classes & self.event_classes)

    def send(self, frame: Frame) -> None:
        """Queue one frame for the client."""
        self.send_raw(encode_frame(frame))

    def send_raw(self, data: bytes) -> None:
        """Queue raw bytes for the client (banners, or garbage in tests)."""
        if not self.closed and not self.writer.is_closing():
            self.writer.write(data)

    def respond(self, action: Frame, status: str, **headers: str) -> None:
        """Answer ``action`` with ``Response: status``, echoing its ActionID."""
        frame: Frame = {"Response": status}
        action_id = _action_id(action)
        if action_id is not None:
            frame["ActionID"] = action_id
        frame.update(headers)
        self.send(frame)

    def abort(self) -> None:
        """Drop the connection at once, as a crashed PBX or a cut cable would."""
        self.closed = True
        self.writer.transport.abort()

    async def close(self) -> None:
        """Close the connection after what was queued has been sent."""
        self.closed = True
        with contextlib.suppress(Exception):
            self.writer.close()
            await asyncio.wait_for(self.writer.wait_closed(), WRITE_TIMEOUT_S)


class AmiSimulator:
    """Replays traces to AMI clients; ``start()`` it, then connect to ``.port``."""

    def __init__(
        self,
        traces: Iterable[str | Path | Trace],
        speed: float = 1.0,
        host: str = "127.0.0.1",
        port: int = 0,
        username: str | None = None,
        secret: str | None = None,
        *,
        loop: bool = False,
        fresh_ids: bool = False,
        retime: bool = False,
        drop_after: int | None = None,
        inject_after: Mapping[int, bytes] | None = None,
        hold_when_idle: bool = True,
        sock: socket.socket | None = None,
    ) -> None:
        self.traces = [t if isinstance(t, Trace) else load_trace(t) for t in traces]
        if speed < 0:
            raise ValueError("speed must be 0 (as fast as possible) or positive")
        self.speed = speed
        self.host = host
        self._port = port
        # A socket the caller bound (and may have had clients refused on) to listen on
        # instead of host and port: a PBX that comes up at an address its clients
        # already know, with no moment at which another process could take the port.
        self._sock = sock
        if sock is not None:
            self.host, self._port = sock.getsockname()[:2]
        self.username = username
        self.secret = secret
        self.loop = loop
        # Each pass after the first gets new unique ids, so it makes new calls.
        self.fresh_ids = fresh_ids
        # Stamp events with the time they are sent rather than the capture's.
        self.retime = retime
        # Drop every client once, after this many events have been replayed.
        self.drop_after = drop_after
        # Raw bytes written to listening clients after that many events.
        self.inject_after = dict(inject_after or {})
        # Hold the replay while nobody listens, so that no client misses events
        # between a drop and its reconnection; a real PBX would not wait.
        self._hold_when_idle = hold_when_idle
        self.banner = self.traces[0].banner if self.traces else DEFAULT_BANNER
        self._state = LiveState()
        # Unpaced replays: events sent but not yet taken by the live state,
        # as (trace index, start, end, id suffix); see the ``state`` property.
        self._unapplied: list[tuple[int, int, int, str]] = []
        self._unapplied_events = 0
        # Unpaced replays: every trace's events rendered for the wire, once.
        self._wire: list[list[tuple[bytes, ...]]] | None = None
        # Paced replays: events due and applied to the live state, not yet written (event, wire bytes).
        self._due: list[tuple[Frame, bytes]] = []
        self.sessions: set[ClientSession] = set()
        self.events_sent = 0
        self.passes_done = 0
        self.action_handlers: dict[str, ActionHandler] = {
            "login": _login,
            "logoff": _logoff,
            "ping": _ping,
            "events": _events,
            "coreshowchannels": _core_show_channels,
            "queuestatus": _queue_status,
            "extensionstatelist": _extension_state_list,
        }
        self._server: asyncio.Server | None = None
        self._replay_task: asyncio.Task[None] | None = None
        # Set while the replay may go on: someone listens, or nobody is waited for.
        self._may_play = asyncio.Event()
        self._replayed = asyncio.Event()
        self._dropped = False
        # pause_after(): the replay stops after that many events until resume().
        self._pause_at: int | None = None
        self._paused = asyncio.Event()
        self._update_listening()

    @property
    def hold_when_idle(self) -> bool:
        """Whether the replay waits while no client listens."""
        return self._hold_when_idle

    @hold_when_idle.setter
    def hold_when_idle(self, value: bool) -> None:
        self._hold_when_idle = value
        self._update_listening()

    @property
    def state(self) -> LiveState:
        """What the PBX has up now, as far as the replay has gone."""
        # An unpaced replay sends far faster than the live state can follow
        # event by event; it catches up here, when it is asked for.
        if self._unapplied:
            self._apply_unapplied()
        return self._state

    @property
    def port(self) -> int:
        """The TCP port clients connect to (the one bound when 0 was asked)."""
        return self._port

    async def start(self) -> None:
        """Listen for clients and start the replay."""
        if self.speed == 0 and not self.retime and self._wire is None:
            # Rendered before listening: the replay then only joins bytes.
            self._wire = [[wire_template(e) for e in t.events] for t in self.traces]
        if self._sock is not None:
            self._server = await asyncio.start_server(self._serve, sock=self._sock)
            # The server owns it now and closes it on stop(); a restart binds the same port anew.
            self._sock = None
        else:
            self._server = await asyncio.start_server(self._serve, self.host, self._port)
        self._port = self._server.sockets[0].getsockname()[1]
        self._replay_task = asyncio.create_task(self._replay(), name="ami-simulator-replay")
        log.info("AMI simulator listening on %s:%d (%d traces, speed %s)",
                 self.host, self._port, len(self.traces), self.speed or "max")

    async def stop(self) -> None:
        """Stop the replay, disconnect every client and stop listening."""
        if self._replay_task is not None:
            self._replay_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._replay_task
            self._replay_task = None
        if self._server is not None:
            self._server.close()
        for session in list(self.sessions):
            session.abort()
        self.sessions.clear()
        if self._server is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), WRITE_TIMEOUT_S)
            self._server = None

    async def wait_replayed(self) -> None:
        """Return once every trace has been replayed (the first pass, when looping)."""
        assert self._replay_task is not None, "start() the simulator first"
        waiter = asyncio.ensure_future(self._replayed.wait())
        done, _ = await asyncio.wait({waiter, self._replay_task}, return_when=asyncio.FIRST_COMPLETED)
        if waiter not in done:
            waiter.cancel()
            self._replay_task.result()  # re-raise what stopped the replay

    async def emit(self, event: Frame) -> None:
        """Hand one event to the live state and to every client that wants it."""
        self.state.apply(event)
        data = encode_frame(event)
        targets = [s for s in self.sessions if s.wants(event)]
        for session in targets:
            session.send_raw(data)
        await self._drain(targets)

    def pause_after(self, count: int) -> None:
        """Stop the replay once ``count`` events have been sent, until ``resume()``.

        The PBX's time stands still meanwhile: for stopping the world at an
        exact point of a stream (to crash a client there, say). Asked while
        paused, it names the next stop after ``resume()``.
        """
        self._pause_at = count
        if self.events_sent >= count and not self._paused.is_set():
            self._pause_now()

    async def wait_paused(self) -> None:
        """Return once the replay has stopped where ``pause_after`` asked."""
        await self._paused.wait()

    def resume(self) -> None:
        """Let a paused replay go on (up to the next ``pause_after``, if one was asked)."""
        self._paused.clear()
        if self._pause_at is not None and self.events_sent >= self._pause_at:
            self._pause_now()
        self._update_listening()

    def _pause_now(self) -> None:
        self._pause_at = None
        self._paused.set()
        self._update_listening()

    def drop_clients(self) -> None:
        """Cut every client's connection."""
        for session in list(self.sessions):
            log.info("dropping AMI client %s", session.peer)
            session.abort()
        self.sessions.clear()
        self._update_listening()

    # -- replay ------------------------------------------------------------

    async def _replay(self) -> None:
        while True:
            suffix = f"-{self.passes_done}" if self.fresh_ids and self.passes_done else ""
            if self._wire is not None:
                await self._replay_pass_unpaced(suffix)
            else:
                await self._replay_pass_paced(suffix)
            self.passes_done += 1
            self._replayed.set()
            log.info("AMI simulator replayed %d events (pass %d)", self.events_sent, self.passes_done)
            if not self.loop or not self.traces:
                return

    async def _replay_pass_paced(self, suffix: str) -> None:
        """One pass, event by event, each at its capture time (scaled by ``speed``).

        Events falling due together (a PBX emits a call's events in bursts)
        reach each client in one write, as Asterisk's own output buffer
        would send them; whatever is queued is written before the replay
        waits for anything, and before a drop, pause or injection acts.
        """
        loop = asyncio.get_running_loop()
        anchor: tuple[float, float] | None = None  # (loop time, capture time)
        for trace in self.traces:
            # Set at the trace's first stamped event, once it is really sent.
            shift: float | None = None
            for event in trace.events:
                if await self._hold():
                    anchor = None
                ts = event_timestamp(event)
                if ts is not None and self.speed > 0:
                    if anchor is None:
                        anchor = (loop.time(), ts)
                    delay = anchor[0] + (ts - anchor[1]) / self.speed - loop.time()
                    if delay > 0:
                        await self._flush_due()
                        await asyncio.sleep(delay)
                elif self.speed == 0:
                    # Let clients' actions in between events.
                    await self._flush_due()
                    await asyncio.sleep(0)
                # The last listener may have gone (or a pause come) while
                # this event waited for its time: hold it back too.
                if await self._hold() and ts is not None:
                    anchor = (loop.time(), ts)
                out = with_fresh_ids(event, suffix)
                if self.retime and ts is not None:
                    if shift is None:
                        shift = time.time() - ts
                    out = with_timestamp(out, ts + shift)
                self._state.apply(out)
                self._due.append((out, encode_frame(out)))
                self.events_sent += 1
                if self._stop_due():
                    await self._flush_due()
                self._after_event()
            await self._flush_due()
            # Traces were captured apart: the next one starts a short gap
            # after this one ends, paced from its own first event.
            anchor = None
            if self.speed > 0:
                await asyncio.sleep(TRACE_GAP_S / self.speed)

    async def _flush_due(self) -> None:
        """Write the events queued by the paced replay, each client what its mask lets through."""
        if not self._due:
            return
        due, self._due = self._due, []
        await self._drain(self._send_events([data for _event, data in due], [event for event, _data in due]))

    def _send_events(self, rendered: list[bytes], events: Sequence[Frame]) -> list[ClientSession]:
        """Write rendered events to every listening client, in one write each, what its mask lets
        through; returns the clients written to."""
        targets = [s for s in self.sessions if s.listening]
        everything: bytes | None = None
        for session in targets:
            if session.event_classes is None:
                if everything is None:
                    everything = b"".join(rendered)
                session.send_raw(everything)
            else:
                wanted = [b for b, e in zip(rendered, events) if session.wants(e)]
                if wanted:
                    session.send_raw(b"".join(wanted))
        return targets

    def _stop_due(self) -> bool:
        """Whether ``_after_event`` acts at this count (an injection, the drop or a pause)."""
        sent = self.events_sent
        return (
            sent in self.inject_after
            or (self.drop_after is not None and not self._dropped and sent >= self.drop_after)
            or (self._pause_at is not None and sent >= self._pause_at)
        )

    async def _replay_pass_unpaced(self, suffix: str) -> None:
        """One pass as fast as clients read it: pre-rendered events, written a chunk at a time.

        What a client receives is what the paced replay would send; chunks end
        wherever ``drop_after``, ``inject_after`` or ``pause_after`` must act, and
        the live state takes the chunk's events before anyone can ask for it.
        """
        assert self._wire is not None
        glue = suffix.encode("utf-8")
        for index, trace in enumerate(self.traces):
            templates = self._wire[index]
            i, n = 0, len(templates)
            while i < n:
                await self._hold()
                end = min(n, i + UNPACED_CHUNK_EVENTS, i + self._events_to_next_stop())
                rendered = [glue.join(t) for t in templates[i:end]]
                self._unapplied.append((index, i, end, suffix))
                self._unapplied_events += end - i
                if self._unapplied_events > MAX_UNAPPLIED_EVENTS:
                    self._apply_unapplied()
                targets = self._send_events(rendered, trace.events[i:end])
                self.events_sent += end - i
                i = end
                self._after_event()
                # Backpressure: a client that has not taken the last chunk holds
                # up the next; and clients' actions get their turn in between.
                await self._drain(targets)
                await asyncio.sleep(0)

    def _events_to_next_stop(self) -> int:
        """Events until the next count at which something must happen (at least 1)."""
        sent = self.events_sent
        stops = [k for k in self.inject_after if k > sent]
        if self.drop_after is not None and not self._dropped:
            stops.append(self.drop_after)
        if self._pause_at is not None:
            stops.append(self._pause_at)
        return max(1, min(stops, default=sent + UNPACED_CHUNK_EVENTS) - sent)

    def _apply_unapplied(self) -> None:
        chunks, self._unapplied = self._unapplied, []
        self._unapplied_events = 0
        for index, start, end, suffix in chunks:
            for event in self.traces[index].events[start:end]:
                self._state.apply(with_fresh_ids(event, suffix))

    async def _hold(self) -> bool:
        """Wait for a listening client if asked to; True if the replay waited.

        What the paced replay has queued goes out first: nothing waits unsent.
        """
        if self._may_play.is_set():
            return False
        await self._flush_due()
        await self._may_play.wait()
        return True

    def _after_event(self) -> None:
        raw = self.inject_after.get(self.events_sent)
        if raw is not None:
            for session in self.sessions:
                if session.listening:
                    session.send_raw(raw)
        if self.drop_after is not None and not self._dropped and self.events_sent >= self.drop_after:
            self._dropped = True
            self.drop_clients()
        if self._pause_at is not None and self.events_sent >= self._pause_at:
            self._pause_now()

    async def _drain(self, sessions: list[ClientSession]) -> None:
        slow = [s for s in sessions if s.writer.transport.get_write_buffer_size() > 0]
        if not slow:
            return
        results = await asyncio.gather(
            *(asyncio.wait_for(s.writer.drain(), WRITE_TIMEOUT_S) for s in slow), return_exceptions=True
        )
        for session, result in zip(slow, results):
            if isinstance(result, BaseException):
                log.warning("AMI client %s not reading (%s); dropping it", session.peer, type(result).__name__)
                session.abort()
                self.sessions.discard(session)
        self._update_listening()

    def _update_listening(self) -> None:
        if self._paused.is_set():
            self._may_play.clear()
        elif not self._hold_when_idle or any(s.listening for s in self.sessions):
            self._may_play.set()
        else:
            self._may_play.clear()

    # -- clients -----------------------------------------------------------

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        session = ClientSession(reader, writer)
        self.sessions.add(session)
        log.info("AMI client %s connected", session.peer)
        session.send_raw(f"{self.banner}\r\n".encode())
        decoder = FrameDecoder()
        decoder.expect_banner(False)
        try:
            while not session.closed:
                data = await reader.read(65536)
                if not data:
                    break
                for action in decoder.feed(data):
                    await self._handle(session, action)
                    if session.closed:
                        break
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            self.sessions.discard(session)
            self._update_listening()
            if not session.closed:
                await session.close()
            log.info("AMI client %s disconnected", session.peer)

    async def _handle(self, session: ClientSession, action: Frame) -> None:
        name = action.get("Action", "").strip()
        if not name:
            session.respond(action, "Error", Message="Missing action in request")
            return
        key = name.lower()
        if not session.authenticated and key not in UNAUTHENTICATED_ACTIONS:
            session.respond(action, "Error", Message="Permission denied")
            return
        handler = self.action_handlers.get(key)
        if handler is None:
            session.respond(action, "Error", Message="Invalid/unknown command")
            return
        try:
            await handler(self, session, action)
        except Exception:
            log.exception("AMI action %s failed", name)
            session.respond(action, "Error", Message="Internal error")
        self._update_listening()


def _action_id(action: Frame) -> str | None:
    for key, value in action.items():
        if key.lower() == "actionid":
            return value
    return None


def _header(action: Frame, name: str) -> str | None:
    # Clients spell headers in any case (panoramisk sends them as given).
    low = name.lower()
    for key, value in action.items():
        if key.lower() == low:
            return value
    return None


# -- built-in actions --------------------------------------------------------

async def _login(server: AmiSimulator, session: ClientSession, action: Frame) -> None:
    username = _header(action, "Username")
    secret = _header(action, "Secret") or ""
    if server.username is not None and (
        username != server.username or (server.secret is not None and secret != server.secret)
    ):
        log.warning("AMI client %s failed to authenticate as %r", session.peer, username)
        session.respond(action, "Error", Message="Authentication failed")
        # Asterisk hangs up on a failed login.
        await session.close()
        return
    session.authenticated = True
    session.username = username
    session.set_event_mask(_header(action, "Events"))
    session.respond(action, "Success", Message="Authentication accepted")
    greeting = next((t.fully_booted for t in server.traces if t.fully_booted), FULLY_BOOTED)
    if session.wants(greeting):
        session.send(greeting)


async def _logoff(server: AmiSimulator, session: ClientSession, action: Frame) -> None:
    session.respond(action, "Goodbye", Message="Thanks for all the fish.")
    await session.close()


async def _ping(server: AmiSimulator, session: ClientSession, action: Frame) -> None:
    session.respond(action, "Success", Ping="Pong", Timestamp=f"{time.time():.6f}")


async def _events(server: AmiSimulator, session: ClientSession, action: Frame) -> None:
    session.set_event_mask(_header(action, "EventMask"))
    session.respond(action, "Success", Events="Off" if session.event_classes == frozenset() else "On")


def _send_list(session: ClientSession, action: Frame, message: str, items: list[Frame]) -> None:
    session.respond(action, "Success", EventList="start", Message=message)
    for item in items:
        session.send(item)


async def _core_show_channels(server: AmiSimulator, session: ClientSession, action: Frame) -> None:
    _send_list(session, action, "Channels will follow", server.state.core_show_channels(_action_id(action)))


async def _queue_status(server: AmiSimulator, session: ClientSession, action: Frame) -> None:
    items = server.state.queue_status(
        _action_id(action), _header(action, "Queue") or "", _header(action, "Member") or ""
    )
    _send_list(session, action, "Queue status will follow", items)


async def _extension_state_list(server: AmiSimulator, session: ClientSession, action: Frame) -> None:
    _send_list(session, action, "Extension Statuses will follow", server.state.extension_states(_action_id(action)))
