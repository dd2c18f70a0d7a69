"""Speech analytics over HTTP: a call's checklist results (for the player), the checklists, re-check progress."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from sqlalchemy import select

from pbxbridge.analytics.checklist import ChecklistError, parse_checklist
from pbxbridge.analytics.matching import NOT_SAID, STOP_SAID
from pbxbridge.analytics.store import (
    call_checks,
    delete_checklist,
    job_progress,
    queue_recheck,
    set_checklist,
    stored_checklists,
)
from pbxbridge.analytics.tables import AnalysisJob
from pbxbridge.web.access import CALL_ROLES, load_call, require_user
from pbxbridge.web.audit import record
from pbxbridge.web.auth_routes import json_body
from pbxbridge.web.context import USER, ctx, write_session
from pbxbridge.web.errors import api_error_said
from pbxbridge.web.i18n import N_, _
from pbxbridge.web.pages import layout
from pbxbridge.web.tables import HEAD

routes = web.RouteTableDef()

# Why an item failed, as a person reads it.
REASONS = {NOT_SAID: N_("Not said"), STOP_SAID: N_("Stop phrase said")}
SIDE_UNKNOWN = N_("One-channel recording: whose words these are is not known, the whole call was searched")


def _explained(request: web.Request, item: dict[str, Any]) -> dict[str, Any]:
    reason = item.get("reason")
    return {
        **item,
        "reason_text": _(request, REASONS[reason]) if reason in REASONS else None,
        "side_note": _(request, SIDE_UNKNOWN) if item.get("side_unknown") else None,
    }


@routes.get("/api/calls/{call_id:\\d+}/checks")
async def get_call_checks(request: web.Request) -> web.Response:
    """A call's checklist results (each item: passed, the moment and words that show it, or why not) and figures."""
    user = require_user(request, *CALL_ROLES)
    call_id = int(request.match_info["call_id"])
    async with ctx(request).sessions() as db:
        call = await load_call(db, user, call_id)
        found = await call_checks(db, call.linkedid, call.pbx) or {"checklists": [], "conversation": None}
    checklists = [
        {**entry, "items": [_explained(request, item) for item in entry["items"]]} for entry in found["checklists"]
    ]
    return web.json_response({
        "call_id": call.id, "linkedid": call.linkedid, "checklists": checklists, "conversation": found["conversation"],
    })


async def _latest_job(db: Any) -> dict[str, Any] | None:
    latest = await db.scalar(select(AnalysisJob.id).order_by(AnalysisJob.id.desc()).limit(1))
    return await job_progress(db, latest) if latest is not None else None


@routes.get("/api/checklists")
async def get_checklists(request: web.Request) -> web.Response:
    """The checklists, and how far the latest re-check of past calls has got."""
    require_user(request, HEAD)
    async with ctx(request).sessions() as db:
        stored = await stored_checklists(db)
        job = await _latest_job(db)
    return web.json_response({
        "checklists": [
            {**s.checklist.as_json(), "version": s.version, "updated_at": s.updated_at.isoformat()} for s in stored
        ],
        "recheck": job,
    })


@routes.put("/api/checklists")
async def put_checklist(request: web.Request) -> web.Response:
    """Store a checklist (new, or a new version by its name); past calls are re-checked in the background."""
    user = require_user(request, HEAD)
    body = await json_body(request)
    try:
        checklist = parse_checklist(body)
    except ChecklistError as exc:
        # Each problem names the field it is about, so the form can mark it.
        message = _(request, "The checklist was not saved: fix the fields named")
        raise api_error_said(400, message, problems=exc.problems) from None
    context = ctx(request)
    async with write_session(context) as db:
        stored, changed = await set_checklist(db, checklist)
        job = await queue_recheck(db, f"checklist set: {checklist.name}") if changed else None
        if changed:
            record(db, request, user, "checklist_set", checklist.name, version=stored.version)
    async with context.sessions() as db:
        progress = await job_progress(db, job) if job is not None else await _latest_job(db)
    return web.json_response({
        "checklist": {**checklist.as_json(), "version": stored.version}, "changed": changed, "recheck": progress,
    })


@routes.delete("/api/checklists/{name}")
async def remove_checklist(request: web.Request) -> web.Response:
    """Remove a checklist and every call's verdicts against it (the journal's filters forget it too)."""
    user = require_user(request, HEAD)
    name = request.match_info["name"]
    async with write_session(ctx(request)) as db:
        # No checklist's name holds a NUL byte (PostgreSQL cannot even compare text with one): none is looked for.
        removed = "\x00" not in name and await delete_checklist(db, name)
        if removed:
            record(db, request, user, "checklist_delete", name)
    if not removed:
        raise api_error_said(404, _(request, "No checklist named {name}", name=name))
    return web.Response(status=204)


@routes.get("/checklists")
async def checklists_page(request: web.Request) -> web.Response:
    """The head's checklists: what a manager's speech is checked against, written and changed here."""
    user = request.get(USER)
    if user is None or user.role != HEAD:
        # The request pipeline draws the 403 page from this message and writes the refusal to the audit log.
        raise web.HTTPForbidden(text=N_("Your role may not open this page."))
    return layout(
        request, _(request, "Checklists"), '<div id="checklists-page"></div>', ("js/checklists.js",),
        styles=("css/checklists.css",),
    )
