"""The call journal over HTTP: list with filters and search, one call, CSV export, click-to-call."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl

from aiohttp import web
from sqlalchemy import BindParameter, ColumnElement, and_, bindparam, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from pbxbridge.analytics.conditions import checklist_items, failed_item
from pbxbridge.calls.journal import journal_entry
from pbxbridge.calls.tables import Call
from pbxbridge.clients.numbers import normalise_number
from pbxbridge.clients.tables import Client, Manager
from pbxbridge.kpi.calendar import local_day
from pbxbridge.kpi.definitions import KpiSettings
from pbxbridge.kpi.drilldown import DrillDownError, drill_down
from pbxbridge.review.store import tag_names
from pbxbridge.transcription.search import Hit, SearchFilters, search_calls
from pbxbridge.transcription.tables import TranscriptSegment
from pbxbridge.transcription.transcripts import call_transcript
from pbxbridge.web.access import (
    CALL_ROLES,
    calls_visible,
    load_call,
    load_client,
    require_user,
)
from pbxbridge.web.audit import record
from pbxbridge.web.auth_routes import json_body
from pbxbridge.web.call_filters import CallQuery, conditions, order_by, parse_call_query
from pbxbridge.web.calls_csv import export_filename, journal_csv
from pbxbridge.web.context import ctx, write_session
from pbxbridge.web.display import phone_display
from pbxbridge.web.errors import api_error, api_error_said
from pbxbridge.web.i18n import N_, _, n_
from pbxbridge.web.journal_filters import MAX_NAME_CHARS, MAX_PER_USER, SavedFilter, kept_query, presets
from pbxbridge.web.originate import place_call
from pbxbridge.web.tables import MANAGER
from pbxbridge.web.users import SignedInUser

routes = web.RouteTableDef()

EXPORT_LIMIT = 50_000
# A text search counts matching calls up to this (and says "more than" past it).
SEARCH_LIMIT = 1_000


def _hit_item(hit: Hit) -> dict[str, Any]:
    return {
        "matched": hit.matched, "snippet": hit.snippet, "offset_s": hit.offset_s,
        "recording_id": hit.recording_id, "speaker": hit.speaker,
        # The side asked for is unknown on a one-channel recording: the words matched the whole call.
        "side_unknown": hit.side_unknown,
    }


async def names_of(db: AsyncSession, calls: list[Call]) -> tuple[dict[int, str | None], dict[str, str | None]]:
    client_ids = {c.client_id for c in calls if c.client_id}
    clients: dict[int, str | None] = {}
    if client_ids:
        rows = await db.execute(select(Client.id, Client.name).where(Client.id.in_(client_ids)))
        clients = {client_id: name for client_id, name in rows.all()}
    managers = {ext: name for ext, name in (await db.execute(select(Manager.extension, Manager.name))).all()}
    return clients, managers


async def transcribed_of(db: AsyncSession, call_ids: list[int]) -> set[int]:
    if not call_ids:
        return set()
    rows = await db.scalars(select(TranscriptSegment.call_id).where(TranscriptSegment.call_id.in_(call_ids)).distinct())
    return set(rows.all())


# The names the client card's module imports.
_names, _transcribed = names_of, transcribed_of


def _transfers(call: Call, managers: dict[str, str | None], region: str) -> list[dict[str, Any]]:
    """Where the call went after the manager who answered: each party with a name and as people read it."""
    targets = list(call.transferred_to or [])
    if not targets and call.final_manager and call.final_manager != call.manager:
        targets = [call.final_manager]
    return [{"to": t, "name": managers.get(t), "display": phone_display(t, region)} for t in targets]


def call_item(
    call: Call, clients: dict[int, str | None], managers: dict[str, str | None], transcribed: set[int],
    region: str = "RU",
) -> dict[str, Any]:
    """A journal entry plus what the pages need: ids, names beside extensions, numbers as people
    read them (``*_display``; the raw fields stay for machines), playable recordings."""
    item = journal_entry(call)
    item["id"] = call.id
    item["client_name"] = clients.get(call.client_id) if call.client_id else None
    item["client_number_display"] = phone_display(call.client_number, region) or None
    item["manager_name"] = managers.get(call.manager) if call.manager else None
    item["final_manager_name"] = managers.get(call.final_manager) if call.final_manager else None
    item["callee_name"] = managers.get(call.callee) if call.callee else None
    item["transfers"] = _transfers(call, managers, region)
    item["duration_s"] = round((call.wait_s or 0) + (call.talk_s or 0), 1)
    item["has_transcript"] = call.id in transcribed
    item["playable"] = [
        {"id": r.id, "kind": r.kind, "path": r.path, "duration_s": r.duration_s, "channels": r.channels,
         "audio_url": f"/api/recordings/{r.id}/audio"}
        for r in call.recordings if r.status == "ok" and r.path
    ]
    return item


@dataclass(slots=True)
class Selected:
    """A page of the journal and what the page says above it."""

    items: list[dict[str, Any]]
    # How many calls match, and whether that is exact (a text search counts up to a cap).
    total: int
    exact: bool
    # Talk time of every matching call (None for a text search: it does not sum what it stopped counting).
    talk_s_total: float | None = None
    # The figure listed (``kpi``), as many rows as the figure: {"name", "count", "unit", "manager"}.
    kpi: dict[str, Any] | None = None


async def _kpi_condition(request: web.Request, q: CallQuery) -> tuple[ColumnElement[bool], dict[str, Any]]:
    """The calls behind the figure ``q.kpi`` (one per client for a per-client figure), by its own definition."""
    assert q.kpi is not None
    settings = KpiSettings.from_config(ctx(request).config)
    day_from, day_to = q.kpi_days(settings.zone)
    async with ctx(request).sessions() as db:
        try:
            found = await drill_down(db, q.kpi, day_from, day_to, q.manager, settings)
        except DrillDownError:
            raise api_error_said(400, _(
                request, "manager: {kpi} is a figure of the department, not of a manager", kpi=q.kpi
            ), field="manager") from None
    # Ids inline rather than as parameters: a month of the department's calls is more than a database binds.
    ids: BindParameter[Any] = bindparam("kpi_calls", found.call_ids, expanding=True, literal_execute=True)
    return Call.id.in_(ids), {"name": q.kpi, "count": found.count, "unit": found.unit, "manager": q.manager}


async def _select_calls(
    request: web.Request, user: SignedInUser, q: CallQuery, limit: int, offset: int
) -> Selected:
    """A page of calls, how many match, and whether that count is exact (a text search counts up to a cap)."""
    conds = [calls_visible(user), *conditions(q)]
    listed: dict[str, Any] | None = None
    if q.kpi:
        condition, listed = await _kpi_condition(request, q)
        conds.append(condition)
    if q.checklist and q.failed_item:
        async with ctx(request).sessions() as db:
            conds.append(await failed_item(db, q.checklist, q.failed_item))
    hits: dict[int, dict[str, Any]] = {}
    talk: float | None = None
    if q.q:
        # The search walks its word index newest call first with every filter
        # applied, and reads hits for this page's calls only.
        filters = SearchFilters(
            direction=q.direction, status=q.status, date_from=q.date_from, date_to=q.date_to,
            min_duration_s=q.min_duration_s, max_duration_s=q.max_duration_s, calls=and_(*conds), side=q.side,
        )
        page = await search_calls(ctx(request).sessions, q.q, filters, offset=offset, count=limit, most=SEARCH_LIMIT)
        hits = {h.call_id: _hit_item(h) for h in page.hits}
        total, exact = page.total, page.exact
    async with ctx(request).sessions() as db:
        if q.q:
            found = {c.id: c for c in (await db.execute(select(Call).where(Call.id.in_(list(hits))))).scalars()}
            calls = [found[i] for i in hits if i in found]
        else:
            counted = (
                await db.execute(select(func.count(), func.coalesce(func.sum(Call.talk_s), 0.0)).where(*conds))
            ).one()
            total, exact, talk = int(counted[0]), True, float(counted[1])
            calls = list(
                (await db.execute(select(Call).where(*conds).order_by(*order_by(q)).offset(offset).limit(limit))).scalars()
            )
        clients, managers = await names_of(db, calls)
        transcribed = await transcribed_of(db, [c.id for c in calls])
    region = ctx(request).config.phone.default_region
    items = []
    for call in calls:
        item = call_item(call, clients, managers, transcribed, region)
        if q.q:
            item["hit"] = hits.get(call.id)
        items.append(item)
    return Selected(items, total, exact, talk, listed)


@routes.get("/api/calls")
async def list_calls(request: web.Request) -> web.Response:
    """A page of the journal, newest first or by ``sort``, filtered; ``q`` searches transcripts and clients,
    ``kpi`` lists the calls behind a figure of the KPI page."""
    user = require_user(request, *CALL_ROLES)
    q = parse_call_query(request.query, ctx(request).config.kpi.timezone, request)
    found = await _select_calls(request, user, q, q.per_page, (q.page - 1) * q.per_page)
    # total_exact false: a text search stopped counting at ``total``; more calls match.
    return web.json_response(
        {
            "items": found.items, "total": found.total, "total_exact": found.exact, "page": q.page,
            "per_page": q.per_page, "talk_s_total": found.talk_s_total, "kpi": found.kpi,
            "sort": ("-" if q.descending else "") + q.sort,
        }
    )


@routes.get("/api/calls/export.csv")
async def export_calls(request: web.Request) -> web.Response:
    """The filtered journal as CSV for Russian Excel (every page, the page's columns); the export is audited."""
    user = require_user(request, *CALL_ROLES)
    timezone = ctx(request).config.kpi.timezone
    q = parse_call_query(request.query, timezone, request)
    items = (await _select_calls(request, user, q, EXPORT_LIMIT, 0)).items
    body = journal_csv(request, items, timezone, searched=bool(q.q))
    async with write_session(ctx(request)) as db:
        record(db, request, user, "export_calls", None, rows=len(items), query=dict(request.query))
    filename = export_filename(q.date_from, q.date_to, items, timezone)
    return web.Response(
        body=body,
        content_type="text/csv",
        charset="utf-8",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


@routes.get("/api/calls/{call_id:\\d+}")
async def get_call(request: web.Request) -> web.Response:
    """One call with its recordings, transcript and client."""
    user = require_user(request, *CALL_ROLES)
    call_id = int(request.match_info["call_id"])
    context = ctx(request)
    async with context.sessions() as db:
        call = await load_call(db, user, call_id)
        clients, managers = await names_of(db, [call])
        transcribed = await transcribed_of(db, [call.id])
        item = call_item(call, clients, managers, transcribed, context.config.phone.default_region)
        client = await db.get(Client, call.client_id) if call.client_id else None
        if client is not None:
            item["client"] = {
                "id": client.id, "name": client.name, "is_lead": client.is_lead,
                "numbers": sorted(p.number for p in client.phones),
            }
    ids_by_path = {r["path"]: r["id"] for r in item["playable"]}
    segments = await call_transcript(context.sessions, call.linkedid, call.pbx) or []
    item["transcript"] = [{**s, "recording_id": ids_by_path.get(s["recording"])} for s in segments]
    return web.json_response(item)


@routes.post("/api/calls/originate")
async def originate(request: web.Request) -> web.Response:
    """Click-to-call: ring the manager's handset, then dial the client (by card or number)."""
    user = require_user(request, *CALL_ROLES)
    body = await json_body(request)
    context = ctx(request)
    extension = user.extension if user.role == MANAGER else (body.get("extension") or user.extension)
    if not extension:
        raise api_error(400, "extension: whose handset should ring? (the head passes one)")
    number = body.get("number")
    client_id = body.get("client_id")
    async with context.sessions() as db:
        if client_id is not None:
            if not isinstance(client_id, int) or isinstance(client_id, bool):
                raise api_error(400, "client_id must be an integer")
            client = await load_client(db, user, client_id)
            numbers = sorted(p.number for p in client.phones)
            if number is None:
                if not numbers:
                    raise api_error(409, "this client has no number")
                number = numbers[0]
            elif number not in numbers:
                raise api_error(400, "number: not one of this client's numbers")
        elif user.role == MANAGER:
            raise api_error(400, "client_id is required")
        if not isinstance(number, str) or normalise_number(number, context.config.phone.default_region) is None:
            raise api_error(400, "number: not a phone number")
    target = f"client:{client_id}" if client_id else None
    result = await place_call(request, user, str(extension), number, target)
    return web.json_response({"status": "ringing", "extension": str(extension), "number": number, **result}, status=202)


@routes.get("/api/calls/filter-options")
async def filter_options(request: web.Request) -> web.Response:
    """What the journal's further filters offer: the review's tags and each checklist's items."""
    require_user(request, *CALL_ROLES)
    async with ctx(request).sessions() as db:
        tags = await tag_names(db)
        checklists = await checklist_items(db)
    return web.json_response({"tags": tags, "checklists": checklists})


def _filter_item(f: SavedFilter) -> dict[str, Any]:
    return {"id": f.id, "name": f.name, "query": f.query}


@routes.get("/api/calls/filters")
async def list_filters(request: web.Request) -> web.Response:
    """The journal's presets (in the user's language) and the user's own saved filters, by name."""
    user = require_user(request, *CALL_ROLES)
    context = ctx(request)
    today = local_day(context.clock(), KpiSettings.from_config(context.config).zone).isoformat()
    async with context.sessions() as db:
        saved = (await db.scalars(select(SavedFilter).where(SavedFilter.user_id == user.id))).all()
    return web.json_response({
        "presets": [{**p, "name": _(request, p["name"])} for p in presets(today)],
        "saved": [_filter_item(f) for f in sorted(saved, key=lambda f: (f.name.casefold(), f.id))],
    })


@routes.post("/api/calls/filters")
async def save_filter(request: web.Request) -> web.Response:
    """Save the journal's filters under a name (the same name again: its filters are replaced)."""
    user = require_user(request, *CALL_ROLES)
    body = await json_body(request)
    name, raw = body.get("name"), body.get("query")
    if not isinstance(name, str) or not " ".join(name.split()):
        raise api_error(400, N_("name: give the filter a name"), field="name")
    name = " ".join(name.split())
    if len(name) > MAX_NAME_CHARS:
        raise api_error_said(400, n_(
            request, "name: at most {n} character", "name: at most {n} characters", MAX_NAME_CHARS
        ), field="name")
    if not isinstance(raw, str):
        raise api_error(400, N_("query: the journal's filters as a query string"), field="query")
    query = kept_query(raw)
    if not query:
        raise api_error(400, N_("query: there is no filter to save"), field="query")
    # The filters must be ones the journal takes: refused now rather than each time they are opened.
    parse_call_query(dict(parse_qsl(query)), ctx(request).config.kpi.timezone, request)
    async with write_session(ctx(request)) as db:
        mine = list((await db.scalars(select(SavedFilter).where(SavedFilter.user_id == user.id))).all())
        same = next((f for f in mine if f.name == name), None)
        if same is None:
            if len(mine) >= MAX_PER_USER:
                raise api_error_said(409, n_(
                    request, "At most {n} saved filter: delete one first", "At most {n} saved filters: delete one first",
                    MAX_PER_USER,
                ))
            same = SavedFilter(user_id=user.id, name=name, query=query, created_at=datetime.now(UTC))
            db.add(same)
        else:
            same.query = query
        await db.flush()
        item = _filter_item(same)
    return web.json_response(item, status=201)


@routes.delete("/api/calls/filters/{filter_id:\\d+}")
async def delete_filter(request: web.Request) -> web.Response:
    """Delete one of the user's saved filters (another user's is not found)."""
    user = require_user(request, *CALL_ROLES)
    filter_id = int(request.match_info["filter_id"])
    async with write_session(ctx(request)) as db:
        saved = await db.get(SavedFilter, filter_id)
        if saved is None or saved.user_id != user.id:
            raise api_error(404, N_("no such saved filter"))
        await db.delete(saved)
    return web.Response(status=204)
