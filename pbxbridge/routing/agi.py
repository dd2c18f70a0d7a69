"""A FastAGI server on asyncio streams.

Asterisk's ``AGI(agi://host:port/script,arg1,...)`` opens a TCP connection and
sends ``agi_<name>: <value>`` lines, then a blank line.  The script then sends
one command per line (``SET VARIABLE NAME "value"``, ``VERBOSE "text" 1``) and
reads one reply per command: ``200 result=<n> [(data)]`` on success, ``510``
for an unknown command, ``511`` when the channel is gone, ``520-`` usage text
ending with ``520 End of proper usage.``.  When the caller hangs up mid-script,
Asterisk may send a ``HANGUP`` line of its own.  Closing the socket ends the
AGI and the dialplan goes on with ``AGISTATUS=SUCCESS``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

log = logging.getLogger(__name__)

# Asterisk's environment is a few dozen short lines; anything much bigger is not Asterisk.
MAX_ENV_LINES = 200
MAX_LINE_BYTES = 8192
ENV_TIMEOUT_S = 10.0
REPLY_TIMEOUT_S = 10.0

_REPLY = re.compile(r"^(?P<code>\d{3})(?P<sep>[ -])(?:result=(?P<result>-?\d+)\s*(?:\((?P<data>.*)\))?)?(?P<rest>.*)$")


class AgiError(Exception):
    """Asterisk refused a command or the conversation broke."""


class AgiHangup(AgiError):
    """The channel hung up while the script was still talking to it."""


@dataclass(frozen=True, slots=True)
class AgiReply:
    code: int
    result: int | None
    data: str | None
    text: str


@dataclass(frozen=True, slots=True)
class AgiRequest:
    """The ``agi_*`` environment Asterisk opened the connection with."""

    env: Mapping[str, str]

    @property
    def script(self) -> str:
        """The path after the port in ``agi://host:port/script`` ("route")."""
        script = self.env.get("agi_network_script")
        if script is None:
            script = urlsplit(self.env.get("agi_request", "")).path
        return script.strip("/").split("?", 1)[0]

    @property
    def args(self) -> list[str]:
        """``agi_arg_1``, ``agi_arg_2``, … in order."""
        out: list[str] = []
        i = 1
        while f"agi_arg_{i}" in self.env:
            out.append(self.env[f"agi_arg_{i}"])
            i += 1
        return out

    def arg(self, index: int, default: str = "") -> str:
        """The 1-based argument, or ``default`` when absent or empty."""
        args = self.args
        value = args[index - 1] if 0 < index <= len(args) else ""
        return value or default

    @property
    def caller_number(self) -> str | None:
        """The caller's number as Asterisk knew it (None when withheld)."""
        number = self.env.get("agi_callerid", "").strip()
        if not number or number.lower() in ("unknown", "<unknown>", "anonymous"):
            return None
        return number


class AgiChannel:
    """The script's side of one AGI conversation."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader = reader
        self._writer = writer
        self.hung_up = False

    async def command(self, line: str) -> AgiReply:
        """Send one command and return its reply; raises AgiHangup / AgiError."""
        if "\n" in line or "\r" in line:
            raise ValueError("an AGI command is one line")
        self._writer.write(line.encode("utf-8") + b"\n")
        await self._writer.drain()
        while True:
            raw = await asyncio.wait_for(self._reader.readline(), REPLY_TIMEOUT_S)
            if not raw:
                raise AgiHangup("Asterisk closed the AGI connection")
            text = raw.decode("utf-8", "replace").rstrip("\r\n")
            if text.startswith("HANGUP"):
                # Asterisk's asynchronous hangup notice; the reply still follows.
                self.hung_up = True
                continue
            break
        m = _REPLY.match(text)
        if m is None:
            raise AgiError(f"unexpected AGI reply {text!r}")
        code = int(m["code"])
        if m["sep"] == "-":
            # Multi-line usage text: read through "520 End of proper usage."
            while True:
                more = await asyncio.wait_for(self._reader.readline(), REPLY_TIMEOUT_S)
                if not more or more.decode("utf-8", "replace").startswith(f"{code} "):
                    break
        reply = AgiReply(
            code=code,
            result=int(m["result"]) if m["result"] is not None else None,
            data=m["data"],
            text=text,
        )
        if code == 511:
            self.hung_up = True
            raise AgiHangup(text)
        if code != 200:
            raise AgiError(text)
        return reply

    async def set_variable(self, name: str, value: str) -> AgiReply:
        """``SET VARIABLE``: the dialplan reads it once the AGI returns."""
        return await self.command(f'SET VARIABLE {name} "{_quote(value)}"')

    async def verbose(self, message: str, level: int = 1) -> AgiReply:
        """A line on the Asterisk console at that verbosity."""
        return await self.command(f'VERBOSE "{_quote(message)}" {level}')


def _quote(value: str) -> str:
    # Asterisk's AGI argument parser honours backslash escapes inside quotes.
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", " ").replace("\r", " ")


AgiHandler = Callable[[AgiRequest, AgiChannel], Awaitable[None]]


class FastAgiServer:
    """Serves ``agi://host:port/<script>`` requests with one handler per script name."""

    def __init__(self, handlers: Mapping[str, AgiHandler], host: str = "127.0.0.1", port: int = 4573) -> None:
        self.handlers = dict(handlers)
        self.host = host
        self._port = port
        self._server: asyncio.base_events.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self.requests_served = 0
        self.requests_failed = 0

    @property
    def port(self) -> int:
        """The bound port (the real one when 0 was asked)."""
        return self._port

    async def start(self) -> None:
        """Listen for Asterisk's connections."""
        self._server = await asyncio.start_server(self._serve, self.host, self._port)
        self._port = self._server.sockets[0].getsockname()[1]
        log.info("FastAGI listening on %s:%d", self.host, self._port)

    async def stop(self) -> None:
        """Stop listening and end conversations in progress."""
        if self._server is not None:
            self._server.close()
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self._server is not None:
            with contextlib.suppress(Exception):
                await self._server.wait_closed()
            self._server = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        try:
            request = await asyncio.wait_for(read_environment(reader), ENV_TIMEOUT_S)
            handler = self.handlers.get(request.script)
            channel = AgiChannel(reader, writer)
            if handler is None:
                log.warning("FastAGI request for unknown script %r", request.script)
                self.requests_failed += 1
                # Closing without a word: the dialplan sees AGISTATUS=SUCCESS with no
                # variables set, so it must (and ours does) treat that as a failure too.
                with contextlib.suppress(AgiError, OSError, asyncio.TimeoutError):
                    await channel.verbose(f"pbxbridge: no AGI script {request.script!r}")
                return
            await handler(request, channel)
            self.requests_served += 1
        except AgiHangup:
            log.info("caller hung up during AGI")
        except (TimeoutError, AgiError, ConnectionError, asyncio.IncompleteReadError) as exc:
            self.requests_failed += 1
            log.warning("FastAGI conversation failed: %s", exc)
        except Exception:
            self.requests_failed += 1
            log.exception("FastAGI handler failed")
        finally:
            if task is not None:
                self._tasks.discard(task)
            with contextlib.suppress(Exception):
                writer.close()
                await writer.wait_closed()


async def read_environment(reader: asyncio.StreamReader) -> AgiRequest:
    """Read ``agi_*`` lines up to the blank line; raises AgiError on anything else."""
    env: dict[str, str] = {}
    for _ in range(MAX_ENV_LINES):
        raw = await reader.readline()
        if not raw:
            raise AgiError("connection closed before the AGI environment ended")
        if len(raw) > MAX_LINE_BYTES:
            raise AgiError("AGI environment line too long")
        line = raw.decode("utf-8", "replace").rstrip("\r\n")
        if not line:
            return AgiRequest(env)
        key, sep, value = line.partition(":")
        if not sep or not key.startswith("agi_"):
            raise AgiError(f"not an AGI environment line: {line[:80]!r}")
        env[key.strip()] = value[1:] if value.startswith(" ") else value
    raise AgiError("AGI environment too long")
