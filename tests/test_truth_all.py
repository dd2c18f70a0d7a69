"""Every call of every shared capture, exactly as scripted, by both ways into the journal.

`pbxbridge replay` of every captured stream into a database, and `pbxbridge run` (the daemon,
in its own process) following `pbxbridge simulate` (another process) serving the same streams
over TCP. Each journal is held to expected.json by the one comparison of
tests/scenario_check.py: per scenario every call's direction, client, managers, status,
queues, rings, waits, talk times, transfers, recording and voicemail message, and no call
beyond the scripted ones. The scenarios are read from expected.json: a new capture is tested
the day it arrives.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import signal
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pbxbridge.ami.traces import load_trace
from pbxbridge.cli.main import main
from pbxbridge.config import RecordingsConfig
from tests.conftest import fresh_database
from tests.fixtures_ami import WAIT_S, journal
from tests.fixtures_service import SECRET, USER, DaemonProcess, write_config
from tests.scenario_check import (
    UNSCRIPTED,
    journal_problems,
    scenario_names,
    voicemail_messages,
)

Row = dict[str, Any]
SCENARIOS = scenario_names()


def _voicemail_setting(shared_dir: Path) -> dict[str, str]:
    """Where the lab's voicemail spool is, for the daemon and replay, from settings that have the key.

    Without it nothing can find the message a caller left, and the comparison says so.
    """
    if "voicemail_root" not in {f.name for f in dataclasses.fields(RecordingsConfig)}:
        return {}
    return {"PBXBRIDGE_RECORDINGS__VOICEMAIL_ROOT": str(shared_dir / "voicemail")}


def _traces(shared_dir: Path) -> dict[str, Path]:
    """Every captured stream present, by scenario, in file order (the order they are served)."""
    return {path.stem: path for path in sorted(shared_dir.glob("*.ami"))}


def _database(request: pytest.FixtureRequest, backend: str, directory: Path) -> contextlib.AbstractContextManager[str]:
    """A fresh, migrated database for a whole module's tests (the conftest's templates, copied)."""
    return contextlib.contextmanager(fresh_database)(request, backend, directory)


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def backend(request: pytest.FixtureRequest) -> str:
    """Both databases, never skipped."""
    return str(request.param)


@pytest.fixture(scope="module")
def replayed(
    request: pytest.FixtureRequest, backend: str, shared_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[list[Row]]:
    """The journal `pbxbridge replay` of every capture writes."""
    with _database(request, backend, tmp_path_factory.mktemp(f"replay-{backend}")) as url:
        paths = [str(p) for p in _traces(shared_dir).values()]
        with pytest.MonkeyPatch.context() as patch:
            for key, value in _voicemail_setting(shared_dir).items():
                patch.setenv(key, value)
            assert main(["replay", *paths, "--db", url, "--recordings", str(shared_dir / "recordings")]) == 0
        yield journal(url)


@pytest.fixture(scope="module")
def followed(
    request: pytest.FixtureRequest, backend: str, shared_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[list[Row]]:
    """The journal `pbxbridge run` writes while `pbxbridge simulate` serves every capture."""
    directory = tmp_path_factory.mktemp(f"daemon-{backend}")
    with _database(request, backend, directory) as url:
        asyncio.run(_follow(url, shared_dir, directory))
        yield journal(url)


async def _follow(url: str, shared_dir: Path, directory: Path) -> None:
    paths = list(_traces(shared_dir).values())
    events = sum(len(load_trace(p).events) for p in paths)
    sim_log = directory / "simulate.log"
    with sim_log.open("wb") as log:
        # As fast as the daemon reads; the stream waits for its login (the default hold).
        sim = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "pbxbridge", "simulate", *map(str, paths), "--port", "0", "--speed", "0",
            "--username", USER, "--secret", SECRET,
            stdout=asyncio.subprocess.PIPE, stderr=log,
        )
    try:
        assert sim.stdout is not None
        # The simulator binds port 0 itself and says which port it got.
        line = (await asyncio.wait_for(sim.stdout.readline(), WAIT_S)).decode()
        assert line.startswith("listening on 127.0.0.1:"), (line, sim_log.read_text())
        port = int(line.strip().rsplit(":", 1)[1])
        config = write_config(directory / "pbxbridge.toml", url, port, shared_dir / "recordings")
        daemon = DaemonProcess(config, directory / "daemon.log", env=_voicemail_setting(shared_dir))
        try:
            # Every event taken (and the greeting of its one login), every finished call in the
            # journal, no call left in progress: its own log says so.
            await daemon.wait_saved(events=events + 1, in_progress=0)
        finally:
            daemon.terminate()
            assert await daemon.exited() == 0, daemon.entries[-5:]
        assert not [e for e in daemon.entries if e.get("level") in ("ERROR", "CRITICAL")]
    finally:
        if sim.returncode is None:
            sim.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(sim.wait(), WAIT_S) == 0, sim_log.read_text()


def _problems(rows: list[Row], shared_dir: Path, expected: dict[str, Any]) -> dict[str, list[str]]:
    return journal_problems(expected, rows, _traces(shared_dir), messages=voicemail_messages(shared_dir))


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_replay_writes_every_call_as_scripted(
    replayed: list[Row], shared_dir: Path, expected: dict[str, Any], scenario: str
) -> None:
    assert _problems(replayed, shared_dir, expected)[scenario] == []


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_daemon_writes_every_call_as_scripted(
    followed: list[Row], shared_dir: Path, expected: dict[str, Any], scenario: str
) -> None:
    assert _problems(followed, shared_dir, expected)[scenario] == []


def test_replay_writes_no_call_beyond_the_scripted(
    replayed: list[Row], shared_dir: Path, expected: dict[str, Any]
) -> None:
    assert _problems(replayed, shared_dir, expected)[UNSCRIPTED] == []
    assert len(replayed) == sum(len(s["calls"]) for s in expected.values())


def test_daemon_writes_no_call_beyond_the_scripted(
    followed: list[Row], shared_dir: Path, expected: dict[str, Any]
) -> None:
    assert _problems(followed, shared_dir, expected)[UNSCRIPTED] == []
    assert len(followed) == sum(len(s["calls"]) for s in expected.values())


def test_both_ways_write_the_same_journal(replayed: list[Row], followed: list[Row]) -> None:
    # Beyond what the script fixes (answer times, every recording, the PBX's name...), the
    # daemon and the replay make the same calls of the same events. Only the clients' card
    # ids may differ: the order cards are made in is not the order calls start in.
    def cardless(rows: list[Row]) -> list[Row]:
        return [{k: v for k, v in row.items() if k != "client_id"} for row in rows]

    assert cardless(followed) == cardless(replayed)


def test_every_capture_has_a_script(shared_dir: Path, expected: dict[str, Any]) -> None:
    assert sorted(_traces(shared_dir)) == sorted(expected)
