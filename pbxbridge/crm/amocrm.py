"""amoCRM: each finished call on the client's card (``POST /api/v4/calls``), an unknown number in unsorted leads.

amoCRM adds a call only to a contact or company that has its number; for
any other number it answers with the call among its ``errors``, and the call
goes to the unsorted leads (``POST /api/v4/leads/unsorted/sip``) for a
manager to take. Requests carry the integration's long-lived token; amoCRM
allows 7 requests a second and answers 429 beyond that.
"""

from __future__ import annotations

import json
import time
from datetime import datetime
from typing import Any

import aiohttp

from pbxbridge.config import Config
from pbxbridge.crm.events import CALL_FINISHED, CallEvent
from pbxbridge.crm.recording_links import DAY_S, signed_url
from pbxbridge.crm.targets import Delivery, DeliveryFailed, Planned, SendContext, Target, http_failure, post

CALLS_PATH = "/api/v4/calls"
UNSORTED_PATH = "/api/v4/leads/unsorted/sip"
SOURCE = "pbxbridge"
# call_status of /api/v4/calls: 4 a conversation took place, 6 could not get through, 7 the line was busy.
TALKED, NO_ANSWER, BUSY = 4, 6, 7
# call_result, the words a manager reads on the card.
RESULTS = {TALKED: "Разговор состоялся", NO_ANSWER: "Не дозвонились", BUSY: "Номер занят"}


def call_status(call: dict[str, Any]) -> int:
    if call["status"] == "answered":
        return TALKED
    if call["status"] == "busy" or call.get("failure_reason") == "client_busy":
        return BUSY
    return NO_ANSWER


class AmoCrmTarget(Target):
    """The ``[crm.amocrm]`` account."""

    burst = 7

    def __init__(self, config: Config) -> None:
        settings = config.crm.amocrm
        self.name = "amocrm"
        self.base_url = settings.base_url.rstrip("/")
        self.token = settings.token
        self.requests_per_s = float(settings.requests_per_s)
        self.burst = settings.requests_per_s
        # Recordings are linked only when the web app can be reached and its links verified after a restart.
        self.public_url = config.web.public_url
        self.secret_key = config.web.secret_key
        self.link_valid_s = settings.link_valid_days * DAY_S
        self.clock = time.time

    def plan(self, event: CallEvent) -> list[Planned]:
        call = event.call
        if event.name != CALL_FINISHED or call["direction"] not in ("inbound", "outbound"):
            return []
        status = call_status(call)
        started = datetime.fromisoformat(call["started_at"])
        note = {
            "direction": call["direction"],
            "uniq": f"{call['pbx']}:{call['linkedid']}",
            "duration": round(call.get("talk_s") or 0),
            "source": SOURCE,
            "phone": call.get("client_number") or call.get("dialed") or "",
            "call_status": status,
            "call_result": RESULTS[status],
            "created_at": int(started.timestamp()),
        }
        recording_id = event.extra.get("recording_id")
        if recording_id is not None and self.public_url and self.secret_key:
            expires = int(self.clock()) + self.link_valid_s
            note["link"] = signed_url(self.public_url, self.secret_key, int(recording_id), expires)
        return [Planned("add_call", "amocrm.call", {"call": note, "did": call.get("did"),
                                                    "manager": call.get("final_manager") or call.get("manager")})]

    async def send(self, http: aiohttp.ClientSession, delivery: Delivery, context: SendContext) -> dict[str, Any] | None:
        note = dict(delivery.payload["call"])
        manager = delivery.payload.get("manager")
        if manager and manager in context.users:
            # The manager's own amoCRM user (``pbxbridge crm users``): the call is theirs on the card.
            note["responsible_user_id"] = note["created_by"] = int(context.users[manager])
        answer = await self._post(http, CALLS_PATH, [note])
        embedded = (answer or {}).get("_embedded", {}).get("calls") or []
        if embedded:
            return {"entity_id": embedded[0].get("entity_id"), "entity_type": embedded[0].get("entity_type")}
        # No card has the number: a lead in the unsorted, with the call on it.
        unsorted = [{
            "source_uid": note["uniq"],
            "source_name": SOURCE,
            "created_at": note["created_at"],
            "metadata": {
                "is_call_event_needed": True,
                "uniq": note["uniq"],
                "duration": note["duration"],
                "service_code": SOURCE,
                "phone": note["phone"],
                "called_at": note["created_at"],
                "from": note["phone"] if note["direction"] == "inbound" else (delivery.payload.get("manager") or ""),
            },
            "_embedded": {"contacts": [{"name": note["phone"], "custom_fields_values": [
                {"field_code": "PHONE", "values": [{"value": note["phone"], "enum_code": "WORK"}]},
            ]}]},
        }]
        answer = await self._post(http, UNSORTED_PATH, unsorted)
        leads = (answer or {}).get("_embedded", {}).get("unsorted") or []
        if not leads:
            raise DeliveryFailed(f"{UNSORTED_PATH}: amoCRM kept nothing: {json.dumps(answer)[:200]}", retry=False)
        return {"unsorted_uid": leads[0].get("uid")}

    async def _post(self, http: aiohttp.ClientSession, path: str, items: list[dict[str, Any]]) -> Any:
        body = json.dumps(items, ensure_ascii=False).encode()
        headers = {"Content-Type": "application/json", "Authorization": f"Bearer {self.token}"}
        status, answer, answer_headers = await post(http, f"{self.base_url}{path}", body, headers, path)
        if 200 <= status < 300:
            return answer
        raise http_failure(path, status, answer, answer_headers)
