"""Helpers for AMI tests: a plain TCP client that shows the wire as it is, waiting, the journal."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from pbxbridge.ami.frames import Frame, FrameDecoder, encode_frame
from pbxbridge.calls.journal import fetch_journal
from pbxbridge.cli.main import main
from pbxbridge.db.engine import make_engine, session_factory

# Generous bound for anything the tests wait for; a hang fails instead of blocking CI.
WAIT_S = 30.0


async def wait_until(predicate: Callable[[], bool], timeout: float = WAIT_S) -> None:
    """Poll ``predicate`` until it holds; fail the test if it never does."""
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.01)


class RawAmiClient:
    """A manager client with no library in between: what it reads is what was sent."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.decoder = FrameDecoder()
        self.banner: str | None = None
        self.raw = bytearray()
        self._pending: list[Frame] = []

    @classmethod
    async def connect(cls, port: int, host: str = "127.0.0.1") -> RawAmiClient:
        """Connect and read the banner line."""
        reader, writer = await asyncio.open_connection(host, port)
        client = cls(reader, writer)
        line = await asyncio.wait_for(reader.readline(), WAIT_S)
        client.raw += line
        client.banner = line.decode().rstrip("\r\n")
        client.decoder.expect_banner(False)
        return client

    def send(self, action: Frame) -> None:
        """Send one action frame."""
        self.writer.write(encode_frame(action))

    async def read_frame(self) -> Frame:
        """The next frame from the server (fails the test on EOF or silence)."""
        while not self._pending:
            data = await asyncio.wait_for(self.reader.read(65536), WAIT_S)
            if not data:
                raise EOFError("server closed the connection")
            self.raw += data
            self._pending += self.decoder.feed(data)
        return self._pending.pop(0)

    async def read_until(self, predicate: Callable[[Frame], bool]) -> list[Frame]:
        """Frames up to and including the first one ``predicate`` accepts."""
        frames: list[Frame] = []
        while True:
            frame = await self.read_frame()
            frames.append(frame)
            if predicate(frame):
                return frames

    async def login(self, username: str = "pbxbridge", secret: str = "s3cret", events: str = "on") -> Frame:
        """Log in and return the response."""
        self.send({"Action": "Login", "ActionID": "login-1", "Username": username, "Secret": secret, "Events": events})
        return (await self.read_until(lambda f: f.get("ActionID") == "login-1"))[-1]

    async def closed_by_server(self) -> bool:
        """Whether the server hangs up (reads to EOF)."""
        try:
            while await asyncio.wait_for(self.reader.read(65536), WAIT_S):
                pass
        except ConnectionError:
            pass
        return True

    async def close(self) -> None:
        """Close the connection."""
        self.writer.close()
        try:
            await self.writer.wait_closed()
        except ConnectionError:
            pass


def live_linkedids(events: list[Frame] | tuple[Frame, ...]) -> set[str]:
    """Linkedids of channels created and not yet hung up in these events."""
    up: dict[str, str] = {}
    for event in events:
        if event["Event"] == "Newchannel":
            up[event["Uniqueid"]] = event["Linkedid"]
        elif event["Event"] == "Hangup":
            up.pop(event["Uniqueid"], None)
    return set(up.values())


def trace_path(shared_dir: Path, name: str) -> Path:
    """A captured trace by file name."""
    path = shared_dir / name
    assert path.is_file(), path
    return path


def journal(url: str) -> list[dict[str, Any]]:
    """The journal as `pbxbridge calls --json` gives it."""

    async def go() -> list[dict[str, Any]]:
        engine = make_engine(url)
        try:
            async with session_factory(engine)() as session:
                return await fetch_journal(session)
        finally:
            await engine.dispose()

    return asyncio.run(go())


def replay_again(url: str, shared_dir: Path, names: tuple[str, ...], capsys: pytest.CaptureFixture[str]) -> str:
    """Run `pbxbridge replay` of the same traces on the same database; return its summary."""
    capsys.readouterr()
    paths = [str(trace_path(shared_dir, n)) for n in names]
    assert main(["replay", *paths, "--db", url, "--recordings", str(shared_dir / "recordings")]) == 0
    return capsys.readouterr().out
