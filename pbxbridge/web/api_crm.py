"""The CRMs' side of the web app: clicks on a number in Bitrix24 become pbxbridge's click-to-call, a CRM
plays a call's recording from a signed, expiring link without signing in, and the head keeps which CRM
user each manager's extension is."""

from __future__ import annotations

import logging
import re
from datetime import UTC, datetime
from typing import Any

from aiohttp import web
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from pbxbridge.calls.tables import Recording
from pbxbridge.clients.numbers import normalise_number
from pbxbridge.clients.tables import Manager
from pbxbridge.crm import users as crm_users
from pbxbridge.crm.clicks import (
    BITRIX24,
    BUSY_CODE,
    DECLINED_CODE,
    ClickRefused,
    extension_of,
    read_click,
    refused_click_finish,
    remember_click,
)
from pbxbridge.crm.recording_links import PATH_PREFIX, is_valid
from pbxbridge.crm.tables import CrmClick, CrmUser
from pbxbridge.recordings.kinds import kind_root
from pbxbridge.routing.click_to_call import ClickToCallError, ExtensionBusy
from pbxbridge.web.access import require_user
from pbxbridge.web.api_recordings import CONTENT_TYPES, LISTEN_DEDUP_S, recording_file
from pbxbridge.web.audit import record
from pbxbridge.web.auth_routes import json_body
from pbxbridge.web.context import ctx, write_session
from pbxbridge.web.errors import api_error
from pbxbridge.web.i18n import N_
from pbxbridge.web.middleware import read_form
from pbxbridge.web.originate import place_call
from pbxbridge.web.tables import HEAD, MANAGER
from pbxbridge.web.users import SignedInUser

log = logging.getLogger(__name__)
routes = web.RouteTableDef()

# Bitrix24 posts its events here (set as the handler of OnExternalCallStart); the application
# token in the body is the proof, so the path needs no session and no CSRF token.
BITRIX24_EVENTS = "/api/crm/bitrix24/events"
FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")


def _crm_user(user_id: str, extension: str | None) -> SignedInUser:
    """Who a click from the CRM is in the audit log: the CRM's user, acting as the manager of the extension."""
    return SignedInUser(0, f"{BITRIX24}:{user_id}"[:100], MANAGER, extension, password_tag="")


@routes.post(BITRIX24_EVENTS)
async def bitrix24_event(request: web.Request) -> web.Response:
    """OnExternalCallStart: ring the manager's handset (the Bitrix24 user's extension), then dial the number."""
    context = ctx(request)
    if request.content_type not in FORM_TYPES:
        raise api_error(400, "Bitrix24 posts its events as a form (application/x-www-form-urlencoded)")
    form = await read_form(request)
    fields = {k: v for k, v in form.items() if isinstance(v, str)}
    try:
        click = read_click(fields, context.config.crm.bitrix24.application_token)
    except ClickRefused as exc:
        log.warning("Bitrix24 event refused: %s", exc.reason)
        raise api_error(exc.status, exc.reason) from None
    if any("\x00" in value for value in fields.values()):
        raise api_error(400, "the event's fields must not contain NUL characters")
    async with context.sessions() as db:
        extension = await extension_of(db, BITRIX24, click.user_id)
    who = _crm_user(click.user_id, extension)
    target = f"{BITRIX24}:{click.crm_entity}" if click.crm_entity else None
    if extension is None:
        reason = (f"Bitrix24 user {click.user_id} has no extension: set the inner number in their profile and run "
                  "pbxbridge crm users sync (or pbxbridge crm users set)")
        async with write_session(context) as db:
            record(db, request, who, "click_to_call_refused", target, number=click.number, reason="no_crm_extension")
        raise api_error(409, reason)
    number = normalise_number(click.number, context.config.phone.default_region)
    if number is None:
        raise api_error(400, "data[PHONE_NUMBER]: not a phone number")

    def tell_bitrix24(db: AsyncSession, refused: ClickToCallError | None) -> None:
        if not click.crm_call_id:
            return
        at = datetime.fromtimestamp(context.clock(), UTC)
        if refused is None:
            # The call it becomes is finished on Bitrix24's own CALL_ID, not registered a second time.
            remember_click(db, CrmClick(target=BITRIX24, crm_call_id=click.crm_call_id[:128], extension=extension,
                                        number=number, clicked_at=at))
        elif context.config.crm.bitrix24.webhook_url:
            code = BUSY_CODE if isinstance(refused, ExtensionBusy) else DECLINED_CODE
            db.add(refused_click_finish(click.crm_call_id, extension, code, str(refused), at))

    result = await place_call(request, who, extension, click.number, target, also=tell_bitrix24,
                              crm_call_id=click.crm_call_id)
    return web.json_response({"status": "ringing", "extension": extension, "number": click.number, **result})


# Who fetched a recording through a signed link, in the audit log: the link, not a person.
LINK_USER = SignedInUser(0, "recording-link", HEAD, None, password_tag="")


@routes.get(PATH_PREFIX + "{recording_id:\\d{1,10}}")
async def shared_recording(request: web.Request) -> web.StreamResponse:
    """A recording by a signed link (amoCRM's ``link``): no session; a wrong or expired signature is 403."""
    context = ctx(request)
    recording_id = int(request.match_info["recording_id"])
    if not is_valid(context.config.web.secret_key, recording_id, request.query.get("expires", ""),
                    request.query.get("signature", ""), context.clock()):
        raise web.HTTPForbidden(text=N_("This link to the recording is out of date or damaged."))
    async with context.sessions() as db:
        rec = await db.get(Recording, recording_id)
    path = recording_file(kind_root(rec.kind, context.config.recordings), rec.path) if rec and rec.path else None
    if rec is None or path is None:
        raise web.HTTPNotFound(text=N_("The recording is no longer kept."))
    key = (LINK_USER.id, rec.id)
    now = context.clock()
    if now - context.listens.get(key, -LISTEN_DEDUP_S) >= LISTEN_DEDUP_S:
        context.listens[key] = now
        async with write_session(context) as db:
            record(db, request, LINK_USER, "listen", f"recording:{rec.id}", call_id=rec.call_id, source="link")
    kind = (rec.format or path.suffix.lstrip(".")).lower()
    response = web.FileResponse(path, headers={"Cache-Control": "private, max-age=3600"})
    response.content_type = CONTENT_TYPES.get(kind, "application/octet-stream")
    return response


# The CRMs a manager's extension can be mapped in; the ids are numbers in both.
CRM_TARGETS = ("bitrix24", "amocrm")
EXTENSION = re.compile(r"^[0-9]{1,32}$")
USER_ID = re.compile(r"^[0-9]{1,18}$")
MAX_NAME_CHARS = 200


def _user_item(row: CrmUser) -> dict[str, Any]:
    return {"target": row.target, "extension": row.extension, "user_id": row.user_id, "name": row.name,
            "source": row.source, "updated_at": row.updated_at.isoformat().replace("+00:00", "Z")}


def _target(request: web.Request) -> str:
    target = request.match_info["target"]
    if target not in CRM_TARGETS:
        raise api_error(404, N_("no such CRM"))
    return target


@routes.get("/api/crm/users")
async def list_crm_users(request: web.Request) -> web.Response:
    """Which CRM user each manager's extension is, the CRMs configured, and the managers to pick from."""
    require_user(request, HEAD)
    config = ctx(request).config.crm
    configured = [name for name, on in (("bitrix24", bool(config.bitrix24.webhook_url)),
                                        ("amocrm", bool(config.amocrm.base_url))) if on]
    async with ctx(request).sessions() as db:
        rows = await crm_users.listed(db)
        managers = (await db.execute(select(Manager.extension, Manager.name).order_by(Manager.extension))).all()
    return web.json_response({
        "targets": list(CRM_TARGETS), "configured": configured, "items": [_user_item(r) for r in rows],
        "managers": [{"extension": ext, "name": name} for ext, name in managers],
    })


@routes.put("/api/crm/users/{target}/{extension}")
async def set_crm_user(request: web.Request) -> web.Response:
    """Map an extension to a CRM user by hand (a sync from the CRM then leaves it alone)."""
    user = require_user(request, HEAD)
    target = _target(request)
    extension = request.match_info["extension"]
    body = await json_body(request)
    user_id = body.get("user_id")
    name = body.get("name")
    if isinstance(user_id, int) and not isinstance(user_id, bool):
        user_id = str(user_id)
    if not EXTENSION.fullmatch(extension):
        raise api_error(400, N_("extension: digits only, as dialled on the PBX"))
    if not isinstance(user_id, str) or not USER_ID.match(user_id.strip()):
        raise api_error(400, N_("user_id: the user's number in the CRM"))
    if name is not None and (not isinstance(name, str) or len(name) > MAX_NAME_CHARS):
        raise api_error(400, N_("name: text of at most 200 characters"))
    name = (name or "").strip() or None
    async with write_session(ctx(request)) as db:
        await crm_users.set_user(db, target, extension, user_id.strip(), name, crm_users.MANUAL, datetime.now(UTC))
        record(db, request, user, "crm_user_set", f"{target}:{extension}", user_id=user_id.strip(), name=name)
        await db.flush()
        row = (await db.execute(select(CrmUser).where(CrmUser.target == target, CrmUser.extension == extension)))
        item = _user_item(row.scalar_one())
    return web.json_response(item)


@routes.delete("/api/crm/users/{target}/{extension}")
async def remove_crm_user(request: web.Request) -> web.Response:
    """Forget an extension's CRM user (a sync from the CRM may bring one back)."""
    user = require_user(request, HEAD)
    target = _target(request)
    extension = request.match_info["extension"]
    # Only digits are ever stored; anything else (a NUL byte PostgreSQL cannot compare) has no user.
    if not EXTENSION.fullmatch(extension):
        raise api_error(404, N_("this extension has no user in that CRM"))
    async with write_session(ctx(request)) as db:
        removed = await crm_users.remove_user(db, target, extension)
        if removed:
            record(db, request, user, "crm_user_removed", f"{target}:{extension}")
    if not removed:
        raise api_error(404, N_("this extension has no user in that CRM"))
    return web.Response(status=204)
