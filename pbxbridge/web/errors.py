"""JSON error answers for the API.

The message is English, a msgid: the request pipeline (middleware.errors) puts it in the
person's language on the way out, so mark a literal one with ``N_``; one with details of
its own is translated by the handler with ``_`` and raised with ``api_error_said``.
"""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

_STATUS_CLASSES: dict[int, type[web.HTTPException]] = {
    400: web.HTTPBadRequest,
    401: web.HTTPUnauthorized,
    403: web.HTTPForbidden,
    404: web.HTTPNotFound,
    409: web.HTTPConflict,
    413: web.HTTPRequestEntityTooLarge,
    416: web.HTTPRequestRangeNotSatisfiable,
    422: web.HTTPUnprocessableEntity,
    429: web.HTTPTooManyRequests,
    500: web.HTTPInternalServerError,
    501: web.HTTPNotImplemented,
    502: web.HTTPBadGateway,
    503: web.HTTPServiceUnavailable,
}


def api_error(status: int, message: str, **extra: Any) -> web.HTTPException:
    """An HTTP error carrying {"error": message, ...} as JSON, to raise."""
    cls = _STATUS_CLASSES.get(status, web.HTTPBadRequest)
    body = json.dumps({"error": message, **extra}, ensure_ascii=False)
    return cls(text=body, content_type="application/json")


_SAID = "_pbxbridge_translated"


def api_error_said(status: int, text: str, **extra: Any) -> web.HTTPException:
    """Like ``api_error``, for a message already in the person's language (``_``/``n_`` with details)."""
    exc = api_error(status, text, **extra)
    setattr(exc, _SAID, True)
    return exc


def already_said(exc: web.HTTPException) -> bool:
    """Whether the exception's message is translated already (not to be looked up again)."""
    return bool(getattr(exc, _SAID, False))
