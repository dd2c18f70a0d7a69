"""The FastAGI server's side of the AGI conversation, against Asterisk's replies over TCP."""

from __future__ import annotations

import asyncio
import shlex
from collections.abc import AsyncIterator

import pytest

from pbxbridge.routing.agi import AgiChannel, AgiRequest, FastAgiServer

ENV = (
    "agi_network: yes\nagi_network_script: route\nagi_request: agi://127.0.0.1/route\n"
    "agi_channel: PJSIP/trunk-00000007\nagi_callerid: unknown\nagi_arg_1: 2\nagi_arg_2: \n"
    "agi_arg_3: NOANSWER\n\n"
)


class Seen:
    requests: list[AgiRequest]
    outcomes: list[str]

    def __init__(self) -> None:
        self.requests = []
        self.outcomes = []


@pytest.fixture
async def server() -> AsyncIterator[tuple[FastAgiServer, Seen]]:
    seen = Seen()

    async def route(request: AgiRequest, channel: AgiChannel) -> None:
        seen.requests.append(request)
        await channel.set_variable("PBXB_DEST", 'say "hi" \\ bye')
        seen.outcomes.append("first")
        await channel.verbose("second command", 3)
        seen.outcomes.append("second")

    srv = FastAgiServer({"route": route}, port=0)
    await srv.start()
    yield srv, seen
    await srv.stop()


async def talk(port: int, env: str, replies: list[bytes]) -> list[str]:
    """Asterisk's side: the environment, then one scripted reply per command; the commands read."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(env.encode())
    await writer.drain()
    commands: list[str] = []
    try:
        for reply in replies:
            line = await asyncio.wait_for(reader.readline(), 5)
            if not line:
                break
            commands.append(line.decode().rstrip("\n"))
            writer.write(reply)
            await writer.drain()
        # The script closes the connection when it is done.
        assert await asyncio.wait_for(reader.read(), 5) == b""
    finally:
        writer.close()
        await writer.wait_closed()
    return commands


async def test_environment_arguments_and_quoting(server: tuple[FastAgiServer, Seen]) -> None:
    srv, seen = server
    commands = await talk(srv.port, ENV, [b"200 result=1\n", b"200 result=1\n"])
    [request] = seen.requests
    assert request.script == "route"
    assert request.args == ["2", "", "NOANSWER"]
    assert request.arg(2, "0") == "0"
    # Asterisk says "unknown" for a withheld number.
    assert request.caller_number is None
    # Quotes and backslashes survive Asterisk's argument parser (which unescapes as a shell does).
    assert shlex.split(commands[0]) == ["SET", "VARIABLE", "PBXB_DEST", 'say "hi" \\ bye']
    assert commands[1] == 'VERBOSE "second command" 3'
    assert seen.outcomes == ["first", "second"]
    assert (srv.requests_served, srv.requests_failed) == (1, 0)


async def test_hangup_notice_before_a_reply(server: tuple[FastAgiServer, Seen]) -> None:
    srv, seen = server
    # The caller hung up: Asterisk announces it, answers the command, then refuses the next one.
    dead = b"511 Command Not Permitted on a dead channel or intercept routine\n"
    await talk(srv.port, ENV, [b"HANGUP\n200 result=1\n", dead])
    assert seen.outcomes == ["first"]
    # A caller hanging up is not a failure of pbxbridge.
    assert srv.requests_failed == 0


async def test_refused_command_and_usage_text(server: tuple[FastAgiServer, Seen]) -> None:
    srv, seen = server
    await talk(srv.port, ENV, [b"510 Invalid or unknown command\n"])
    usage = (
        b"520-Invalid command syntax.  Proper usage follows:\n"
        b"Usage: SET VARIABLE <variablename> <value>\n"
        b"520 End of proper usage.\n"
    )
    await talk(srv.port, ENV, [usage])
    assert seen.outcomes == []
    assert srv.requests_failed == 2


async def test_not_agi_and_unknown_script(server: tuple[FastAgiServer, Seen]) -> None:
    srv, seen = server
    # An HTTP probe on the AGI port: dropped without a word.
    assert await talk(srv.port, "GET / HTTP/1.0\r\n\r\n", []) == []
    # A script nobody serves: one VERBOSE for the console, no variables.
    commands = await talk(srv.port, ENV.replace("script: route", "script: nosuch"), [b"200 result=1\n"])
    assert commands == ["VERBOSE \"pbxbridge: no AGI script 'nosuch'\" 1"]
    assert seen.requests == []
    assert srv.requests_failed == 2
