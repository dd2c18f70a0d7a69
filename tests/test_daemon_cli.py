"""`pbxbridge simulate` and `pbxbridge run` as an operator starts them: separate processes over TCP."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from pbxbridge.app import Daemon
from pbxbridge.config import (
    Config,
    DatabaseConfig,
    DemoConfig,
    PbxConfig,
    RecordingsConfig,
)
from pbxbridge.demo.accounts import DEMO_PASSWORD
from pbxbridge.demo.pbx import demo_wanted, start_demo_pbx
from tests.fixtures_ami import WAIT_S, journal, replay_again, trace_path, wait_until
from tests.fixtures_web import ApiClient

USER, SECRET = "pbxbridge", "s3cret"
NAMES = ("01-inbound-answered.ami", "10-internal.ami", "pjsip-03-click-to-call-busy.ami")


def _pbxbridge(*args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "pbxbridge", *args],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, **(env or {})},
    )


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _stop(proc: subprocess.Popen[str]) -> tuple[int, str, str]:
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=WAIT_S)
    return proc.returncode, out, err


def test_run_follows_a_simulated_pbx_until_sigterm(
    db_url: str, shared_dir: Path, expected: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    paths = [str(trace_path(shared_dir, n)) for n in NAMES]
    sim = _pbxbridge("simulate", *paths, "--port", "0", "--speed", "0", "--username", USER, "--secret", SECRET)
    run: subprocess.Popen[str] | None = None
    try:
        assert sim.stdout is not None
        line = sim.stdout.readline()
        assert line.startswith("listening on 127.0.0.1:"), line
        port = line.strip().rsplit(":", 1)[1]
        run = _pbxbridge(
            "run", "--db", db_url, "--recordings", str(shared_dir / "recordings"),
            env={
                "PBXBRIDGE_PBX__MAIN__PORT": port,
                "PBXBRIDGE_PBX__MAIN__USERNAME": USER,
                "PBXBRIDGE_PBX__MAIN__SECRET": SECRET,
                "PBXBRIDGE_LOG__FORMAT": "text",
                # The web and FastAGI servers the daemon also starts: ports they pick themselves.
                "PBXBRIDGE_WEB__PORT": "0",
                "PBXBRIDGE_ROUTING__AGI_PORT": "0",
                # Transcription has its own tests; here it would only load the model.
                "PBXBRIDGE_TRANSCRIPTION__WORKERS": "0",
            },
        )
        scripted = sum(len(expected[n.removesuffix(".ami")]["calls"]) for n in NAMES)
        deadline = time.monotonic() + WAIT_S
        while len(journal(db_url)) < scripted:
            assert run.poll() is None, run.communicate()
            assert time.monotonic() < deadline, "the daemon wrote too few calls"
            time.sleep(0.25)
        code, _out, err = _stop(run)
        assert code == 0, err
        assert "logged in to AMI" in err and "pbxbridge daemon stopped" in err
    finally:
        if run is not None and run.poll() is None:
            run.kill()
        code, _out, err = _stop(sim)
    assert code == 0, err
    rows = journal(db_url)
    assert len(rows) == scripted
    summary = replay_again(db_url, shared_dir, NAMES, capsys)
    assert f"{scripted} call(s), 0 new, {scripted} already in the journal" in summary
    assert journal(db_url) == rows


def test_simulate_refuses_missing_traces(tmp_path: Path) -> None:
    proc = _pbxbridge("simulate", str(tmp_path / "nope.ami"), "--port", "0")
    out, err = proc.communicate(timeout=WAIT_S)
    assert proc.returncode == 2
    assert "nope.ami: no such file" in err


def test_demo_mode_only_without_a_configured_pbx() -> None:
    assert demo_wanted(Config())
    assert not demo_wanted(Config(pbx=[PbxConfig(host="pbx.example.net", secret="x")]))
    assert demo_wanted(Config(pbx=[PbxConfig(host="pbx.example.net")], demo=DemoConfig(mode="on")))
    assert not demo_wanted(Config(demo=DemoConfig(mode="off")))


def test_demo_pbx_keeps_making_new_calls(db_url: str, shared_dir: Path) -> None:
    trace = trace_path(shared_dir, "06-outbound-answered.ami")
    config = Config(database=DatabaseConfig(url=db_url), recordings=RecordingsConfig(root=str(shared_dir / "recordings")))

    async def go() -> None:
        simulator, demo_config = await start_demo_pbx(config, [trace], speed=0)
        daemon = Daemon(demo_config, listener_options={"backoff_initial_s": 0.05})
        try:
            assert demo_config.pbx[0].port == simulator.port
            await daemon.start()
            await wait_until(lambda: daemon.stats.calls_written >= 3)
        finally:
            await daemon.stop()
            await simulator.stop()

    asyncio.run(go())
    rows = journal(db_url)
    linkedids = [r["linkedid"] for r in rows]
    assert len(set(linkedids)) == len(rows) >= 3
    first = linkedids[0]
    assert f"{first}-1" in linkedids and f"{first}-2" in linkedids
    # Every pass is the same conversation, placed anew.
    assert {(r["direction"], r["status"], r["client_number"], r["manager"]) for r in rows} == {
        (rows[0]["direction"], rows[0]["status"], rows[0]["client_number"], rows[0]["manager"])
    }
    assert all(abs(r["talk_s"] - rows[0]["talk_s"]) < 0.01 for r in rows)
    assert len({r["started_at"] for r in rows}) == len(rows)


def test_demo_command_fills_the_journal_from_the_bundled_calls(db_url: str) -> None:
    web_port = _free_port()
    demo = _pbxbridge(
        "demo", "--speed", "50", "--db", db_url,
        env={
            "PBXBRIDGE_LOG__FORMAT": "text",
            "PBXBRIDGE_WEB__PORT": str(web_port),
            "PBXBRIDGE_ROUTING__AGI_PORT": "0",
            "PBXBRIDGE_TRANSCRIPTION__WORKERS": "0",
        },
    )
    try:
        deadline = time.monotonic() + WAIT_S
        while len(journal(db_url)) < 3:
            assert demo.poll() is None, demo.communicate()
            assert time.monotonic() < deadline, "the demo wrote too few calls"
            time.sleep(0.2)
        # The printed demo sign-in opens the journal.
        status, calls = asyncio.run(_signed_in_journal(f"http://127.0.0.1:{web_port}", "head", DEMO_PASSWORD))
    finally:
        code, out, err = _stop(demo)
    assert code == 0, err
    assert "demo mode" in err
    assert f"http://127.0.0.1:{web_port}/" in out and "head" in out and DEMO_PASSWORD in out
    assert status == 200 and calls["items"]
    rows = journal(db_url)
    # The bundled recordings are found: the first call was answered and recorded.
    assert rows[0]["status"] == "answered" and rows[0]["recording"]


async def _signed_in_journal(base_url: str, username: str, password: str) -> tuple[int, Any]:
    client = ApiClient(base_url)
    try:
        response = await client.login(username, password)
        assert response.status == 200
        return await client.json("GET", "/api/calls")
    finally:
        await client.close()
