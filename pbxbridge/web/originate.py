"""Click-to-call from the web: whichever page or CRM starts it, the PBX is asked the same way, the audit log
keeps the click (or why it was refused) and a refusal becomes the same HTTP status."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncSession

from pbxbridge.routing.click_to_call import (
    AmiUnavailable,
    ClickToCallError,
    ExtensionBusy,
    ExtensionUnavailable,
    InvalidNumber,
    OriginateRejected,
    UnknownExtension,
)
from pbxbridge.web.audit import record
from pbxbridge.web.context import ctx, write_session
from pbxbridge.web.errors import api_error
from pbxbridge.web.users import SignedInUser

ORIGINATE_ERRORS: dict[type[ClickToCallError], int] = {
    InvalidNumber: 400,
    UnknownExtension: 400,
    ExtensionBusy: 409,
    ExtensionUnavailable: 409,
    AmiUnavailable: 503,
    OriginateRejected: 502,
}

# Written in the audit entry's transaction: None once the call is placed, else why it was refused.
AlsoWrite = Callable[[AsyncSession, ClickToCallError | None], None]


async def place_call(
    request: web.Request,
    who: SignedInUser,
    extension: str,
    number: str,
    target: str | None,
    *,
    also: AlsoWrite | None = None,
    **details: Any,
) -> dict[str, Any]:
    """Ring ``extension``, then dial ``number``: what the PBX answered, or the refusal raised as an API error.

    ``details`` go into the audit entry after the extension, the number and (refused) the reason's code.
    """
    context = ctx(request)
    if context.originate is None:
        raise api_error(503, "click-to-call needs the daemon's AMI connection")
    try:
        result = await context.originate(extension, number)
    except ClickToCallError as exc:
        async with write_session(context) as db:
            record(db, request, who, "click_to_call_refused", target, extension=extension, number=number,
                   reason=exc.code, **details)
            if also is not None:
                also(db, exc)
        raise api_error(ORIGINATE_ERRORS.get(type(exc), 502), str(exc)) from None
    async with write_session(context) as db:
        record(db, request, who, "click_to_call", target, extension=extension, number=number, **details)
        if also is not None:
            also(db, None)
    return result
