"""KPI figures for the dashboard: per manager and department, by day or week, beside the previous
period of the same length and the head's targets; lost leads; setting the targets."""

from __future__ import annotations

from collections import defaultdict
from datetime import date, timedelta
from typing import Any

from aiohttp import web
from sqlalchemy import and_, func, or_, select

from pbxbridge.calls.tables import Call
from pbxbridge.clients.tables import Client
from pbxbridge.db.base import table_of
from pbxbridge.kpi.calendar import iso_local, local_day
from pbxbridge.kpi.definitions import DEPARTMENT_ONLY, FIGURE_KIND, UNANSWERED_INBOUND, KpiSettings
from pbxbridge.kpi.report import read_figures
from pbxbridge.kpi.tables import CallFactRow, ManagerDayRow
from pbxbridge.kpi.targets import (
    BETTER,
    DEPARTMENT_SCOPE,
    MANAGER_SCOPE,
    SCOPES,
    Target,
    TargetRefused,
    for_period,
    on_target,
    read_targets,
    set_target,
)
from pbxbridge.web.access import require_user
from pbxbridge.web.audit import record
from pbxbridge.web.auth_routes import json_body
from pbxbridge.web.context import ctx, write_session
from pbxbridge.web.display import phone_display
from pbxbridge.web.errors import api_error
from pbxbridge.web.i18n import _
from pbxbridge.web.tables import HEAD

routes = web.RouteTableDef()

DEFAULT_DAYS = 14
MAX_DAYS = 400
# Weekly figures that are plain sums of the daily ones; the rest are recomputed or left out.
_SUMMED_KINDS = ("count",)
_SUMMED_SECONDS = ("talk_s", "manager_talk_s", "client_talk_s")
# A period with none of these on any row had no calls.
_CALL_COUNTS = ("calls_in", "calls_out", "calls_internal", "offered")
_RATIOS = {
    "reach_rate": ("outbound_answered", "calls_out"),
    "service_level": ("answered_within_sl", None),
    "new_leads_reached_share": ("new_leads_reached", "new_leads"),
    "script_adherence": ("speech_items_passed", "speech_items"),
}


def _day(request: web.Request, value: str, key: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise api_error(400, _(request, "{key}: a date as YYYY-MM-DD, not {value}", key=key, value=value)) from None


async def _range(request: web.Request) -> tuple[date, date]:
    """The days asked for; by default the two weeks up to the latest day with figures."""
    q = request.query
    if q.get("to"):
        day_to = _day(request, q["to"], "to")
    else:
        async with ctx(request).sessions() as db:
            latest = await db.scalar(select(func.max(table_of(ManagerDayRow).c.day)))
        # No figures yet: the department's today, not the server's.
        context = ctx(request)
        day_to = latest or local_day(context.clock(), KpiSettings.from_config(context.config).zone)
    day_from = _day(request, q["from"], "from") if q.get("from") else day_to - timedelta(days=DEFAULT_DAYS - 1)
    if day_from > day_to:
        raise api_error(400, _(request, "The period starts after it ends"))
    if (day_to - day_from).days >= MAX_DAYS:
        raise api_error(400, _(request, "At most {n} days at once", n=MAX_DAYS))
    return day_from, day_to


def _fold(rows: list[dict[str, Any]], norm: int, key: Any) -> list[dict[str, Any]]:
    """Daily rows folded by ``key(row)`` (a date string) and manager: counts summed, shares recomputed."""
    groups: dict[tuple[str, str | None], list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        groups[(key(row), row["manager"])].append(row)
    out = []
    for (start, manager), days in sorted(groups.items(), key=lambda kv: (kv[0][0], kv[0][1] is None, kv[0][1] or "")):
        item: dict[str, Any] = {
            "date": start, "manager": manager, "manager_name": days[0]["manager_name"], "days": len(days),
        }
        for name, kind in FIGURE_KIND.items():
            values = [d[name] for d in days if d.get(name) is not None]
            if kind in _SUMMED_KINDS or name in _SUMMED_SECONDS:
                item[name] = sum(values) if values else None
            elif name == "longest_wait_s":
                item[name] = max(values) if values else None
            else:
                item[name] = None
        if item.get("outbound_norm") is not None:
            item["outbound_norm"] = norm * len(days)
        for name, (part, whole) in _RATIOS.items():
            denominator = (
                (item.get("queue_answered") or 0) + (item.get("abandoned") or 0) if whole is None else item.get(whole)
            )
            item[name] = round(item[part] / denominator, 4) if item.get(part) is not None and denominator else None
        # Talk share over the period's measured talk, never a mean of daily shares.
        talked_s = (item.get("manager_talk_s") or 0) + (item.get("client_talk_s") or 0)
        item["talk_share"] = round(item["manager_talk_s"] / talked_s, 4) if talked_s else None
        if item.get("calls_out") is not None and item.get("outbound_norm"):
            item["outbound_norm_share"] = round(item["calls_out"] / item["outbound_norm"], 4)
        # Seconds means over the whole period, recomputed from its sums (never a mean of means).
        talked = (item.get("answered") or 0) + (item.get("outbound_answered") or 0)
        if item.get("talk_s") is not None and talked:
            item["talk_s_mean"] = round(item["talk_s"] / talked, 1)
        out.append(item)
    return out


def weekly(rows: list[dict[str, Any]], norm: int) -> list[dict[str, Any]]:
    """Daily rows folded into ISO weeks (Monday's date): counts summed, shares recomputed."""

    def monday(row: dict[str, Any]) -> str:
        day = date.fromisoformat(row["date"])
        return (day - timedelta(days=day.weekday())).isoformat()

    return _fold(rows, norm, monday)


def totals(rows: list[dict[str, Any]], norm: int, day_from: date) -> dict[str | None, dict[str, Any]]:
    """The whole period in one row per manager (None: the department)."""
    return {row["manager"]: row for row in _fold(rows, norm, lambda _row: day_from.isoformat())}


def compare(
    current: dict[str | None, dict[str, Any]],
    previous: dict[str | None, dict[str, Any]],
    targets: list[Target],
    days: int,
) -> list[dict[str, Any]]:
    """Each manager's (and the department's) figures beside the previous period and the targets.

    ``met`` is None where there is nothing to judge (no figure, no target).
    """
    by_scope: dict[str, dict[str, float]] = defaultdict(dict)
    for target in targets:
        by_scope[target.scope][target.kpi] = target.value
    out = []
    # Everyone with figures in either period: a manager silent this time is compared too.
    for manager in sorted(set(current) | set(previous), key=lambda m: (m is None, m or "")):
        row = current.get(manager, {})
        before = previous.get(manager, {})
        scope = DEPARTMENT_SCOPE if manager is None else MANAGER_SCOPE
        judged: dict[str, dict[str, Any]] = {}
        for kpi in BETTER:
            goal = by_scope[scope].get(kpi)
            aim = None if goal is None else for_period(kpi, goal, days)
            judged[kpi] = {
                "value": row.get(kpi),
                "previous": before.get(kpi),
                "target": aim,
                "met": None if aim is None else on_target(kpi, row.get(kpi), aim),
            }
        name = row.get("manager_name") or before.get("manager_name")
        out.append({"manager": manager, "manager_name": name, "figures": judged})
    return out


@routes.get("/api/kpi")
async def kpi(request: web.Request) -> web.Response:
    """Figures per manager (and the department, manager null) by day or ISO week."""
    require_user(request, HEAD)
    context = ctx(request)
    settings = KpiSettings.from_config(context.config)
    period = request.query.get("period", "day")
    if period not in ("day", "week"):
        raise api_error(400, _(request, "period: day or week"))
    day_from, day_to = await _range(request)
    manager = request.query.get("manager") or None
    # The previous period: as many days, just before.
    days = (day_to - day_from).days + 1
    prev_to = day_from - timedelta(days=1)
    prev_from = prev_to - timedelta(days=days - 1)
    norm = settings.daily_outbound_norm
    async with context.sessions() as db:
        rows = await read_figures(db, day_from, day_to, settings, manager=manager)
        before = await read_figures(db, prev_from, prev_to, settings, manager=manager)
        targets = await read_targets(db)
    comparison = compare(totals(rows, norm, day_from), totals(before, norm, prev_from), targets, days)
    if period == "week":
        rows = weekly(rows, norm)
    return web.json_response(
        {
            "from": day_from.isoformat(),
            "to": day_to.isoformat(),
            "days": days,
            "period": period,
            "previous": {"from": prev_from.isoformat(), "to": prev_to.isoformat()},
            # No call at all in the period: the page says so instead of drawing zeros as if measured.
            "empty": not any(row.get(name) for row in rows for name in _CALL_COUNTS),
            "rows": rows,
            "comparison": comparison,
            "targets": [t.as_dict() for t in targets],
        }
    )


@routes.get("/api/kpi/lost-leads")
async def lost_leads(request: web.Request) -> web.Response:
    """Callers nobody called back in time (lost), then those whose window is still open (at risk)."""
    require_user(request, HEAD)
    context = ctx(request)
    settings = KpiSettings.from_config(context.config)
    day_from, day_to = await _range(request)
    region = context.config.phone.default_region
    unanswered = CallFactRow.status.in_(sorted(UNANSWERED_INBOUND))
    cond = and_(
        CallFactRow.day >= day_from,
        CallFactRow.day <= day_to,
        CallFactRow.direction == "inbound",
        unanswered,
        or_(CallFactRow.lost.is_(True), and_(CallFactRow.lost.is_(None), CallFactRow.callback_call_id.is_(None))),
    )
    async with context.sessions() as db:
        rows = await db.execute(
            select(CallFactRow, Client.name, Call.client_number)
            .join(Call, Call.id == CallFactRow.call_id)
            .outerjoin(Client, Client.id == CallFactRow.client_id)
            .where(cond)
            .order_by(CallFactRow.lost.desc().nulls_last(), CallFactRow.ended_at.desc())
        )
        items = [
            {
                "call_id": fact.call_id,
                "client_id": fact.client_id,
                "client_name": name,
                "client_number": number,
                "client_display": phone_display(number, region) if number else None,
                "status": fact.status,
                "state": "lost" if fact.lost else "at_risk",
                "ended_at": iso_local(fact.ended_at, settings.zone),
                "wait_s": fact.wait_s,
                "rang": list(fact.rang or []),
            }
            for fact, name, number in rows.all()
        ]
    lost = [i for i in items if i["state"] == "lost"]
    return web.json_response(
        {
            "from": day_from.isoformat(),
            "to": day_to.isoformat(),
            "items": lost + [i for i in items if i["state"] != "lost"],
        }
    )


@routes.get("/api/kpi/targets")
async def list_targets(request: web.Request) -> web.Response:
    """The targets set, and the figures a target can be set for (which way is better, what unit)."""
    require_user(request, HEAD)
    async with ctx(request).sessions() as db:
        kept = await read_targets(db)
    return web.json_response(
        {
            "items": [t.as_dict() for t in kept],
            "figures": [
                {"kpi": kpi, "better": better, "kind": FIGURE_KIND[kpi], "department_only": kpi in DEPARTMENT_ONLY}
                for kpi, better in BETTER.items()
            ],
        }
    )


def _refusal(request: web.Request, refused: TargetRefused) -> web.HTTPException:
    """The refusal in the user's language, naming the field."""
    reasons = {
        "kpi": _(request, "kpi: no target can be set for this figure"),
        "scope": _(request, "scope: department or manager (for each manager)"),
        "value": _(request, "value: a number from 0 up (a share from 0 to 1)"),
    }
    if refused.field == "scope" and refused.reason.startswith("a figure of the department"):
        return api_error(400, _(request, "scope: this is a figure of the department only"))
    return api_error(400, reasons.get(refused.field, str(refused)))


@routes.put("/api/kpi/targets")
async def put_target(request: web.Request) -> web.Response:
    """Set (or, with value null, remove) the target of one figure for the department or each manager."""
    user = require_user(request, HEAD)
    body = await json_body(request)
    kpi, scope, value = body.get("kpi"), body.get("scope", DEPARTMENT_SCOPE), body.get("value")
    if not isinstance(kpi, str) or kpi not in BETTER:
        raise _refusal(request, TargetRefused("kpi", "unknown"))
    if scope not in SCOPES:
        raise _refusal(request, TargetRefused("scope", "unknown"))
    async with write_session(ctx(request)) as db:
        try:
            kept = await set_target(db, kpi, scope, value, user.username)
        except TargetRefused as refused:
            raise _refusal(request, refused) from None
        record(db, request, user, "set_kpi_target", f"kpi:{kpi}", scope=scope, value=None if kept is None else kept.value)
    return web.json_response({"item": None if kept is None else kept.as_dict()})
