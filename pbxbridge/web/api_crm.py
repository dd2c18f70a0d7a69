"""The CRMs' side of the web app: clicks on a number in Bitrix24 become pbxbridge's click-to-call, and
a CRM plays a call's recording from a signed, expiring link without signing in."""

from __future__ import annotations

import logging

from aiohttp import web

from pbxbridge.calls.tables import Recording
from pbxbridge.clients.numbers import normalise_number
from pbxbridge.crm.clicks import BITRIX24, ClickRefused, extension_of, read_click
from pbxbridge.crm.recording_links import PATH_PREFIX, is_valid
from pbxbridge.recordings.kinds import kind_root
from pbxbridge.routing.click_to_call import ClickToCallError
from pbxbridge.web.api_calls import ORIGINATE_ERRORS
from pbxbridge.web.api_recordings import CONTENT_TYPES, LISTEN_DEDUP_S, recording_file
from pbxbridge.web.audit import record
from pbxbridge.web.context import ctx, write_session
from pbxbridge.web.errors import api_error
from pbxbridge.web.i18n import N_
from pbxbridge.web.middleware import read_form
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
    async with context.sessions() as db:
        extension = await extension_of(db, BITRIX24, click.user_id)
    who = _crm_user(click.user_id, extension)
    target = f"{BITRIX24}:{click.crm_entity}" if click.crm_entity else None
    if extension is None:
        reason = (f"Bitrix24 user {click.user_id} has no extension: set the inner number in their profile and run "
                  "pbxbridge crm users sync (or pbxbridge crm users set)")
        async with write_session(context) as db:
            record(db, request, who, "click_to_call_refused", target, number=click.number, reason=reason)
        raise api_error(409, reason)
    if normalise_number(click.number, context.config.phone.default_region) is None:
        raise api_error(400, "data[PHONE_NUMBER]: not a phone number")
    if context.originate is None:
        raise api_error(503, "click-to-call needs the daemon's AMI connection")
    try:
        result = await context.originate(extension, click.number)
    except ClickToCallError as exc:
        async with write_session(context) as db:
            record(db, request, who, "click_to_call_refused", target, extension=extension, number=click.number,
                   reason=str(exc), crm_call_id=click.crm_call_id)
        raise api_error(ORIGINATE_ERRORS.get(type(exc), 502), str(exc)) from None
    async with write_session(context) as db:
        record(db, request, who, "click_to_call", target, extension=extension, number=click.number,
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
