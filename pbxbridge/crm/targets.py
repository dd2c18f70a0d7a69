"""What every target of the outbox is: it plans the requests an event needs, and sends one."""

from __future__ import annotations

import abc
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from typing import Any

import aiohttp

from pbxbridge.crm.events import CallEvent

# A request that takes longer than this is counted as failed and tried again later.
REQUEST_TIMEOUT_S = 30.0
# How long a throttled target is left alone when it does not say (Bitrix24 suggests half a second).
DEFAULT_THROTTLE_S = 1.0


class DeliveryFailed(Exception):
    """A delivery did not go through.

    ``retry``: trying again may help (the target is down, overloaded, timed out);
    False for an answer no retry can change (a 4xx: a bad token, a refused field),
    which makes the delivery a dead letter at once. ``throttled``: the target
    asked to slow down; the try is not counted against ``max_attempts``.
    """

    def __init__(self, reason: str, *, retry: bool = True, throttled: bool = False, after_s: float | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry = retry
        self.throttled = throttled
        self.after_s = after_s


@dataclass(frozen=True, slots=True)
class Planned:
    """One request a target will make about an event: its action, its key among the call's, its data."""

    action: str
    key: str
    payload: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Delivery:
    """A queued delivery as a target sends it (a plain copy of its row)."""

    id: int
    target: str
    event: str
    action: str
    pbx: str
    linkedid: str
    idempotency_key: str
    payload: dict[str, Any]
    attempts: int


@dataclass(frozen=True, slots=True)
class SendContext:
    """What a delivery may need beyond its own row."""

    # The target's answers to this call's deliveries already made, by action (Bitrix24's CALL_ID).
    earlier: dict[str, dict[str, Any]] = field(default_factory=dict)
    # Managers' users in this target: extension -> user id (``pbxbridge crm users``).
    users: Mapping[str, str] = field(default_factory=dict)
    # The call the CRM registered itself for the click this call came from (Bitrix24's OnExternalCallStart).
    crm_call_id: str | None = None


class Target(abc.ABC):
    """A CRM or a webhook receiver the outbox delivers to."""

    # Stable: it names the target's rows in the outbox and starts each idempotency key.
    name: str
    # Sustained requests a second, and how many may go at once after a quiet spell.
    requests_per_s: float
    burst: int
    # Events of calls still up (call.ringing, call.answered) it takes: read off the PBX while they happen.
    live_events: frozenset[str] = frozenset()

    @abc.abstractmethod
    def plan(self, event: CallEvent) -> list[Planned]:
        """The requests this event needs, in the order they must reach the target (none if it does not care)."""

    @abc.abstractmethod
    async def send(self, http: aiohttp.ClientSession, delivery: Delivery, context: SendContext) -> dict[str, Any] | None:
        """Make one request; what the target answered that later deliveries of the call need. Raises ``DeliveryFailed``."""


def retry_after(headers: Any) -> float | None:
    """Seconds a Retry-After header asks for (seconds or an HTTP date), None when absent or unreadable."""
    value = headers.get("Retry-After") if headers is not None else None
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        from datetime import UTC, datetime

        return max(0.0, (parsedate_to_datetime(value) - datetime.now(UTC)).total_seconds())
    except (TypeError, ValueError):
        return None


async def post(
    http: aiohttp.ClientSession, url: str, body: bytes, headers: dict[str, str], what: str
) -> tuple[int, Any, Any]:
    """POST ``body``; (status, parsed JSON or text, headers). Network trouble is a ``DeliveryFailed`` to retry."""
    try:
        async with http.post(url, data=body, headers=headers, timeout=aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_S)) as response:
            text = await response.text()
            try:
                parsed: Any = json.loads(text) if text else None
            except ValueError:
                parsed = text
            return response.status, parsed, response.headers
    except TimeoutError:
        raise DeliveryFailed(f"{what}: no answer within {REQUEST_TIMEOUT_S:.0f} s") from None
    except aiohttp.ClientError as exc:
        # The message names host and port, never the path (where Bitrix24 keeps its token).
        raise DeliveryFailed(f"{what}: {type(exc).__name__}: {_without_path(str(exc))}") from None


def _without_path(message: str) -> str:
    import re

    return re.sub(r"(https?://[^/\s]+)/\S*", r"\1/…", message)


def http_failure(what: str, status: int, answer: Any, headers: Any) -> DeliveryFailed:
    """An HTTP answer that is not a success, sorted into retry, slow down, or give up."""
    detail = answer if isinstance(answer, str) else json.dumps(answer, ensure_ascii=False)
    reason = f"{what}: HTTP {status} {detail[:300]}".rstrip()
    if status == 429:
        return DeliveryFailed(reason, throttled=True, after_s=retry_after(headers) or DEFAULT_THROTTLE_S)
    if status == 408 or status >= 500:
        return DeliveryFailed(reason, after_s=retry_after(headers))
    return DeliveryFailed(reason, retry=False)
