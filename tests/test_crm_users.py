"""Managers' CRM users: `pbxbridge crm users sync` reads Bitrix24's inner numbers page by page, a
mapping set by hand survives the next sync, and calls then go to Bitrix24 by user id and to amoCRM
with the manager as the responsible user."""

from __future__ import annotations

from pathlib import Path

import pytest

from pbxbridge.cli.main import main
from tests.fakes_amocrm import TOKEN, FakeAmoCrm
from tests.fakes_bitrix24 import FakeBitrix24
from tests.fakes_webhook import ServerThread


def test_users_synced_from_bitrix24_and_set_by_hand_carry_the_calls(
    db_url: str, shared_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    portal = FakeBitrix24(drain_per_s=1000, page_size=2)
    account = FakeAmoCrm(contacts={"+79162220001"})
    bitrix, amo = ServerThread(portal.app).start(), ServerThread(account.app).start()
    try:
        config = tmp_path / "pbxbridge.toml"
        config.write_text(
            f"[crm.bitrix24]\nwebhook_url = \"{portal.webhook_url(bitrix.url)}\"\nrequests_per_s = 100\n\n"
            f"[crm.amocrm]\nbase_url = \"{amo.url}\"\ntoken = \"{TOKEN}\"\n",
            encoding="utf-8",
        )
        common = ["--db", db_url, "--config", str(config), "--recordings", str(shared_dir / "recordings")]
        # 203 is a Bitrix24 user of another id, set by hand: the sync leaves it.
        assert main(["crm", "users", "set", "bitrix24", "203", "1", "--name", "Старший менеджер", *common]) == 0
        assert main(["crm", "users", "set", "amocrm", "203", "9001", *common]) == 0
        assert main(["crm", "users", "set", "amocrm", "203", "x9", *common]) == 2
        assert main(["crm", "users", "sync", *common]) == 0
        assert "bitrix24: 5 user(s) with an inner number, 4 mapping(s) changed" in capsys.readouterr().out
        assert main(["crm", "users", *common]) == 0
        listed = capsys.readouterr().out.splitlines()
        assert "bitrix24  203  ->  1  Старший менеджер  (manual)" in listed
        assert "bitrix24  204  ->  14  Manager204  (crm)" in listed
        assert "amocrm  203  ->  9001  (manual)" in listed
        assert main(["crm", "users", "remove", "bitrix24", "205", *common]) == 0
        assert main(["crm", "users", "remove", "bitrix24", "205", *common]) == 1

        assert main(["replay", str(shared_dir / "06-outbound-answered.ami"), *common]) == 0
        assert main(["outbox", "deliver", "--until-empty", "--max-wait", "60", *common]) == 0
    finally:
        bitrix.stop()
        amo.stop()
    call = next(iter(portal.calls.values()))
    assert call.registered["USER_ID"] == 1 and "USER_PHONE_INNER" not in call.registered
    assert call.finished is not None and call.finished["USER_ID"] == 1
    assert account.calls[0]["responsible_user_id"] == 9001 and account.calls[0]["created_by"] == 9001
