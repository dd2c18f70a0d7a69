"""`pbxbridge backfill`: every captured call into the journal once, through the daemon's writer; resumed
after a kill with no call twice; clear errors for a wrong password, an unreachable database and bad rows."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from pbxbridge.calls.following import tracker_settings
from pbxbridge.calls.replay import replay_trace
from pbxbridge.cli.main import main
from pbxbridge.config import PbxConfig
from pbxbridge.db.engine import make_engine
from tests.conftest import fresh_database
from tests.fixtures_cel import (
    MYSQL_HOST,
    capture_tables,
    create_cdr_database,
    drop_cdr_database,
    insert_rows,
    load_captures,
    mysql_url,
)

# The lab's PBX kept CEL and CDR times in UTC.
LAB_ENV = {"PBXBRIDGE_PBX__MAIN__CDR_TIMEZONE": "UTC", "PBXBRIDGE_KPI__TIMEZONE": "Europe/Moscow"}
RANGE = ["--from", "01.11.2026", "--to", "2026-12-31"]


def _captures(shared_dir: Path) -> list[Path]:
    return sorted(shared_dir.glob("*.ami"))


def _ami_linkedids(shared_dir: Path) -> Counter[str]:
    settings = tracker_settings(PbxConfig())
    return Counter(c.linkedid for p in _captures(shared_dir) for c in replay_trace(p, settings))


def _rows(url: str, sql: str) -> list[Any]:
    async def go() -> list[Any]:
        engine = make_engine(url)
        try:
            async with engine.connect() as conn:
                return list((await conn.execute(text(sql))).all())
        finally:
            await engine.dispose()

    return asyncio.run(go())


@pytest.fixture
def lab_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in LAB_ENV.items():
        monkeypatch.setenv(key, value)


@pytest.fixture(scope="module")
def cdr_url(shared_dir: Path) -> Any:
    """One MariaDB asteriskcdrdb holding every capture's CEL and CDR (the module's tests only read it)."""

    async def make() -> str:
        url = await create_cdr_database("mysql")
        await load_captures(url, _captures(shared_dir))
        return url

    url = asyncio.run(make())
    yield url
    asyncio.run(drop_cdr_database(url))


def test_backfill_journals_every_call_once_marked_as_from_cel(
    lab_env: None, db_url: str, cdr_url: str, shared_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    expected = _ami_linkedids(shared_dir)
    assert main(["backfill", "--db", db_url, "--cdr-url", cdr_url, *RANGE]) == 0
    out = capsys.readouterr()
    assert f"{sum(expected.values())} call(s) read, {sum(expected.values())} new" in out.out
    assert "rows/s" in out.err and "100%" in out.err
    rows = _rows(db_url, "SELECT linkedid, source, status FROM calls")
    assert Counter(r[0] for r in rows) == expected
    assert {r[1] for r in rows} == {"cel"}
    # Again: the journal has them all; nothing is written twice (the finished run is not redone either).
    assert main(["backfill", "--db", db_url, "--cdr-url", cdr_url, *RANGE]) == 0
    assert Counter(r[0] for r in _rows(db_url, "SELECT linkedid FROM calls")) == expected


def _figures(url: str) -> list[tuple[Any, ...]]:
    """Every manager's figures of every day (and the department's), as the KPI pages read them."""
    rows = _rows(url, "SELECT * FROM kpi_manager_day")
    # A day as text: SQLite gives it so, PostgreSQL as a date.
    return sorted(tuple(str(v) if isinstance(v, date) else v for k, v in r._mapping.items() if k != "id") for r in rows)


def test_the_kpi_figures_of_imported_days_are_those_of_the_live_path(
    request: pytest.FixtureRequest, lab_env: None, db_url: str, cdr_url: str, shared_dir: Path,
    tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["backfill", "--db", db_url, "--cdr-url", cdr_url, *RANGE]) == 0
    assert f"KPIs rebuilt from {sum(_ami_linkedids(shared_dir).values())} calls" in capsys.readouterr().err
    (tmp_path / "live").mkdir()
    with contextlib.contextmanager(fresh_database)(request, "sqlite", tmp_path / "live") as live_url:
        assert main(["replay", *map(str, _captures(shared_dir)), "--db", live_url]) == 0
        live = _figures(live_url)
    imported = _figures(db_url)
    assert live and len(imported) == len(live)
    for ours, theirs in zip(imported, live, strict=True):
        # Every count the same; times and durations to CEL's second (it keeps no fractions), sums of them too.
        assert [v for v in ours if not isinstance(v, float)] == [v for v in theirs if not isinstance(v, float)]
        assert [v for v in ours if isinstance(v, float)] == pytest.approx(
            [v for v in theirs if isinstance(v, float)], rel=0.02, abs=2.0
        )
    # A finished import run again writes nothing, and rebuilds nothing.
    assert main(["backfill", "--db", db_url, "--cdr-url", cdr_url, *RANGE]) == 0
    assert "KPIs rebuilt" not in capsys.readouterr().err


def test_a_pbx_without_cel_is_imported_from_its_cdr(
    lab_env: None, db_url: str, cdr_url: str, shared_dir: Path
) -> None:
    assert main(["backfill", "--db", db_url, "--cdr-url", cdr_url, "--cdr-only", *RANGE]) == 0
    rows = _rows(db_url, "SELECT linkedid, source FROM calls")
    assert Counter(r[0] for r in rows) == _ami_linkedids(shared_dir)
    assert {r[1] for r in rows} == {"cdr"}


def test_calls_the_live_path_journaled_are_left_as_they_are(
    lab_env: None, db_url: str, cdr_url: str, shared_dir: Path
) -> None:
    live = shared_dir / "01-inbound-answered.ami"
    assert main(["replay", str(live), "--db", db_url]) == 0
    assert main(["backfill", "--db", db_url, "--cdr-url", cdr_url, *RANGE]) == 0
    rows = _rows(db_url, "SELECT linkedid, source FROM calls")
    assert Counter(r[0] for r in rows) == _ami_linkedids(shared_dir)
    assert dict(rows)["1795723449.4"] == "ami"
    assert Counter(source for _lid, source in rows)["ami"] == 1


def test_recordings_are_transcribed_only_when_asked(
    lab_env: None, db_url: str, cdr_url: str, shared_dir: Path
) -> None:
    common = ["backfill", "--db", db_url, "--cdr-url", cdr_url, "--recordings", str(shared_dir / "recordings")]
    assert main([*common, "--from", "2026-12-07", "--to", "2026-12-07"]) == 0
    assert _rows(db_url, "SELECT count(*) FROM transcription_jobs")[0][0] == 0
    assert _rows(db_url, "SELECT count(*) FROM recordings WHERE status = 'ok'")[0][0] > 0
    assert main([*common, "--from", "2026-11-26", "--to", "2026-11-26", "--transcribe"]) == 0
    with_sound = _rows(
        db_url,
        "SELECT count(*) FROM recordings r JOIN calls c ON c.id = r.call_id"
        " WHERE r.status = 'ok' AND c.started_at < '2026-11-27'",
    )[0][0]
    assert 0 < _rows(db_url, "SELECT count(*) FROM transcription_jobs")[0][0] == with_sound


def test_only_the_days_asked_for(lab_env: None, db_url: str, cdr_url: str, shared_dir: Path) -> None:
    # 07.12.2026 is the day scenarios 14-17 ran (in the PBX's zone, UTC).
    assert main(["backfill", "--db", db_url, "--cdr-url", cdr_url, "--from", "2026-12-07", "--to", "07.12.2026"]) == 0
    settings = tracker_settings(PbxConfig())
    later = {c.linkedid for n in ("14", "15", "16", "17") for p in shared_dir.glob(f"{n}-*.ami")
             for c in replay_trace(p, settings)}
    assert {r[0] for r in _rows(db_url, "SELECT linkedid FROM calls")} == later


def test_resumed_after_a_kill_midway_with_no_call_twice(
    request: pytest.FixtureRequest, cdr_url: str, shared_dir: Path, tmp_path: Path
) -> None:
    # One journal database is enough here (two processes, a kill): PostgreSQL, as in production.
    with contextlib.contextmanager(fresh_database)(request, "postgresql", tmp_path) as db_url:
        _kill_and_resume(db_url, cdr_url, shared_dir, tmp_path)


def _kill_and_resume(db_url: str, cdr_url: str, shared_dir: Path, tmp_path: Path) -> None:
    expected = _ami_linkedids(shared_dir)
    command = [sys.executable, "-m", "pbxbridge", "backfill", "--db", db_url, "--cdr-url", cdr_url, *RANGE,
               "--page-rows", "40"]
    env = {**os.environ, **LAB_ENV}
    # Slowed down so that the kill lands in the middle: about 1,200 rows at 200 rows a second.
    proc = subprocess.Popen([*command, "--max-rate", "200"], env=env, stdout=subprocess.DEVNULL,
                            stderr=(tmp_path / "first.log").open("wb"))
    try:
        deadline = time.monotonic() + 60
        journaled = 0
        while time.monotonic() < deadline and proc.poll() is None:
            journaled = _rows(db_url, "SELECT count(*) FROM calls")[0][0]
            saved = _rows(db_url, "SELECT count(*) FROM backfill_checkpoints")[0][0]
            if saved and journaled >= sum(expected.values()) // 2:
                break
            time.sleep(0.05)
        assert proc.poll() is None, "the run ended before it could be killed: " + (tmp_path / "first.log").read_text()
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
    before = _rows(db_url, "SELECT count(*) FROM calls")[0][0]
    assert 0 < before < sum(expected.values())
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert Counter(r[0] for r in _rows(db_url, "SELECT linkedid FROM calls")) == expected
    # It went on from its checkpoint: fewer rows read than the whole table.
    assert "rows" in done.stderr


def test_a_wrong_password_is_a_clear_error_at_start(lab_env: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    url = mysql_url("asteriskcdrdb", user="root", password="not-the-password")
    db_url = f"sqlite:///{tmp_path / 'journal.sqlite3'}"
    assert main(["backfill", "--db", db_url, "--cdr-url", url, *RANGE]) == 1
    err = capsys.readouterr().err
    assert "login refused" in err and "not-the-password" not in err
    # Said before anything started: no journal was even opened.
    assert not (tmp_path / "journal.sqlite3").exists()


def test_an_unreachable_database_is_a_clear_error_at_start(
    lab_env: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"mysql://root@{MYSQL_HOST}:1/asteriskcdrdb"
    db_url = f"sqlite:///{tmp_path / 'journal.sqlite3'}"
    started = time.monotonic()
    assert main(["backfill", "--db", db_url, "--cdr-url", url, *RANGE]) == 1
    assert "unreachable" in capsys.readouterr().err
    assert time.monotonic() - started < 30


def test_a_url_of_another_kind_is_refused(lab_env: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db_url = f"sqlite:///{tmp_path / 'journal.sqlite3'}"
    assert main(["backfill", "--db", db_url, "--cdr-url", "oracle://x@y/z", *RANGE]) == 2
    assert "mysql:// or postgresql://" in capsys.readouterr().err


def test_bad_rows_are_skipped_with_a_warning_that_names_them(
    lab_env: None, db_url: str, shared_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    tables = capture_tables(shared_dir / "01-inbound-answered.ami")
    odd = dict(tables.cel[3], eventtype="CHAN_TELEPORT")
    cut = dict(tables.cel[4], uniqueid="")
    cel = [*tables.cel[:3], odd, cut, *tables.cel[3:]]

    async def make() -> str:
        url = await create_cdr_database("mysql")
        await insert_rows(url, cel, tables.cdr)
        return url

    url = asyncio.run(make())
    try:
        assert main(["backfill", "--db", db_url, "--cdr-url", url, *RANGE]) == 0
    finally:
        asyncio.run(drop_cdr_database(url))
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert any("CEL row 4: unknown event type 'CHAN_TELEPORT'" in w for w in warnings), warnings
    assert any("CEL row 5: CHAN_START without uniqueid" in w for w in warnings), warnings
    # The call itself is whole: its own rows were all there.
    rows = _rows(db_url, "SELECT linkedid, status, manager FROM calls")
    assert [tuple(r) for r in rows] == [("1795723449.4", "answered", "203")]


def test_a_transfer_row_cut_at_the_columns_width_is_named_and_the_transfer_still_found(
    lab_env: None, db_url: str, shared_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    tables = capture_tables(shared_dir / "14-attended-transfer.ami")

    async def make() -> str:
        url = await create_cdr_database("postgresql")
        await insert_rows(url, tables.cel, tables.cdr)
        return url

    url = asyncio.run(make())
    try:
        assert main(["backfill", "--db", db_url, "--cdr-url", url, *RANGE]) == 0
    finally:
        asyncio.run(drop_cdr_database(url))
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert any("CEL row 44 (ATTENDEDTRANSFER): eventextra cut" in w for w in warnings), warnings
    rows = _rows(db_url, "SELECT manager, final_manager, transferred_to FROM calls")
    assert [(r[0], r[1], r[2] if isinstance(r[2], list) else json.loads(r[2])) for r in rows] == [("203", "205", ["205"])]
