"""The command line end to end: captured streams replayed into the journal, read back as JSON."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tests.scenario_check import scenario_problems

REPO = Path(__file__).resolve().parent.parent


def pbxbridge(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("PBXBRIDGE_")}
    return subprocess.run(
        [sys.executable, "-m", "pbxbridge", *args],
        capture_output=True,
        text=True,
        env={**clean, **(env or {})},
        cwd=REPO,
        timeout=240,
    )


def by_scenario(rows: list[dict[str, Any]], expected: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    """Split journal rows by the scenario whose run they started in."""
    starts = sorted((s["started"], name) for name, s in expected.items())
    out: dict[str, list[dict[str, Any]]] = {name: [] for name in expected}
    for row in rows:
        started = datetime.fromisoformat(row["started_at"]).timestamp()
        name = [n for t, n in starts if t - 1 <= started][-1]
        out[name].append(row)
    return out


def test_replay_then_journal_matches_every_scenario(db_url: str, shared_dir: Path, expected: dict[str, Any]) -> None:
    traces = sorted(str(p) for p in shared_dir.glob("*.ami"))
    common = ["--db", db_url, "--recordings", str(shared_dir / "recordings")]
    total = sum(len(s["calls"]) for s in expected.values())

    first = pbxbridge("replay", *traces, *common)
    assert first.returncode == 0, first.stderr
    assert f"{total} call(s), {total} new, 0 already in the journal" in first.stdout

    listed = pbxbridge("calls", "--json", *common)
    assert listed.returncode == 0, listed.stderr
    rows = [json.loads(line) for line in listed.stdout.splitlines()]
    assert len(rows) == total
    assert [r["started_at"] for r in rows] == sorted(r["started_at"] for r in rows)
    for row in rows:
        assert datetime.fromisoformat(row["started_at"]).tzinfo == UTC
        assert row["recording"] in (row["recordings"] or [None])[:1]
    problems: list[str] = []
    for scenario, scenario_rows in by_scenario(rows, expected).items():
        problems += scenario_problems(scenario, expected, scenario_rows, check_recording=True)
    assert problems == []

    # The same captures again (a restart replaying its buffer): nothing doubles.
    again = pbxbridge("replay", *traces[:3], *common)
    assert again.returncode == 0, again.stderr
    assert "3 call(s), 0 new, 3 already in the journal" in again.stdout
    relisted = pbxbridge("calls", "--json", *common)
    assert [json.loads(line) for line in relisted.stdout.splitlines()] == rows


def test_calls_table_and_pbx_name(db_url: str, shared_dir: Path) -> None:
    trace = shared_dir / "08-outbound-busy.ami"
    common = ["--db", db_url]
    result = pbxbridge("replay", str(trace), "--pbx", "office", *common)
    assert result.returncode == 0, result.stderr
    table = pbxbridge("calls", *common)
    assert table.returncode == 0, table.stderr
    header, row, footer = table.stdout.strip().splitlines()
    assert header.split()[:3] == ["started", "(UTC)", "direction"]
    assert "outbound" in row and "busy" in row and "+79162220003" in row and " 202 " in row
    assert footer == "1 call(s)"
    (entry,) = [json.loads(line) for line in pbxbridge("calls", "--json", "--pbx", "office", *common).stdout.splitlines()]
    assert entry["pbx"] == "office" and entry["status"] == "busy"
    assert pbxbridge("calls", "--json", "--pbx", "main", *common).stdout == ""


def test_db_upgrade_and_bad_trace(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'new' / 'pbxbridge.sqlite3'}"
    upgraded = pbxbridge("db", "upgrade", "--db", url)
    assert upgraded.returncode == 0, upgraded.stderr
    assert (tmp_path / "new" / "pbxbridge.sqlite3").is_file()
    empty = pbxbridge("calls", "--json", "--db", url)
    assert empty.returncode == 0 and empty.stdout == ""
    missing = pbxbridge("replay", str(tmp_path / "nope.ami"), "--db", url)
    assert missing.returncode == 2 and "nope.ami: no such file" in missing.stderr
