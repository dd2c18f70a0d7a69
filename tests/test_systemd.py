"""The systemd units verify, and the daemon speaks sd_notify."""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from pbxbridge.service import systemd

UNITS = Path(__file__).resolve().parent.parent / "systemd"
INSTALLED_AT = "/opt/pbxbridge/.venv/bin/pbxbridge"


def test_units_verify(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    assert analyze, "systemd-analyze is part of systemd, present on every supported host"
    # verify insists that ExecStart exists: point it at this checkout's command.
    here = str(Path(sys.executable).with_name("pbxbridge"))
    assert Path(here).exists()
    names = []
    for unit in UNITS.glob("*.service"):
        text = unit.read_text()
        assert INSTALLED_AT in text
        (tmp_path / unit.name).write_text(text.replace(INSTALLED_AT, here))
        names.append(unit.name.replace("@.service", "@1.service"))
    assert sorted(names) == ["pbxbridge-transcriber@1.service", "pbxbridge.service"]
    result = subprocess.run([analyze, "verify", *names], cwd=tmp_path, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    # Nothing printed for our units: warnings count as failures too.
    assert "pbxbridge" not in result.stderr, result.stderr


def test_daemon_unit_is_notify_with_watchdog_and_hardening() -> None:
    text = (UNITS / "pbxbridge.service").read_text()
    for line in ("Type=notify", "Restart=on-failure", "ProtectSystem=strict", "NoNewPrivileges=true"):
        assert line in text
    assert "WatchdogSec=" in text and "EnvironmentFile=" in text and "User=pbxbridge" in text


@pytest.mark.parametrize("abstract", [False, True])
def test_notify_reaches_the_socket(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, abstract: bool) -> None:
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as server:
        if abstract:
            name = f"pbxbridge-test-{tmp_path.name}"
            server.bind("\0" + name)
            monkeypatch.setenv("NOTIFY_SOCKET", "@" + name)
        else:
            path = tmp_path / "notify"
            server.bind(str(path))
            monkeypatch.setenv("NOTIFY_SOCKET", str(path))
        server.settimeout(5)
        assert systemd.ready("AMI logged in")
        assert server.recv(4096).decode().splitlines() == ["READY=1", "STATUS=AMI logged in"]
        assert systemd.watchdog_ping()
        assert server.recv(4096) == b"WATCHDOG=1"


def test_watchdog_interval_is_half_of_watchdogsec(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WATCHDOG_USEC", "60000000")
    monkeypatch.delenv("WATCHDOG_PID", raising=False)
    assert systemd.watchdog_interval() == 30.0
    monkeypatch.setenv("WATCHDOG_PID", "1")
    assert systemd.watchdog_interval() is None


def test_without_systemd_nothing_is_sent(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    assert systemd.ready() is False
