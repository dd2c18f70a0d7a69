"""The targets the settings name: Bitrix24, amoCRM, and each ``[[webhooks]]`` receiver."""

from __future__ import annotations

from pbxbridge.config import Config
from pbxbridge.crm.amocrm import AmoCrmTarget
from pbxbridge.crm.bitrix24 import Bitrix24Target
from pbxbridge.crm.outbox import RetryPolicy
from pbxbridge.crm.targets import Target
from pbxbridge.crm.webhooks import WebhookTarget


def targets_from_config(config: Config) -> list[Target]:
    """Every target configured, in a fixed order (their deliveries are queued in it)."""
    targets: list[Target] = []
    if config.crm.bitrix24.webhook_url:
        targets.append(Bitrix24Target(config))
    if config.crm.amocrm.base_url:
        targets.append(AmoCrmTarget(config))
    targets += [WebhookTarget(hook) for hook in config.webhooks]
    return targets


def retry_policy(config: Config) -> RetryPolicy:
    crm = config.crm
    return RetryPolicy(crm.max_attempts, crm.retry_initial_ms / 1000, crm.retry_max_ms / 1000)
