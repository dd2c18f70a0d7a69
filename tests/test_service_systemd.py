"""systemd sees the daemon as it is: ready only once AMI is logged in, its status, its watchdog, its stop."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import sqlite3
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path

import asyncpg
import pytest
from sqlalchemy.engine import make_url

from pbxbridge.ami.frames import Frame
from pbxbridge.ami.simulator import AmiSimulator, ClientSession
from pbxbridge.ami.traces import load_trace
from pbxbridge.app import Daemon
from pbxbridge.config import Config, DatabaseConfig, PbxConfig, RecordingsConfig
from tests.fixtures_ami import trace_path, wait_until
from tests.fixtures_service import SECRET, USER, write_config

PBXBRIDGE = str(Path(sys.executable).with_name("pbxbridge"))


class NotifySocket:
    """systemd's end of NOTIFY_SOCKET: a datagram socket collecting what the daemon says."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.sock.setblocking(False)
        self.messages: list[list[str]] = []

    async def next(self, timeout: float = 30.0) -> list[str]:
        """The next datagram, as its lines."""
        loop = asyncio.get_running_loop()
        data = await asyncio.wait_for(loop.sock_recv(self.sock, 4096), timeout)
        lines = data.decode().splitlines()
        self.messages.append(lines)
        return lines

    async def until(self, predicate: Callable[[list[str]], bool], timeout: float = 30.0) -> list[str]:
        """Datagrams up to the first one ``predicate`` accepts; that one."""
        async with asyncio.timeout(timeout):
            while True:
                lines = await self.next()
                if predicate(lines):
                    return lines

    def drain(self) -> None:
        """Read every datagram already sent."""
        while True:
            try:
                data = self.sock.recv(4096)
            except BlockingIOError:
                return
            self.messages.append(data.decode().splitlines())

    def close(self) -> None:
        self.sock.close()


def _recording_logins(sim: AmiSimulator) -> tuple[list[str], list[str]]:
    """Wrap the simulator's Login so the test knows when logins were accepted or refused."""
    accepted: list[str] = []
    refused: list[str] = []
    login = sim.action_handlers["login"]

    async def recording(server: AmiSimulator, session: ClientSession, action: Frame) -> None:
        await login(server, session, action)
        (accepted if session.authenticated else refused).append(session.peer)

    sim.action_handlers["login"] = recording
    return accepted, refused


def test_ready_only_after_ami_login_then_status_watchdog_and_stopping(
    db_url: str, tmp_path: Path, shared_dir: Path
) -> None:
    async def go() -> None:
        trace = load_trace(trace_path(shared_dir, "01-inbound-answered.ami"))
        # Until the PBX takes the daemon's secret, the daemon must not say it is ready.
        sim = AmiSimulator([trace], speed=50, username=USER, secret="not-yet")
        accepted, refused = _recording_logins(sim)
        await sim.start()
        notify = NotifySocket(tmp_path / "notify")
        config = write_config(tmp_path / "pbxbridge.toml", db_url, sim.port, shared_dir / "recordings")
        env = dict(os.environ, NOTIFY_SOCKET=str(notify.path), WATCHDOG_USEC="400000", PBXBRIDGE_CONFIG=str(config))
        env.pop("WATCHDOG_PID", None)
        proc = await asyncio.create_subprocess_exec(
            PBXBRIDGE, "run", env=env, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL
        )
        try:
            # The schema is migrated, AMI is being tried: status lines, watchdog pings, no READY.
            await notify.until(lambda m: "STATUS=logging in to AMI" in m)
            await notify.until(lambda m: m == ["WATCHDOG=1"])
            await wait_until(lambda: len(refused) >= 2)
            notify.drain()
            assert not any("READY=1" in m for m in notify.messages)
            assert accepted == []
            sim.secret = SECRET
            ready = await notify.until(lambda m: "READY=1" in m)
            assert accepted, "READY=1 came before the PBX accepted a login"
            assert "STATUS=AMI main logged in" in ready
            # Losing the PBX shows in the status; coming back too.
            sim.drop_clients()
            await notify.until(lambda m: any(s.startswith("STATUS=AMI main") and "logged in" not in s for s in m))
            await notify.until(lambda m: "STATUS=AMI main logged in" in m)
            pings = sum(1 for m in notify.messages if m == ["WATCHDOG=1"])
            await notify.until(lambda m: m == ["WATCHDOG=1"])
            assert sum(1 for m in notify.messages if m == ["WATCHDOG=1"]) == pings + 1
            proc.send_signal(signal.SIGTERM)
            await notify.until(lambda m: "STOPPING=1" in m)
            assert await asyncio.wait_for(proc.wait(), 30) == 0
            # READY=1 exactly once, however often AMI came back.
            assert sum(1 for m in notify.messages if "READY=1" in m) == 1
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
            notify.close()
            await sim.stop()

    assert shutil.which(PBXBRIDGE) or Path(PBXBRIDGE).exists()
    asyncio.run(go())


def test_watchdog_stops_while_a_database_write_hangs_and_resumes_after(
    db_url: str, tmp_path: Path, shared_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    notify_path = tmp_path / "notify"
    monkeypatch.setenv("NOTIFY_SOCKET", str(notify_path))
    monkeypatch.setenv("WATCHDOG_USEC", "200000")
    monkeypatch.delenv("WATCHDOG_PID", raising=False)
    url = make_url(db_url)
    names = ("03-inbound-abandoned.ami", "06-outbound-answered.ami")
    traces = [load_trace(trace_path(shared_dir, n)) for n in names]

    async def hold_calls_table() -> Callable[[], Awaitable[None]]:
        # Another writer holds the table the daemon must write: its write hangs.
        if url.get_backend_name() == "sqlite":
            locker = sqlite3.connect(str(url.database), isolation_level=None)
            locker.execute("BEGIN EXCLUSIVE")

            async def release_sqlite() -> None:
                locker.execute("COMMIT")
                locker.close()

            return release_sqlite
        conn = await asyncpg.connect(host=url.host, port=url.port, user=url.username, database=url.database)
        tx = conn.transaction()
        await tx.start()
        await conn.execute("LOCK TABLE calls IN ACCESS EXCLUSIVE MODE")

        async def release_pg() -> None:
            await tx.commit()
            await conn.close()

        return release_pg

    async def go() -> None:
        notify = NotifySocket(notify_path)
        sim = AmiSimulator(traces, speed=0, username=USER, secret=SECRET)
        await sim.start()
        config = Config(
            database=DatabaseConfig(url=db_url),
            recordings=RecordingsConfig(root=str(shared_dir / "recordings")),
            pbx=[PbxConfig(name="main", host="127.0.0.1", port=sim.port, username=USER, secret=SECRET)],
        )
        daemon = Daemon(config, listener_options={"backoff_initial_s": 0.05, "backoff_cap_s": 0.2})
        # Each answer the watchdog got when it asked whether to ping, in order.
        checks: list[bool] = []
        asked = daemon.healthy

        def healthy() -> bool:
            answer = asked()
            checks.append(answer)
            return answer

        daemon.healthy = healthy  # type: ignore[method-assign]
        release: Callable[[], Awaitable[None]] | None = None
        try:
            await daemon.start()
            await notify.until(lambda m: m == ["WATCHDOG=1"])
            release = await hold_calls_table()
            await wait_until(lambda: daemon.stats.calls_finished >= 1)
            # The watchdog found the daemon stuck. Its pings go out in the same step
            # as its checks, on this very loop: every ping of a healthy check is in
            # the socket by now, and what is read from here on came after.
            await wait_until(lambda: bool(checks) and not checks[-1])
            stuck_at = len(checks) - 1
            notify.drain()
            since = len(notify.messages)
            # Three more of its checks while the write hangs: no ping from any of them.
            await wait_until(lambda: len(checks) >= stuck_at + 4)
            notify.drain()
            assert not any(checks[stuck_at:])
            assert ["WATCHDOG=1"] not in notify.messages[since:]
            await release()
            release = None
            await notify.until(lambda m: m == ["WATCHDOG=1"])
            await daemon.flush()
            assert daemon.stats.calls_written == daemon.stats.calls_finished >= 2
        finally:
            if release is not None:
                await release()
            await daemon.stop()
            await sim.stop()
            notify.close()

    asyncio.run(go())
