"""A fake Bitrix24 portal's telephony REST methods, reached through an inbound webhook, for tests.

Built from Bitrix24's published REST documentation (no network in tests):
- telephony.externalcall.register:
  https://dev.1c-bitrix.ru/rest_help/scope_telephony/telephony/telephony_externalcall_register.php
  (USER_ID or USER_PHONE_INNER, PHONE_NUMBER, TYPE 1..4, CALL_START_DATE, CRM_CREATE, SHOW, LINE_NUMBER,
  EXTERNAL_CALL_ID; returns CALL_ID; the same parameters again before a finish give the same CALL_ID)
- telephony.externalcall.finish:
  https://apidocs.bitrix24.com/api-reference/telephony/telephony-external-call-finish.html
  (CALL_ID, USER_ID or USER_PHONE_INNER, DURATION, STATUS_CODE 200/304/603/486/..., FAILED_REASON)
- telephony.externalCall.attachRecord (CALL_ID, FILENAME, FILE_CONTENT base64 or RECORD_URL):
  https://dev.1c-bitrix.ru/rest_help/scope_telephony/telephony/index.php
- telephony.call.attachTranscription (CALL_ID, MESSAGES of SIDE User|Client, START_TIME, STOP_TIME, MESSAGE):
  https://dev.1c-bitrix.ru/rest_help/scope_telephony/telephony/telephony_call_attachtranscription.php
- user.get (FILTER, start; 50 a page, "next" and "total" for the rest; UF_PHONE_INNER the inner number):
  https://apidocs.bitrix24.com/api-reference/user/user-get.html
- OnExternalCallStart (a user clicks a number in the CRM; the application chosen as the default
  outgoing line gets it): https://dev.1c-bitrix.ru/rest_help/scope_telephony/telephony/events_telephone/index.php
  posted as a form, data[USER_ID], data[PHONE_NUMBER], data[CALL_ID] (the call the portal registered for
  the click), data[CRM_ENTITY_TYPE], data[CRM_ENTITY_ID], ts and auth[application_token]
  (https://apidocs.bitrix24.ru/api-reference/events/safe-event-handlers.html)
- telephony.externalCall.searchCrmEntities (PHONE_NUMBER; the CRM entities holding it, the one to follow
  first, each with ASSIGNED_BY_ID and ASSIGNED_BY: ID, USER_PHONE_INNER, ...):
  https://dev.1c-bitrix.ru/rest_help/scope_telephony/telephony/telephony_externalCall_searchCrmEntities.php
- Limits: a leaky bucket (50 requests, drained 2 a second), over it HTTP 503 with
  {"error": "QUERY_LIMIT_EXCEEDED"}: https://apidocs.bitrix24.com/settings/performance/limits.html
Errors are {"error": CODE, "error_description": text}: 401 for a wrong webhook token, 400 for a refused field.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import time
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

TOKEN = "k3y9token"
USER = "1"
# The portal's users and their inner numbers (UF_PHONE_INNER).
INNER_NUMBERS = {"201": 11, "202": 12, "203": 13, "204": 14, "205": 15}


@dataclass
class ExternalCall:
    call_id: str
    registered: dict[str, Any]
    finished: dict[str, Any] | None = None
    records: list[dict[str, Any]] = field(default_factory=list)
    transcripts: list[list[dict[str, Any]]] = field(default_factory=list)


@dataclass
class FakeBitrix24:
    """The portal's state; survives the server being stopped and started again."""

    bucket_size: int = 50
    drain_per_s: float = 2.0
    calls: dict[str, ExternalCall] = field(default_factory=dict)
    # Every request that reached the portal, in order: (method, CALL_ID or EXTERNAL_CALL_ID).
    log: list[tuple[str, str]] = field(default_factory=list)
    throttled: int = 0
    refused: list[str] = field(default_factory=list)
    # Registers taken but whose answer is lost on the way (the connection drops before it).
    lose_answers: int = 0
    # number (+7…) -> the responsible user's id of the CRM entity holding it.
    responsible: dict[str, int] = field(default_factory=dict)
    # Seconds searchCrmEntities takes to answer (a slow portal).
    search_delay_s: float = 0.0
    # user.get pages (Bitrix24's are 50 long).
    page_size: int = 50
    _counter: float = 0.0
    _at: float = field(default_factory=time.monotonic)

    def webhook_url(self, base: str) -> str:
        return f"{base}/rest/{USER}/{TOKEN}/"

    def app(self) -> web.Application:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_post("/rest/{user}/{token}/{method}", self.handle)
        return app

    def _over_limit(self) -> bool:
        now = time.monotonic()
        self._counter = max(0.0, self._counter - (now - self._at) * self.drain_per_s)
        self._at = now
        if self._counter >= self.bucket_size:
            return True
        self._counter += 1
        return False

    async def handle(self, request: web.Request) -> web.Response:
        if request.match_info["user"] != USER or request.match_info["token"] != TOKEN:
            return _error(401, "NO_AUTH_FOUND", "Wrong authorization data")
        if self._over_limit():
            self.throttled += 1
            return _error(503, "QUERY_LIMIT_EXCEEDED", "Too many requests")
        method = request.match_info["method"].removesuffix(".json")
        try:
            fields = await request.json()
        except ValueError:
            return _error(400, "INVALID_REQUEST", "Body is not JSON")
        handler = {
            "telephony.externalcall.register": self.register,
            "telephony.externalcall.finish": self.finish,
            "telephony.externalCall.attachRecord": self.attach_record,
            "telephony.call.attachTranscription": self.attach_transcription,
        }.get(method)
        if method == "user.get":
            return web.json_response(self.user_get(fields))
        if method == "telephony.externalCall.searchCrmEntities":
            self.log.append(("searchCrmEntities", str(fields.get("PHONE_NUMBER"))))
            if self.search_delay_s:
                await asyncio.sleep(self.search_delay_s)
            return web.json_response({"result": self.search_crm_entities(fields)})
        if handler is None:
            return _error(404, "ERROR_METHOD_NOT_FOUND", "Method not found!")
        try:
            result = handler(fields)
        except Refused as exc:
            self.refused.append(f"{method}: {exc}")
            return _error(400, "ERROR_CORE", str(exc))
        if self.lose_answers and method == "telephony.externalcall.register":
            self.lose_answers -= 1
            assert request.transport is not None
            request.transport.abort()
            raise ConnectionResetError("answer lost")
        return web.json_response({"result": result, "time": {"start": time.time()}})

    def _user(self, fields: dict[str, Any]) -> int:
        if fields.get("USER_ID"):
            if int(fields["USER_ID"]) not in {1, *INNER_NUMBERS.values()}:
                raise Refused(f"User {fields['USER_ID']} is not found")
            return int(fields["USER_ID"])
        inner = str(fields.get("USER_PHONE_INNER") or "")
        if not inner:
            raise Refused("USER_ID or USER_PHONE_INNER should be set")
        if inner not in INNER_NUMBERS:
            raise Refused(f"User with inner phone number {inner} is not found")
        return INNER_NUMBERS[inner]

    def _call(self, fields: dict[str, Any]) -> ExternalCall:
        call = self.calls.get(str(fields.get("CALL_ID") or ""))
        if call is None:
            raise Refused("Call is not found")
        return call

    def register(self, fields: dict[str, Any]) -> dict[str, Any]:
        self._user(fields)
        if not fields.get("PHONE_NUMBER"):
            raise Refused("PHONE_NUMBER is empty")
        if fields.get("TYPE") not in (1, 2, 3, 4, "1", "2", "3", "4"):
            raise Refused("TYPE is wrong")
        # Registered again with the same fields and not finished: the same call.
        for call in self.calls.values():
            if call.registered == fields and call.finished is None:
                self.log.append(("register", call.call_id))
                return {"CALL_ID": call.call_id, "CRM_CREATED_LEAD": None}
        call_id = f"externalCall.{len(self.calls) + 1:08x}.{int(time.time())}"
        self.calls[call_id] = ExternalCall(call_id, dict(fields))
        self.log.append(("register", call_id))
        return {"CALL_ID": call_id, "CRM_CREATED_LEAD": 1, "CRM_ENTITY_TYPE": "LEAD", "CRM_ENTITY_ID": len(self.calls)}

    def finish(self, fields: dict[str, Any]) -> dict[str, Any]:
        call = self._call(fields)
        self._user(fields)
        if str(fields.get("STATUS_CODE", "200")) not in {"200", "304", "603", "603-S", "403", "404", "486", "484",
                                                          "503", "480", "402", "423", "OTHER"}:
            raise Refused("STATUS_CODE is wrong")
        call.finished = dict(fields)
        self.log.append(("finish", call.call_id))
        return {"CALL_ID": call.call_id, "CALL_DURATION": fields.get("DURATION", 0)}

    def attach_record(self, fields: dict[str, Any]) -> dict[str, Any]:
        call = self._call(fields)
        if not fields.get("FILENAME"):
            raise Refused("FILENAME is empty")
        try:
            content = base64.b64decode(str(fields.get("FILE_CONTENT") or ""), validate=True)
        except binascii.Error:
            raise Refused("FILE_CONTENT is not base64") from None
        if not content:
            raise Refused("FILE_CONTENT is empty")
        call.records.append({"FILENAME": fields["FILENAME"], "size": len(content), "head": content[:4]})
        self.log.append(("attachRecord", call.call_id))
        return {"FILE_ID": len(call.records)}

    def attach_transcription(self, fields: dict[str, Any]) -> dict[str, Any]:
        call = self._call(fields)
        messages = fields.get("MESSAGES")
        if not isinstance(messages, list) or not messages:
            raise Refused("MESSAGES is empty")
        for message in messages:
            if message.get("SIDE") not in ("User", "Client") or not isinstance(message.get("START_TIME"), int):
                raise Refused("MESSAGES is wrong")
        call.transcripts.append(messages)
        self.log.append(("attachTranscription", call.call_id))
        return {"TRANSCRIPT_ID": len(call.transcripts)}


    def search_crm_entities(self, fields: dict[str, Any]) -> list[dict[str, Any]]:
        user = self.responsible.get(str(fields.get("PHONE_NUMBER") or ""))
        if user is None:
            return []
        inner = next((i for i, uid in INNER_NUMBERS.items() if uid == user), "")
        return [{"CRM_ENTITY_TYPE": "CONTACT", "CRM_ENTITY_ID": 7, "ASSIGNED_BY_ID": user,
                 "ASSIGNED_BY": {"ID": str(user), "TIMEMAN_STATUS": "OPENED", "USER_PHONE_INNER": inner}}]

    def user_get(self, fields: dict[str, Any]) -> dict[str, Any]:
        people = [{"ID": str(user_id), "NAME": f"Manager{inner}", "LAST_NAME": "", "ACTIVE": True,
                   "UF_PHONE_INNER": inner} for inner, user_id in INNER_NUMBERS.items()]
        # The portal's own administrator has no inner number.
        people.insert(0, {"ID": "1", "NAME": "Admin", "LAST_NAME": "", "ACTIVE": True, "UF_PHONE_INNER": ""})
        start = int(fields.get("start") or 0)
        page = people[start:start + self.page_size]
        answer: dict[str, Any] = {"result": page, "total": len(people)}
        if start + self.page_size < len(people):
            answer["next"] = start + self.page_size
        return answer


    async def click(self, handler_url: str, user_id: int, number: str, application_token: str,
                    entity: tuple[str, int] = ("CONTACT", 7)) -> tuple[int, Any]:
        """A user clicks a number on a CRM card: the portal registers the call, then posts OnExternalCallStart."""
        import aiohttp

        call_id = f"externalCall.{len(self.calls) + 1:08x}.{int(time.time())}"
        self.calls[call_id] = ExternalCall(call_id, {"USER_ID": user_id, "PHONE_NUMBER": number, "TYPE": 1})
        form = {
            "event": "ONEXTERNALCALLSTART",
            "data[PHONE_NUMBER]": number,
            "data[PHONE_NUMBER_INTERNATIONAL]": number,
            "data[USER_ID]": str(user_id),
            "data[CALL_ID]": call_id,
            "data[CRM_ENTITY_TYPE]": entity[0],
            "data[CRM_ENTITY_ID]": str(entity[1]),
            "data[LINE_NUMBER]": "",
            "data[IS_MOBILE]": "N",
            "ts": str(int(time.time())),
            "auth[domain]": "example.bitrix24.ru",
            "auth[member_id]": "a1b2c3",
            "auth[application_token]": application_token,
        }
        async with aiohttp.ClientSession() as http, http.post(handler_url, data=form) as answer:
            return answer.status, await answer.json(content_type=None)


class Refused(Exception):
    pass


def _error(status: int, code: str, description: str) -> web.Response:
    return web.json_response({"error": code, "error_description": description}, status=status)
