"""JSON error answers for the API."""

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
