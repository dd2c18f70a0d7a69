"""Signed webhooks: a JSON body per event, an HMAC-SHA256 signature over the timestamp and the body.

A receiver recomputes ``hex(HMAC-SHA256(secret, f"{timestamp}.".encode() + body))``
and compares it, in constant time, with the ``v1=`` of ``X-Pbxbridge-Signature``;
``verify_signature`` is that check (docs/CRM.md has it for receivers in any language).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from typing import Any

import aiohttp

from pbxbridge.config import WEBHOOK_EVENTS, WebhookConfig
from pbxbridge.crm.events import CALL_ANSWERED, CALL_RINGING, CallEvent
from pbxbridge.crm.targets import Delivery, Planned, SendContext, Target, http_failure, post

SIGNATURE_HEADER = "X-Pbxbridge-Signature"
TIMESTAMP_HEADER = "X-Pbxbridge-Timestamp"
EVENT_HEADER = "X-Pbxbridge-Event"
IDEMPOTENCY_HEADER = "Idempotency-Key"
# A receiver should refuse a signature older than this: a body caught on the way cannot be replayed later.
REPLAY_WINDOW_S = 300


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """The signature header's value for a body sent at ``timestamp`` (Unix seconds)."""
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


def verify_signature(
    secret: str, header: str, body: bytes, *, now: float | None = None, window_s: int = REPLAY_WINDOW_S
) -> bool:
    """Whether ``header`` signs ``body`` with ``secret`` and is no older (or newer) than ``window_s``."""
    parts = dict(part.split("=", 1) for part in header.split(",") if "=" in part)
    try:
        timestamp = int(parts["t"])
    except (KeyError, ValueError):
        return False
    if abs((time.time() if now is None else now) - timestamp) > window_s:
        return False
    expected = sign(secret, timestamp, body).split("v1=", 1)[1]
    return hmac.compare_digest(expected, parts.get("v1", ""))


class WebhookTarget(Target):
    """One ``[[webhooks]]`` receiver: the events it asked for, each POSTed as signed JSON."""

    burst = 10

    def __init__(self, settings: WebhookConfig, clock: Any = time.time) -> None:
        self.settings = settings
        # A URL's query may carry the receiver's own key: it names nothing shown.
        self.name = f"webhook:{settings.name or settings.url.split('?', 1)[0]}"
        self.requests_per_s = float(settings.requests_per_s)
        self.burst = max(1, settings.requests_per_s)
        self.events = set(settings.events or WEBHOOK_EVENTS)
        self.live_events = frozenset(self.events & {CALL_RINGING, CALL_ANSWERED})
        self.clock = clock

    def plan(self, event: CallEvent) -> list[Planned]:
        if event.name not in self.events:
            return []
        data: dict[str, Any] = {"call": event.call, **event.extra}
        return [Planned("post", event.key, {"event": event.name, "data": data})]

    def body(self, delivery: Delivery) -> bytes:
        """The same bytes on every try: a receiver may keep the first and drop repeats by ``id``."""
        document = {"id": delivery.idempotency_key, "event": delivery.payload["event"], "data": delivery.payload["data"]}
        return json.dumps(document, ensure_ascii=False, separators=(",", ":"), sort_keys=True).encode()

    async def send(self, http: aiohttp.ClientSession, delivery: Delivery, context: SendContext) -> dict[str, Any] | None:
        body = self.body(delivery)
        timestamp = int(self.clock())
        headers = {
            "Content-Type": "application/json; charset=utf-8",
            EVENT_HEADER: delivery.payload["event"],
            IDEMPOTENCY_HEADER: delivery.idempotency_key,
            TIMESTAMP_HEADER: str(timestamp),
            SIGNATURE_HEADER: sign(self.settings.secret, timestamp, body),
        }
        what = f"webhook {self.settings.name or 'to ' + _host(self.settings.url)}"
        status, answer, answer_headers = await post(http, self.settings.url, body, headers, what)
        if 200 <= status < 300:
            return None
        raise http_failure(what, status, answer, answer_headers)


def _host(url: str) -> str:
    from urllib.parse import urlsplit

    return urlsplit(url).netloc or url
