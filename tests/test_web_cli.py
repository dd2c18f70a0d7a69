"""``pbxbridge users add/list/passwd`` against both databases."""

from __future__ import annotations

import asyncio
import io

import pytest

from pbxbridge.cli.main import main
from pbxbridge.db.engine import make_engine, session_factory
from pbxbridge.web.users import authenticate, find_user
from tests.fixtures_web import fast_password_hashing  # noqa: F401 - fixture


def _run(monkeypatch: pytest.MonkeyPatch, argv: list[str], stdin: str = "") -> int:
    monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
    return main(argv)


async def _check_password(url: str, username: str, password: str) -> tuple[str, str | None, bool]:
    engine = make_engine(url)
    try:
        async with session_factory(engine)() as db:
            user = await find_user(db, username)
            assert user is not None
            return user.role, user.extension, await authenticate(db, username, password) is not None
    finally:
        await engine.dispose()


def test_users_add_list_and_passwd(
    db_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], fast_password_hashing: None  # noqa: F811
) -> None:
    db = ["--db", db_url]
    assert _run(monkeypatch, ["users", "add", "anna", "--role", "head", "--password-stdin", *db], "first-secret\n") == 0
    assert _run(monkeypatch, ["users", "add", "boris", "--role", "manager", "--extension", "201",
                              "--password-stdin", *db], "boris-secret\n") == 0
    # A manager without a handset, a taken name and a short password are refused with the reason.
    capsys.readouterr()
    no_handset = ["users", "add", "vera", "--role", "manager", "--password-stdin", *db]
    assert _run(monkeypatch, no_handset, "long-enough\n") == 1
    assert "extension" in capsys.readouterr().err
    assert _run(monkeypatch, ["users", "add", "anna", "--role", "ops", "--password-stdin", *db], "long-enough\n") == 1
    assert "already exists" in capsys.readouterr().err
    assert _run(monkeypatch, ["users", "add", "gleb", "--role", "ops", "--password-stdin", *db], "short\n") == 1
    assert "at least" in capsys.readouterr().err

    assert _run(monkeypatch, ["users", "list", *db]) == 0
    listing = capsys.readouterr().out.splitlines()
    assert [line.split() for line in listing[1:3]] == [["anna", "head", "-"], ["boris", "manager", "201"]]
    assert listing[-1] == "2 user(s)"

    assert asyncio.run(_check_password(db_url, "anna", "first-secret")) == ("head", None, True)
    assert _run(monkeypatch, ["users", "passwd", "anna", "--password-stdin", *db], "second-secret\n") == 0
    assert asyncio.run(_check_password(db_url, "anna", "first-secret"))[2] is False
    assert asyncio.run(_check_password(db_url, "anna", "second-secret"))[2] is True
    assert _run(monkeypatch, ["users", "passwd", "nobody", "--password-stdin", *db], "whatever-long\n") == 1
