"""The calls (or clients) behind a figure of the KPI page or the wallboard, as many rows as the figure."""

from __future__ import annotations

from datetime import date
from typing import Any
from urllib.parse import urlencode

from aiohttp import web
from sqlalchemy import select

from pbxbridge.calls.tables import Call
from pbxbridge.clients.tables import Client
from pbxbridge.kpi.calendar import iso_local, local_day
from pbxbridge.kpi.definitions import KpiSettings
from pbxbridge.kpi.drilldown import LEADS, LISTINGS, DrillDownError, drill_down
from pbxbridge.kpi.tables import LeadRow
from pbxbridge.web.access import require_user
from pbxbridge.web.api_calls import call_item, names_of, transcribed_of
from pbxbridge.web.call_filters import MAX_PER_PAGE
from pbxbridge.web.context import ctx
from pbxbridge.web.errors import api_error_said
from pbxbridge.web.i18n import _
from pbxbridge.web.tables import HEAD

routes = web.RouteTableDef()

DEFAULT_PER_PAGE = 50


def _day(request: web.Request, key: str, default: date) -> date:
    value = (request.query.get(key) or "").strip()
    if not value:
        return default
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise api_error_said(400, _(request, "{key}: a date as YYYY-MM-DD, not {value}", key=key, value=value[:40]),
                             field=key) from None


def _int(request: web.Request, key: str, default: int, high: int) -> int:
    value = (request.query.get(key) or "").strip()
    if not value:
        return default
    if not value.isdigit() or not 1 <= int(value) <= high:
        raise api_error_said(400, _(request, "{key}: must be between {low} and {high}", key=key, low=1, high=high),
                             field=key)
    return int(value)


def journal_url(kpi: str, day_from: date, day_to: date, manager: str | None) -> str:
    """The journal's address listing the same calls, with its filters, sorting and talk-time total."""
    query = {"kpi": kpi, "from": day_from.isoformat(), "to": day_to.isoformat()}
    if manager:
        query["manager"] = manager
    return "/calls?" + urlencode(query)


@routes.get("/api/kpi/{kpi}/calls")
async def figure_calls(request: web.Request) -> web.Response:
    """The rows a figure counts for days ``from``..``to`` (default: the department's today), of ``manager``.

    ``count`` is the figure (for a counted one); ``rows`` a page of calls (one per client and day for
    per-client figures, with ``calls_counted``) or of lead cards.
    """
    require_user(request, HEAD)
    context = ctx(request)
    settings = KpiSettings.from_config(context.config)
    kpi = request.match_info["kpi"]
    if kpi not in LISTINGS:
        raise api_error_said(404, _(request, "No such figure: {kpi}", kpi=kpi[:60]))
    today = local_day(context.clock(), settings.zone)
    day_to = _day(request, "to", today)
    day_from = _day(request, "from", day_to)
    if day_from > day_to:
        raise api_error_said(400, _(request, "The period starts after it ends"))
    manager = (request.query.get("manager") or "").strip() or None
    page = _int(request, "page", 1, 1_000_000)
    per_page = _int(request, "per_page", DEFAULT_PER_PAGE, MAX_PER_PAGE)
    async with context.sessions() as db:
        try:
            found = await drill_down(db, kpi, day_from, day_to, manager, settings)
        except DrillDownError:
            raise api_error_said(400, _(
                request, "manager: {kpi} is a figure of the department, not of a manager", kpi=kpi
            ), field="manager") from None
        start = (page - 1) * per_page
        if found.unit == LEADS:
            rows = await _lead_rows(db, found.client_ids[start : start + per_page], settings)
        else:
            rows = await _call_rows(db, found.call_ids[start : start + per_page], context.config.phone.default_region)
            for row in rows:
                row["calls_counted"] = found.calls_per_row.get(row["id"], 1)
    return web.json_response(
        {
            "kpi": kpi, "unit": found.unit, "is_count": LISTINGS[kpi].is_count, "count": found.count,
            "from": day_from.isoformat(), "to": day_to.isoformat(), "manager": manager,
            "page": page, "per_page": per_page, "rows": rows,
            "journal_url": None if found.unit == LEADS else journal_url(kpi, day_from, day_to, manager),
        }
    )


async def _call_rows(db: Any, call_ids: list[int], region: str) -> list[dict[str, Any]]:
    if not call_ids:
        return []
    found = {c.id: c for c in (await db.execute(select(Call).where(Call.id.in_(call_ids)))).scalars()}
    calls = [found[i] for i in call_ids if i in found]
    clients, managers = await names_of(db, calls)
    transcribed = await transcribed_of(db, [c.id for c in calls])
    return [call_item(c, clients, managers, transcribed, region) for c in calls]


async def _lead_rows(db: Any, client_ids: list[int], settings: KpiSettings) -> list[dict[str, Any]]:
    if not client_ids:
        return []
    names = dict((await db.execute(select(Client.id, Client.name).where(Client.id.in_(client_ids)))).all())
    leads = {r.client_id: r for r in (await db.scalars(select(LeadRow).where(LeadRow.client_id.in_(client_ids))))}
    out = []
    for client_id in client_ids:
        lead = leads.get(client_id)
        out.append({
            "client_id": client_id, "client_name": names.get(client_id), "url": f"/clients/{client_id}",
            "arrived_at": iso_local(lead.arrived_at, settings.zone) if lead else None,
            "first_attempt_at": iso_local(lead.first_attempt_at, settings.zone) if lead else None,
            "first_attempt_by": lead.first_attempt_by if lead else None,
            "reached": bool(lead.reached) if lead else False,
        })
    return out
