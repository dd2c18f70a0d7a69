"""CRM settings: a mistake is named with its key, and never prints a token back."""

from __future__ import annotations

from pathlib import Path

import pytest

from pbxbridge.config import ConfigError, load_config


def problems(tmp_path: Path, text: str, env: dict[str, str] | None = None) -> list[str]:
    path = tmp_path / "pbxbridge.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_config(path, env or {})
    return info.value.problems


def test_each_crm_mistake_is_named_with_its_key(tmp_path: Path) -> None:
    found = problems(tmp_path, """
[crm]
max_attempts = 0
keep_delivered_days = -1
colour = "red"

[crm.bitrix24]
webhook_url = "bitrix.example/rest/1/s3cr3tt0ken"
requests_per_s = 0

[crm.amocrm]
base_url = "https://sales.amocrm.ru"
link_valid_days = -1

[[webhooks]]
url = "https://bot.example.ru/a"
events = ["call.finished", "call.hungup"]

[[webhooks]]
url = "https://bot.example.ru/a"
secret = "x"
""")
    assert "crm.max_attempts: must be at least 1, got 0" in found
    assert "crm.keep_delivered_days: must not be negative, got -1" in found
    assert "crm.colour: unknown key" in found
    assert any(p.startswith("crm.bitrix24.webhook_url: must end with '/'") for p in found)
    assert any(p.startswith("crm.bitrix24: the address must start with http:// or https://") for p in found)
    assert "crm.bitrix24.requests_per_s: must be at least 1, got 0" in found
    assert any(p.startswith("crm.amocrm.token: must be set") for p in found)
    assert "crm.amocrm.link_valid_days: must not be negative, got -1" in found
    assert any(p.startswith("webhooks.0.secret: must be set") for p in found)
    assert any(p.startswith("webhooks.0.events: 'call.hungup' is not one of") for p in found)
    assert "webhooks.1.name: another [[webhooks]] is named 'https://bot.example.ru/a'" in found
    assert not any("s3cr3tt0ken" in p for p in found)


def test_a_token_from_the_environment_wins_over_the_file(tmp_path: Path) -> None:
    path = tmp_path / "pbxbridge.toml"
    path.write_text('[crm.amocrm]\nbase_url = "https://sales.amocrm.ru"\ntoken = "old"\n', encoding="utf-8")
    config = load_config(path, {"PBXBRIDGE_CRM__AMOCRM__TOKEN": "fresh", "PBXBRIDGE_CRM__MAX_ATTEMPTS": "4"})
    assert config.crm.amocrm.token == "fresh" and config.crm.max_attempts == 4
    assert problems(tmp_path, "webhooks = 3\n") == ["webhooks: must be a list of [[webhooks]] tables"]
