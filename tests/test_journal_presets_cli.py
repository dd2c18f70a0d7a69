"""The command line beside the journal: `pbxbridge kpi --calls FIGURE` prints the calls a figure
counts, as many as the figure says; `pbxbridge search` refuses a query it will not run with the
reason and exit code 2, not a traceback."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pbxbridge.cli.main import main
from pbxbridge.transcription.search import MAX_QUERY_CHARS

# The captures' business day in Moscow, and three callers: answered, abandoned, missed then called back.
DAY = "2026-11-26"
CAPTURES = ("01-inbound-answered", "03-inbound-abandoned", "11-missed-then-callback", "13-burst")


def _replay(db_url: str, shared_dir: Path) -> None:
    paths = [str(shared_dir / f"{name}.ami") for name in CAPTURES]
    assert main(["replay", *paths, "--db", db_url, "--recordings", str(shared_dir / "recordings")]) == 0


def _lines(text: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def test_a_figures_calls_on_the_command_line(db_url: str, shared_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _replay(db_url, shared_dir)
    capsys.readouterr()
    assert main(["kpi", "--db", db_url, "--from", DAY]) == 0
    (department,) = [r for r in _lines(capsys.readouterr().out) if r["manager"] is None]
    for figure in ("missed", "answered", "callbacks_pending", "calls_out"):
        assert main(["kpi", "--db", db_url, "--from", DAY, "--calls", figure]) == 0
        out = capsys.readouterr()
        rows = _lines(out.out)
        assert len(rows) == department[figure], figure
        assert out.err.startswith(f"{figure}: {department[figure]} ")
    assert department["missed"] > 0 and department["answered"] > 0
    assert main(["kpi", "--db", db_url, "--from", DAY, "--calls", "missed", "--csv"]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0].startswith("call_id,started_at,direction,status") and len(table) == department["missed"] + 1
    # A figure of the department's line asked of a manager, and a name that is no figure: said, exit 2.
    assert main(["kpi", "--db", db_url, "--from", DAY, "--calls", "offered", "--manager", "203"]) == 2
    assert "offered is a figure of the department, not of a manager" in capsys.readouterr().err
    assert main(["kpi", "--db", db_url, "--from", DAY, "--calls", "happiness"]) == 2
    assert "unknown figure: happiness" in capsys.readouterr().err


def test_a_search_too_long_is_refused_with_its_reason(db_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["search", "слово " * MAX_QUERY_CHARS, "--db", db_url]) == 2
    err = capsys.readouterr().err
    assert err == f"search: a search has at most {MAX_QUERY_CHARS} characters\n"
