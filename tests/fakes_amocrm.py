"""A fake amoCRM account's call API, for tests.

Built from amoCRM's published API documentation (no network in tests):
- POST /api/v4/calls (direction, uniq, duration, source, link, phone, call_result, call_status,
  responsible_user_id, created_by, created_at): https://amocrm.ru/developers/content/crm_platform/calls-api
  A call is added only to a card that has the number; "if no entity has the number, the call is not
  added" (it comes back among the answer's errors).
- POST /api/v4/leads/unsorted/sip (source_uid, source_name, metadata with uniq, duration, service_code,
  phone, called_at, from; _embedded.contacts): https://www.amocrm.ru/developers/content/crm_platform/unsorted-api
- GET /api/v4/contacts?query=<number> (contacts whose fields hold it; each with responsible_user_id;
  204 with no body when none): https://www.amocrm.ru/developers/content/crm_platform/contacts-api
- Limits: 7 requests a second per integration, HTTP 429 beyond: https://www.amocrm.ru/developers/content/api/recommendations
Authorization is a long-lived token in "Authorization: Bearer"; a wrong one gets 401.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

TOKEN = "amo-long-lived-7f3c"
LIMIT_PER_S = 7


@dataclass
class FakeAmoCrm:
    """The account's state; ``contacts`` are the numbers (+7…) some card already holds."""

    contacts: set[str] = field(default_factory=set)
    calls: list[dict[str, Any]] = field(default_factory=list)
    unsorted: list[dict[str, Any]] = field(default_factory=list)
    throttled: int = 0
    refused: list[str] = field(default_factory=list)
    # number (+7…) -> the responsible user's id of the contact holding it.
    responsible: dict[str, int] = field(default_factory=dict)
    searches: list[str] = field(default_factory=list)
    _recent: deque[float] = field(default_factory=deque)

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/api/v4/calls", self.add_calls)
        app.router.add_post("/api/v4/leads/unsorted/sip", self.add_unsorted)
        app.router.add_get("/api/v4/contacts", self.find_contacts)
        return app

    def _gate(self, request: web.Request) -> web.Response | None:
        if request.headers.get("Authorization") != f"Bearer {TOKEN}":
            return _problem(401, "Unauthorized", "Token is invalid or expired")
        now = time.monotonic()
        while self._recent and now - self._recent[0] > 1.0:
            self._recent.popleft()
        if len(self._recent) >= LIMIT_PER_S:
            self.throttled += 1
            return _problem(429, "Too Many Requests", "Rate limit exceeded")
        self._recent.append(now)
        return None

    async def find_contacts(self, request: web.Request) -> web.Response:
        refused = self._gate(request)
        if refused is not None:
            return refused
        query = request.query.get("query", "")
        self.searches.append(query)
        digits = "".join(c for c in query if c.isdigit())
        found = [{"id": 100 + i, "name": number, "responsible_user_id": user}
                 for i, (number, user) in enumerate(sorted(self.responsible.items()))
                 if len(digits) >= 7 and number.endswith(digits[-10:])]
        if not found:
            return web.Response(status=204)
        return web.json_response({"_page": 1, "_embedded": {"contacts": found}})

    async def add_calls(self, request: web.Request) -> web.Response:
        refused = self._gate(request)
        if refused is not None:
            return refused
        items = await request.json()
        added: list[dict[str, Any]] = []
        errors: list[dict[str, Any]] = []
        for index, item in enumerate(items):
            problem = _invalid_call(item)
            if problem:
                self.refused.append(problem)
                return _problem(400, "Bad Request", problem)
            if item["phone"] not in self.contacts:
                errors.append({"request_id": str(index), "status": 404, "title": "Not Found",
                               "detail": "Entity with this phone was not found"})
                continue
            self.calls.append(item)
            added.append({"id": len(self.calls), "entity_id": 100 + len(self.calls), "entity_type": "contacts",
                          "request_id": str(index)})
        return web.json_response({"_total_items": len(added), "errors": errors, "_embedded": {"calls": added}})

    async def add_unsorted(self, request: web.Request) -> web.Response:
        refused = self._gate(request)
        if refused is not None:
            return refused
        items = await request.json()
        made = []
        for item in items:
            metadata = item.get("metadata") or {}
            if not item.get("source_uid") or not metadata.get("phone") or not metadata.get("service_code"):
                self.refused.append("unsorted without source_uid, phone or service_code")
                return _problem(400, "Bad Request", "source_uid, metadata.phone and metadata.service_code are required")
            self.unsorted.append(item)
            made.append({"uid": f"u{len(self.unsorted):06d}", "_embedded": {"leads": [{"id": 500 + len(self.unsorted)}]}})
        return web.json_response({"_total_items": len(made), "_embedded": {"unsorted": made}})


def _invalid_call(item: dict[str, Any]) -> str | None:
    if item.get("direction") not in ("inbound", "outbound"):
        return "direction must be inbound or outbound"
    if not isinstance(item.get("duration"), int):
        return "duration must be an integer"
    if not item.get("source") or not item.get("phone"):
        return "source and phone are required"
    if item.get("call_status") not in (None, 1, 2, 3, 4, 5, 6, 7):
        return "call_status is out of range"
    return None


def _problem(status: int, title: str, detail: str) -> web.Response:
    return web.json_response({"title": title, "type": f"https://httpstatus.es/{status}", "status": status,
                              "detail": detail}, status=status, content_type="application/problem+json")
