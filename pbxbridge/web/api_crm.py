"""The CRMs' side of the web app: clicks on a number in Bitrix24 become pbxbridge's click-to-call."""

from __future__ import annotations

import logging

from aiohttp import web

from pbxbridge.clients.numbers import normalise_number
from pbxbridge.crm.clicks import BITRIX24, ClickRefused, extension_of, read_click
from pbxbridge.routing.click_to_call import ClickToCallError
from pbxbridge.web.api_calls import ORIGINATE_ERRORS
from pbxbridge.web.audit import record
from pbxbridge.web.context import ctx, write_session
from pbxbridge.web.errors import api_error
from pbxbridge.web.middleware import read_form
from pbxbridge.web.tables import MANAGER
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
