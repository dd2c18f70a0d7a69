"""Missed clients to call back over HTTP: the worklist, closing a row, calling back; the page.

Who sees what: the head of sales every row; a manager the rows of their own
clients (the card's responsible manager) and of clients nobody is responsible
for. A manager asking for another manager's client's row is refused, and the
refusal is written to the audit log.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from aiohttp import web
from sqlalchemy import func, select

from pbxbridge.calls.tables import Call
from pbxbridge.clients.assign import reassign
from pbxbridge.clients.tables import Client, Manager
from pbxbridge.kpi.definitions import INBOUND, UNANSWERED_INBOUND, KpiSettings
from pbxbridge.web.access import CALL_ROLES, current_user, require_user
from pbxbridge.web.audit import record
from pbxbridge.web.auth_routes import json_body
from pbxbridge.web.context import WebContext, ctx, write_session
from pbxbridge.web.display import phone_display
from pbxbridge.web.errors import api_error
from pbxbridge.web.i18n import _
from pbxbridge.web.originate import place_call
from pbxbridge.web.pages import forbidden_page, layout
from pbxbridge.web.tables import HEAD, MANAGER
from pbxbridge.web.users import SignedInUser
from pbxbridge.workflow.closing import MAX_NOTE, CloseRefused, NothingOpen, close_row
from pbxbridge.workflow.worklist import CLOSE_REASONS, MissedRow, read_worklist

log = logging.getLogger(__name__)
routes = web.RouteTableDef()
MAX_BULK = 1000
# Missed calls one alert poll reports at most (the page then points to the list).
ALERTS_MAX = 20


def _settings(context: WebContext) -> KpiSettings:
    return KpiSettings.from_config(context.config)


def _due_s(context: WebContext) -> float:
    return float(context.config.workflow.callback_due_min) * 60.0


def may_see(user: SignedInUser, row: MissedRow) -> bool:
    """The head sees every row; a manager their own clients' and the unassigned ones."""
    if user.role == HEAD:
        return True
    return bool(user.extension) and row.manager in (None, user.extension)


def _item(row: MissedRow, now: float, due_s: float, region: str) -> dict[str, Any]:
    item = row.as_dict(now, due_s)
    item["number_display"] = phone_display(row.number, region)
    return item


async def _refuse(request: web.Request, user: SignedInUser, action: str, client_id: int, manager: str | None) -> None:
    """Note a refused request (log and audit log) before answering 403."""
    log.warning(
        "%s refused: %s (ext %s) asked for client %d, whose manager is %s",
        action, user.username, user.extension, client_id, manager,
    )
    async with write_session(ctx(request)) as db:
        record(db, request, user, f"{action}_refused", f"client:{client_id}", manager=manager)


async def _visible_row(request: web.Request, user: SignedInUser, client_id: int, action: str) -> MissedRow:
    """The client's open row if the user may act on it: else 404 (no row) or 403 (logged)."""
    context = ctx(request)
    async with context.sessions() as db:
        rows = await read_worklist(db, _settings(context), [client_id], context.config.workflow.missed_days)
    if not rows:
        raise api_error(404, _(request, "this client has no missed calls waiting for a callback"))
    (row,) = rows
    if not may_see(user, row):
        await _refuse(request, user, action, client_id, row.manager)
        raise api_error(403, _(request, "this client belongs to another manager"))
    return row


@routes.get("/api/missed")
async def list_missed(request: web.Request) -> web.Response:
    """The open rows the user may see, the longest open first."""
    user = require_user(request, *CALL_ROLES)
    context = ctx(request)
    async with context.sessions() as db:
        rows = await read_worklist(db, _settings(context), days=context.config.workflow.missed_days)
    now = context.clock()
    due_s = _due_s(context)
    region = context.config.phone.default_region
    items = [_item(r, now, due_s, region) for r in rows if may_see(user, r)]
    return web.json_response({
        "items": items,
        "now": now,
        "due_s": due_s,
        "overdue": sum(1 for i in items if i["overdue"]),
        "reasons": list(CLOSE_REASONS),
    })


def _client_id(request: web.Request) -> int:
    return int(request.match_info["client_id"])


@routes.get("/api/missed/alerts")
async def missed_alerts(request: web.Request) -> web.Response:
    """Calls of the manager's own clients missed after call ``after`` (every page polls this).

    Without ``after`` it only says where the journal is, so a page just opened does not
    announce what was missed before. Cheap on purpose: it reads calls by id, newest only.
    """
    user = require_user(request)
    try:
        after = int(request.query["after"]) if "after" in request.query else None
    except ValueError:
        raise api_error(400, _(request, "after must be a call id")) from None
    context = ctx(request)
    async with context.sessions() as db:
        latest = int(await db.scalar(select(func.max(Call.id))) or 0)
        items: list[dict[str, Any]] = []
        if after is not None and user.role == MANAGER and user.extension:
            rows = await db.execute(
                select(Call.id, Call.client_id, Call.client_number, Call.started_at, Client.name)
                .join(Client, Client.id == Call.client_id)
                .join(Manager, Manager.id == Client.responsible_manager_id)
                .where(
                    Call.id > after,
                    Call.direction == INBOUND,
                    Call.status.in_(sorted(UNANSWERED_INBOUND)),
                    Manager.extension == user.extension,
                )
                .order_by(Call.id)
                .limit(ALERTS_MAX)
            )
            region = context.config.phone.default_region
            items = [
                {"call_id": call_id, "client_id": client_id, "client_name": name,
                 "number_display": phone_display(number, region), "started_at": started.timestamp()}
                for call_id, client_id, number, started, name in rows.all()
            ]
    return web.json_response({"latest": latest, "items": items})


@routes.post("/api/missed/{client_id:\\d+}/close")
async def close_missed(request: web.Request) -> web.Response:
    """A person closes a row: {"reason": spam | wrong_number | reached_otherwise, "through_call_id", "note"}."""
    user = require_user(request, *CALL_ROLES)
    client_id = _client_id(request)
    body = await json_body(request)
    reason = body.get("reason")
    if reason not in CLOSE_REASONS:
        raise api_error(400, _(request, "reason: one of {reasons}", reasons=", ".join(CLOSE_REASONS)))
    through = body.get("through_call_id")
    if through is not None and (not isinstance(through, int) or isinstance(through, bool)):
        raise api_error(400, _(request, "through_call_id must be an integer"))
    note = body.get("note")
    if note is not None and (not isinstance(note, str) or len(note) > MAX_NOTE):
        raise api_error(400, _(request, "note: text up to {count} characters", count=MAX_NOTE))
    row = await _visible_row(request, user, client_id, "missed_close")
    context = ctx(request)
    async with write_session(context) as db:
        try:
            await close_row(
                db, _settings(context), client_id, reason, user.username, through_call_id=through, note=note,
                days=context.config.workflow.missed_days,
            )
        except NothingOpen:
            raise api_error(404, _(request, "this client has no missed calls waiting for a callback")) from None
        except CloseRefused:
            raise api_error(409, _(request, "the row has changed since it was shown: reload and look again")) from None
        record(db, request, user, "missed_close", f"client:{client_id}", reason=reason,
               through_call_id=through or row.last_missed_call_id, missed_calls=row.missed_calls)
    return web.json_response({"closed": True, "client_id": client_id, "reason": reason})


@routes.post("/api/missed/{client_id:\\d+}/call")
async def call_back(request: web.Request) -> web.Response:
    """Call back: ring the manager's handset, then dial the client's number (click-to-call)."""
    user = require_user(request, *CALL_ROLES)
    client_id = _client_id(request)
    body = await json_body(request)
    row = await _visible_row(request, user, client_id, "missed_call")
    # A manager's own handset; the head's if they have one, else the client's manager's.
    extension = user.extension if user.role != HEAD else (body.get("extension") or user.extension or row.manager)
    if not extension:
        raise api_error(400, _(request, "extension: whose handset should ring?"))
    number = body.get("number") or row.number
    if not isinstance(number, str) or number not in (*row.numbers, row.number):
        raise api_error(400, _(request, "number: not one of this client's numbers"))
    result = await place_call(request, user, str(extension), number, f"client:{client_id}",
                              missed_call_id=row.last_missed_call_id)
    return web.json_response({"status": "ringing", "extension": str(extension), "number": number, **result}, status=202)


@routes.post("/api/clients/assign")
async def assign_clients(request: web.Request) -> web.Response:
    """The head gives many cards to one manager at once: {"client_ids": [...], "manager": ext | null}."""
    user = require_user(request, HEAD)
    body = await json_body(request)
    ids = body.get("client_ids")
    if (
        not isinstance(ids, list) or not ids or len(ids) > MAX_BULK
        or not all(isinstance(i, int) and not isinstance(i, bool) for i in ids)
    ):
        raise api_error(400, _(request, "client_ids: a list of 1 to {count} card ids", count=MAX_BULK))
    if "manager" not in body:
        raise api_error(400, _(request, "manager: an extension, or null for nobody"))
    manager = body["manager"]
    if manager is not None and not isinstance(manager, str):
        raise api_error(400, _(request, "manager: an extension, or null for nobody"))
    async with write_session(ctx(request)) as db:
        try:
            found = await reassign(db, ids, manager, datetime.now(UTC))
        except LookupError:
            raise api_error(400, _(request, "manager: no manager with extension {extension}", extension=manager)) from None
        missing = sorted(set(ids) - set(found))
        if missing:
            # The whole list or nothing: a wrong id means the list was not the one meant.
            raise api_error(404, _(request, "no client card with id {ids}", ids=", ".join(map(str, missing))))
        record(db, request, user, "assign_clients", f"manager:{manager}", client_ids=sorted(found))
    return web.json_response({"assigned": len(found), "manager": manager})


@routes.get("/missed")
async def missed_page(request: web.Request) -> web.Response:
    """Missed clients to call back: one row per client, Call back and Close on each."""
    user = current_user(request)
    if user is None:
        raise web.HTTPFound("/login?next=/missed")
    if user.role not in CALL_ROLES:
        return forbidden_page(request, _(request, "Your role may not open this page."), _(request, "Not for your role"))
    data = {"due-min": ctx(request).config.workflow.callback_due_min}
    return layout(
        request, _(request, "Missed calls"), '<div id="missed-page"></div>', ("js/missed.js",), data,
        styles=("css/missed.css",),
    )
