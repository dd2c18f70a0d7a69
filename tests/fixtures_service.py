"""Helpers for service tests: `pbxbridge run` in its own process, its JSON log, its settings file."""

from __future__ import annotations

import asyncio
import json
import multiprocessing
import os
import signal
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from pbxbridge.ami.traces import load_trace
from pbxbridge.calls.tables import OpenCall
from pbxbridge.db.engine import make_engine, session_factory

USER, SECRET = "pbxbridge", "Am1-s3cret-Zq7"
WAIT_S = 30.0
PROGRESS = "calls in progress saved"

# Restarting the daemon twenty times must not cost twenty interpreter starts
# and imports on a busy CI machine: a fork server imports pbxbridge once, and
# each daemon is a fresh process forked from it that runs the `pbxbridge run`
# command line (the console script's own entry point) exactly as installed.
_FORKS = multiprocessing.get_context("forkserver")
_FORKS.set_forkserver_preload(
    ["pbxbridge.cli.main", "pbxbridge.app", "pbxbridge.web.daemon", "pbxbridge.routing.daemon", "pbxbridge.kpi.daemon"]
)


def write_config(
    path: Path,
    db_url: str,
    ami_port: int,
    recordings: Path,
    *,
    secret: str = SECRET,
    level: str = "DEBUG",
    fmt: str = "json",
    extra: str = "",
) -> Path:
    """A settings file for one PBX on ``ami_port``; web and FastAGI on ports the daemon picks.

    Port 0: the daemon binds whatever port is free when it starts (no test talks to
    them), so a port picked beforehand can never be taken by someone else meanwhile.
    """
    path.write_text(
        f"""
[database]
url = {json.dumps(db_url)}

[recordings]
root = {json.dumps(str(recordings))}

[[pbx]]
name = "main"
host = "127.0.0.1"
port = {ami_port}
username = "{USER}"
secret = {json.dumps(secret)}

[web]
port = 0
secret_key = "web-key-0123456789abcdef"

[routing]
agi_port = 0

[transcription]
# A SIGKILLed daemon would leave its worker processes behind (systemd's cgroup
# ends them in production); speech recognition is not what these tests are about.
workers = 0

[demo]
mode = "off"

[log]
level = "{level}"
format = "{fmt}"
{extra}
""",
        encoding="utf-8",
    )
    return path


def _run_command(argv: list[str], env: Mapping[str, str], log_path: str) -> None:
    # In the forked process: its stdout and stderr go to the log file.
    fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)
    sys.stdout = open(1, "w", buffering=1, closefd=False)  # noqa: SIM115
    sys.stderr = open(2, "w", buffering=1, closefd=False)  # noqa: SIM115
    os.environ.update(env)
    from pbxbridge.cli.main import main

    sys.exit(main(argv))


class DaemonProcess:
    """One `pbxbridge run` process; its log is read back line by line as JSON."""

    def __init__(self, config: Path, log_path: Path, env: Mapping[str, str] | None = None) -> None:
        self.log_path = log_path
        log_path.touch()
        self.offset = log_path.stat().st_size
        self.entries: list[dict[str, Any]] = []
        self._partial = b""
        self.process = _FORKS.Process(
            target=_run_command,
            args=(["run", "--config", str(config)], dict(env or {}), str(log_path)),
            daemon=True,
        )
        self.process.start()

    @property
    def pid(self) -> int:
        assert self.process.pid is not None
        return self.process.pid

    def read(self) -> list[dict[str, Any]]:
        """Log entries written since the last read (every line must be JSON)."""
        with self.log_path.open("rb") as fh:
            fh.seek(self.offset)
            data = fh.read()
        self.offset += len(data)
        data = self._partial + data
        lines = data.split(b"\n")
        self._partial = lines.pop()
        new = [json.loads(line) for line in lines if line.strip()]
        self.entries += new
        return new

    async def wait_for(self, predicate: Callable[[dict[str, Any]], bool], timeout: float = WAIT_S) -> dict[str, Any]:
        """The first log entry (from the start of this process) that ``predicate`` accepts."""
        async with asyncio.timeout(timeout):
            seen = 0
            while True:
                self.read()
                for entry in self.entries[seen:]:
                    if predicate(entry):
                        return entry
                seen = len(self.entries)
                if not self.process.is_alive():
                    self.read()
                    raise AssertionError(f"pbxbridge run exited ({self.process.exitcode}): {self.entries[-5:]}")
                await asyncio.sleep(0.02)

    async def wait_saved(self, events: int, in_progress: int | None = None) -> dict[str, Any]:
        """Wait until the daemon has saved all it did with ``events`` events, every finished call written."""

        def done(entry: dict[str, Any]) -> bool:
            return (
                entry.get("message") == PROGRESS
                and entry["events"] == events
                and entry["calls_unwritten"] == 0
                and entry["calls_unsaved"] == 0
                and (in_progress is None or entry["calls_in_progress"] == in_progress)
            )

        return await self.wait_for(done)

    def kill(self) -> None:
        """SIGKILL: no clean-up of any kind."""
        os.kill(self.pid, signal.SIGKILL)

    def terminate(self) -> None:
        """SIGTERM, as systemctl stop sends."""
        os.kill(self.pid, signal.SIGTERM)

    async def exited(self, timeout: float = WAIT_S) -> int:
        """Wait for the process to end; its exit code (negative: the signal)."""
        async with asyncio.timeout(timeout):
            while self.process.is_alive():
                await asyncio.sleep(0.02)
        self.process.join()
        self.read()
        code = self.process.exitcode
        assert code is not None
        return code


def trace_linkedids(path: Path) -> set[str]:
    """Every linkedid a captured trace mentions."""
    return {e["Linkedid"] for e in load_trace(path).events if e.get("Linkedid")}


def open_call_rows(url: str) -> int:
    """How many calls the database holds as still in progress."""

    async def go() -> int:
        engine = make_engine(url)
        try:
            async with session_factory(engine)() as session:
                return int((await session.execute(select(func.count()).select_from(OpenCall))).scalar_one())
        finally:
            await engine.dispose()

    return asyncio.run(go())
