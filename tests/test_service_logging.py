"""The daemon's log: one JSON object per line, a call's linkedid on its lines, secrets hidden."""

from __future__ import annotations

import asyncio
import io
import json
import logging
from pathlib import Path

from pbxbridge.ami.simulator import AmiSimulator
from pbxbridge.ami.traces import load_trace
from pbxbridge.config import Config, DatabaseConfig, PbxConfig, WebConfig
from pbxbridge.service.logging import REDACTED, install, make_handler
from tests.fixtures_ami import journal, trace_path
from tests.fixtures_service import SECRET, USER, DaemonProcess, write_config

DB_PASSWORD = "Pg-p@ss/w0rd"


def _logger(config: Config, fmt: str = "json") -> tuple[logging.Logger, io.StringIO]:
    """A logger of its own, set up the way the daemon sets up the root logger."""
    out = io.StringIO()
    root = logging.Logger("test-root")
    root.addHandler(make_handler(fmt, out))
    install(config, root)
    return root, out


def _config() -> Config:
    return Config(
        database=DatabaseConfig(url="postgresql://pbx:Pg-p%40ss%2Fw0rd@db.example:5432/pbxbridge"),
        pbx=[PbxConfig(name="main", secret=SECRET)],
        web=WebConfig(secret_key="web-key-0123456789abcdef"),
    )


def test_json_lines_carry_extra_fields_and_one_line_per_event() -> None:
    logger, out = _logger(_config())
    logger.warning("call %s/%s written", "main", "1795723449.4", extra={"linkedid": "1795723449.4", "pbx": "main"})
    try:
        raise ValueError("first line\nsecond line")
    except ValueError:
        logger.exception("writing failed", extra={"linkedid": "1795723484.8"})
    lines = out.getvalue().splitlines()
    assert len(lines) == 2
    first, second = (json.loads(line) for line in lines)
    assert first["message"] == "call main/1795723449.4 written"
    assert first["linkedid"] == "1795723449.4" and first["pbx"] == "main"
    assert first["level"] == "WARNING" and first["time"].endswith("+00:00")
    assert second["linkedid"] == "1795723484.8"
    assert "second line" in second["exception"] and "ValueError" in second["exception"]


def test_secrets_are_hidden_in_messages_arguments_exceptions_and_extras() -> None:
    logger, out = _logger(_config())
    logger.info("login with %s", SECRET)
    logger.info("connecting to %s", "postgresql://pbx:Pg-p%40ss%2Fw0rd@db.example:5432/pbxbridge")
    logger.info("raw password %s and key %s", DB_PASSWORD, "web-key-0123456789abcdef")
    # A URL or an AMI Login frame nobody configured is hidden too.
    logger.info("other url redis://u:hunter22@cache:6379/0 and frame {'Action': 'Login', 'Secret': 'xyzzy42'}")
    try:
        raise ConnectionError(f"refused: Secret: {SECRET}")
    except ConnectionError:
        logger.exception("AMI failed", extra={"detail": f"secret={SECRET}"})
    text = out.getvalue()
    for secret in (SECRET, DB_PASSWORD, "Pg-p%40ss%2Fw0rd", "web-key-0123456789abcdef", "hunter22", "xyzzy42"):
        assert secret not in text
    assert text.count(REDACTED) >= 8
    # What is left is still useful: who, where.
    assert "postgresql://pbx:***@db.example:5432/pbxbridge" in text
    assert all(json.loads(line) for line in text.splitlines())


def test_text_format_when_asked() -> None:
    config = _config()
    config.log.format = "text"
    logger, out = _logger(config, "text")
    logger.info("PBX has %d call(s) up", 3)
    line = out.getvalue().strip()
    assert line.endswith("INFO test-root: PBX has 3 call(s) up")


def test_daemon_log_is_json_with_linkedid_on_every_call_line(db_url: str, tmp_path: Path, shared_dir: Path) -> None:
    names = ("03-inbound-abandoned.ami", "06-outbound-answered.ami")
    traces = [load_trace(trace_path(shared_dir, n)) for n in names]
    log_path = tmp_path / "daemon.log"

    async def go() -> list[dict[str, object]]:
        sim = AmiSimulator(traces, speed=0, username=USER, secret=SECRET)
        await sim.start()
        config = write_config(tmp_path / "pbxbridge.toml", db_url, sim.port, shared_dir / "recordings", level="INFO")
        daemon = DaemonProcess(config, log_path)
        try:
            await sim.wait_replayed()
            # One call per scenario: the second written is the last.
            await daemon.wait_for(lambda e: str(e.get("message", "")).startswith("call main/")
                                  and sum(1 for x in daemon.entries if str(x["message"]).startswith("call main/")) == 2)
            daemon.terminate()
            assert await daemon.exited() == 0
        finally:
            await sim.stop()
        return daemon.entries

    entries = asyncio.run(go())
    # Every line parsed as JSON (DaemonProcess.read insists); each written call has its own line.
    written = [e for e in entries if str(e["message"]).startswith("call main/")]
    assert {e["linkedid"] for e in written} == {row["linkedid"] for row in journal(db_url)}
    assert all(e["pbx"] == "main" and e["status"] and e["direction"] for e in written)
    assert any(e["message"] == "pbxbridge daemon stopped" for e in entries)
    # The AMI session's lines name their PBX too.
    assert any(e.get("pbx") == "main" and "logged in to AMI" in str(e["message"]) for e in entries)
