"""The CRMs' tokens never reach the log or the command line's answers."""

from __future__ import annotations

from pathlib import Path

import pytest

from pbxbridge.cli.main import main
from pbxbridge.config import AmoCrmConfig, Bitrix24Config, Config, CrmConfig, WebhookConfig
from pbxbridge.crm.connectors import targets_from_config
from pbxbridge.service.logging import RedactSecrets, config_secrets

BITRIX_TOKEN = "q8w7e6r5t4y3u2i1"
AMO_TOKEN = "amo-token-abcdef123456"
HOOK_SECRET = "hook-secret-998877"


def test_crm_tokens_and_webhook_secrets_are_hidden_in_the_log() -> None:
    config = Config(
        crm=CrmConfig(
            bitrix24=Bitrix24Config(webhook_url=f"https://sales.bitrix24.ru/rest/7/{BITRIX_TOKEN}/"),
            amocrm=AmoCrmConfig(base_url="https://sales.amocrm.ru", token=AMO_TOKEN),
        ),
        webhooks=[WebhookConfig(url="https://bot.example.ru/pbx?key=abc123xyz", secret=HOOK_SECRET)],
    )
    redact = RedactSecrets(config_secrets(config))
    line = redact.redact(f"POST https://sales.bitrix24.ru/rest/7/{BITRIX_TOKEN}/x.json Bearer {AMO_TOKEN} {HOOK_SECRET}")
    assert BITRIX_TOKEN not in line and AMO_TOKEN not in line and HOOK_SECRET not in line
    assert "sales.bitrix24.ru" in line
    # The outbox names a webhook by its address without the query, where a receiver's key may be.
    assert [t.name for t in targets_from_config(config)] == ["bitrix24", "amocrm", "webhook:https://bot.example.ru/pbx"]


def test_a_bad_bitrix24_address_is_named_without_its_token(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "pbxbridge.toml"
    path.write_text(f'[crm.bitrix24]\nwebhook_url = "https://sales.bitrix24.ru/rest/7/{BITRIX_TOKEN}"\n', encoding="utf-8")
    assert main(["check-config", "--config", str(path)]) == 1
    out = capsys.readouterr().out
    assert "crm.bitrix24.webhook_url: must end with '/'" in out and BITRIX_TOKEN not in out
