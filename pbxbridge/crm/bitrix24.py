"""Bitrix24: each call registered, finished, its recordings and transcript attached, through an inbound webhook.

Methods (REST, scope ``telephony``), as Bitrix24's documentation describes them:
``telephony.externalcall.register`` (returns the call's ``CALL_ID``),
``telephony.externalcall.finish``, ``telephony.externalCall.attachRecord``
(the file's content in ``FILE_CONTENT``, base64: Bitrix24 in the cloud cannot
fetch a URL on the office's network) and ``telephony.call.attachTranscription``.
Every request is ``POST <webhook_url><method>.json`` with a JSON body.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import aiohttp

from pbxbridge.config import Config
from pbxbridge.crm.events import CALL_FINISHED, CALL_RINGING, RECORDING_READY, TRANSCRIPT_READY, CallEvent
from pbxbridge.crm.targets import DEFAULT_THROTTLE_S, Delivery, DeliveryFailed, Planned, SendContext, Target, post, retry_after

REGISTER = "telephony.externalcall.register"
FINISH = "telephony.externalcall.finish"
ATTACH_RECORD = "telephony.externalCall.attachRecord"
ATTACH_TRANSCRIPTION = "telephony.call.attachTranscription"
USER_GET = "user.get"
# Bitrix24's leaky bucket: a burst of 50 requests, then its drain rate (``requests_per_s``).
BURST = 50
# TYPE of telephony.externalcall.register.
OUTBOUND_TYPE = 1
INBOUND_TYPE = 2
# Errors that mean "too many requests": wait, then the same request goes through.
THROTTLE_ERRORS = {"QUERY_LIMIT_EXCEEDED", "OPERATION_TIME_LIMIT"}


def status_code(call: dict[str, Any]) -> str:
    """STATUS_CODE of telephony.externalcall.finish: 200 talked, 304 missed, 486 busy, 603 declined."""
    status = call["status"]
    if status == "answered":
        return "200"
    if status == "busy" or call.get("failure_reason") == "client_busy":
        return "486"
    if status == "failed" and call.get("failure_reason") == "manager_rejected":
        return "603"
    return "304"


def external_call_id(call: dict[str, Any]) -> str:
    """The PBX and its linkedid: Asterisk's ids restart on each PBX, so they never merge two calls."""
    return f"{call['pbx']}:{call['linkedid']}"


class Bitrix24Target(Target):
    """The ``[crm.bitrix24]`` portal, reached through its inbound webhook."""

    burst = BURST
    live_events = frozenset({CALL_RINGING})

    def __init__(self, config: Config) -> None:
        settings = config.crm.bitrix24
        self.name = "bitrix24"
        self.url = settings.webhook_url
        self.default_user = settings.default_user
        self.requests_per_s = float(settings.requests_per_s)
        self.zone = ZoneInfo(config.kpi.timezone)
        self.recordings_root = Path(config.recordings.root)
        self.voicemail_root = Path(config.recordings.voicemail_root)

    # -- what an event needs ------------------------------------------------------

    def plan(self, event: CallEvent) -> list[Planned]:
        call = event.call
        if call["direction"] not in ("inbound", "outbound"):
            # A call between colleagues has no client to put it on.
            return []
        if event.name == CALL_RINGING:
            # Registered while it rings, the manager's card pops up with the client's CRM record;
            # the same key as the finished call's register: whichever comes first is the one.
            return [Planned("register", "bitrix24.register", self._register(call, show=True))]
        if event.name == CALL_FINISHED:
            return [
                Planned("register", "bitrix24.register", self._register(call)),
                Planned("finish", "bitrix24.finish", self._finish(call)),
            ]
        if event.name == RECORDING_READY:
            return [Planned("attach_record", f"bitrix24.{event.key}", dict(event.extra))]
        if event.name == TRANSCRIPT_READY:
            return [Planned("attach_transcription", f"bitrix24.{event.key}", dict(event.extra))]
        return []

    def _register(self, call: dict[str, Any], show: bool = False) -> dict[str, Any]:
        inbound = call["direction"] == "inbound"
        # Who the call is put on: who answered or placed it, else the first whose handset rang.
        user = call.get("manager") or next(iter(call.get("rang") or []), None)
        started = datetime.fromisoformat(call["started_at"]).astimezone(self.zone)
        fields: dict[str, Any] = {
            "USER_PHONE_INNER": user,
            "PHONE_NUMBER": call.get("client_number") or call.get("dialed") or "",
            "TYPE": INBOUND_TYPE if inbound else OUTBOUND_TYPE,
            "CALL_START_DATE": started.isoformat(timespec="seconds"),
            # An unknown number becomes a lead.
            "CRM_CREATE": 1,
            # A call registered once it is over pops no card up on the manager's screen.
            "SHOW": 1 if show else 0,
            "EXTERNAL_CALL_ID": external_call_id(call),
        }
        if inbound and call.get("did"):
            fields["LINE_NUMBER"] = call["did"]
        return fields

    def _finish(self, call: dict[str, Any]) -> dict[str, Any]:
        # The manager who had the client last, after transfers.
        user = call.get("final_manager") or call.get("manager") or next(iter(call.get("rang") or []), None)
        fields: dict[str, Any] = {
            "USER_PHONE_INNER": user,
            "DURATION": round(call.get("talk_s") or 0),
            "STATUS_CODE": status_code(call),
        }
        if call.get("failure_reason"):
            fields["FAILED_REASON"] = call["failure_reason"]
        return fields

    # -- sending ----------------------------------------------------------------------

    async def send(self, http: aiohttp.ClientSession, delivery: Delivery, context: SendContext) -> dict[str, Any] | None:
        payload = dict(delivery.payload)
        users = context.users
        if delivery.action == "register":
            if context.crm_call_id:
                # A manager's click in Bitrix24: the portal registered this call itself; it is only finished.
                return {"CALL_ID": context.crm_call_id, "from_click": True}
            fields = self._with_user(payload, users)
            result = await self.call(http, REGISTER, fields)
            if not isinstance(result, dict) or not result.get("CALL_ID"):
                raise DeliveryFailed(f"{REGISTER}: Bitrix24 answered no CALL_ID: {json.dumps(result)[:200]}", retry=False)
            return {"CALL_ID": result["CALL_ID"]}
        # A refused click's finish names Bitrix24's own call; every other delivery follows its register.
        call_id = payload.pop("CALL_ID", None) or context.earlier.get("register", {}).get("CALL_ID")
        if not call_id:
            # Its register is a dead letter: `pbxbridge outbox retry --dead` sends both again, in order.
            raise DeliveryFailed("the call is not registered in Bitrix24 (its register did not go through)", retry=False)
        if delivery.action == "finish":
            await self.call(http, FINISH, {"CALL_ID": call_id, **self._with_user(payload, users)})
        elif delivery.action == "attach_record":
            await self.call(http, ATTACH_RECORD, {"CALL_ID": call_id, **self._record(payload)})
        elif delivery.action == "attach_transcription":
            await self.call(http, ATTACH_TRANSCRIPTION, {"CALL_ID": call_id, "MESSAGES": _messages(payload)})
        else:
            raise DeliveryFailed(f"unknown Bitrix24 action {delivery.action!r}", retry=False)
        return None

    def _with_user(self, fields: dict[str, Any], users: Mapping[str, str]) -> dict[str, Any]:
        """The call's user: by id where the extension is mapped (``pbxbridge crm users``), else by inner number."""
        user = fields.get("USER_PHONE_INNER") or self.default_user
        if not user:
            raise DeliveryFailed(
                "the call has no manager and crm.bitrix24.default_user is not set: Bitrix24 needs a user for it",
                retry=False,
            )
        if user in users:
            return {**{k: v for k, v in fields.items() if k != "USER_PHONE_INNER"}, "USER_ID": int(users[user])}
        return {**fields, "USER_PHONE_INNER": user}

    async def read_users(self, http: aiohttp.ClientSession) -> list[tuple[str, str, str | None]]:
        """The portal's active users with an inner number: (extension, user id, name), page by page."""
        found: list[tuple[str, str, str | None]] = []
        start: int | None = 0
        while start is not None:
            body = json.dumps({"FILTER": {"ACTIVE": True}, "start": start}).encode()
            headers = {"Content-Type": "application/json", "Accept": "application/json"}
            status, answer, _headers = await post(http, f"{self.url}{USER_GET}.json", body, headers, USER_GET)
            if status != 200 or not isinstance(answer, dict) or not isinstance(answer.get("result"), list):
                raise DeliveryFailed(f"{USER_GET}: HTTP {status} {json.dumps(answer, ensure_ascii=False)[:200]}")
            for user in answer["result"]:
                inner = str(user.get("UF_PHONE_INNER") or "").strip()
                if inner:
                    name = " ".join(p for p in (user.get("NAME"), user.get("LAST_NAME")) if p) or None
                    found.append((inner, str(user["ID"]), name))
            start = answer.get("next")
        return found

    def _record(self, recording: dict[str, Any]) -> dict[str, Any]:
        root = self.voicemail_root if recording.get("kind") == "voicemail" else self.recordings_root
        path = root / recording["path"]
        try:
            content = path.read_bytes()
        except OSError as exc:
            # Deleted by retention or never synced: trying again cannot bring it back.
            raise DeliveryFailed(f"the recording {recording['file_name']} cannot be read: {exc.strerror}", retry=False) from None
        return {"FILENAME": recording["file_name"], "FILE_CONTENT": base64.b64encode(content).decode()}

    async def call(self, http: aiohttp.ClientSession, method: str, fields: dict[str, Any]) -> Any:
        """One REST method; its ``result``, or ``DeliveryFailed`` sorted by Bitrix24's error code."""
        body = json.dumps(fields, ensure_ascii=False).encode()
        headers = {"Content-Type": "application/json; charset=utf-8", "Accept": "application/json"}
        status, answer, answer_headers = await post(http, f"{self.url}{method}.json", body, headers, method)
        if status == 200 and isinstance(answer, dict) and "result" in answer:
            return answer["result"]
        error = answer.get("error") if isinstance(answer, dict) else None
        description = answer.get("error_description", "") if isinstance(answer, dict) else str(answer)[:200]
        reason = f"{method}: HTTP {status} {error or ''} {description}".strip()
        if error in THROTTLE_ERRORS or status == 429:
            raise DeliveryFailed(reason, throttled=True, after_s=retry_after(answer_headers) or DEFAULT_THROTTLE_S)
        if status >= 500 or status == 408 or status == 200:
            # A server error, or a 200 that is not Bitrix24's answer (a proxy's page): try again.
            raise DeliveryFailed(reason, after_s=retry_after(answer_headers))
        # 400 (a field refused), 401 (the webhook's token revoked), 403, 404: retrying cannot fix these.
        raise DeliveryFailed(reason, retry=False)


def _messages(transcript: dict[str, Any]) -> list[dict[str, Any]]:
    """MESSAGES of telephony.call.attachTranscription: the manager is the portal's User, the other side the Client."""
    return [
        {
            "SIDE": "User" if segment.get("speaker") == "manager" else "Client",
            "START_TIME": int(segment["start_s"]),
            "STOP_TIME": max(int(segment["start_s"]), round(segment["end_s"])),
            "MESSAGE": segment["text"],
        }
        for segment in transcript["segments"]
    ]
