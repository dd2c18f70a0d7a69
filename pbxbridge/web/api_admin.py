"""For the head of sales: the users who can sign in, and the audit log."""

from __future__ import annotations

from aiohttp import web

from pbxbridge.web import audit
from pbxbridge.web.access import require_user
from pbxbridge.web.context import ctx
from pbxbridge.web.errors import api_error
from pbxbridge.web.tables import HEAD
from pbxbridge.web.users import list_users

routes = web.RouteTableDef()


@routes.get("/api/users")
async def users(request: web.Request) -> web.Response:
    """Usernames, roles and extensions (never the hashes)."""
    require_user(request, HEAD)
    async with ctx(request).sessions() as db:
        rows = await list_users(db)
    return web.json_response({
        "items": [
            {"id": u.id, "username": u.username, "role": u.role, "extension": u.extension,
             "created_at": u.created_at.isoformat().replace("+00:00", "Z")}
            for u in rows
        ]
    })


@routes.get("/api/audit")
async def audit_log(request: web.Request) -> web.Response:
    """Who listened to, exported or changed what; newest first, paged."""
    require_user(request, HEAD)
    try:
        page = max(1, int(request.query.get("page", "1")))
        per_page = min(500, max(1, int(request.query.get("per_page", "100"))))
    except ValueError:
        raise api_error(400, "page and per_page must be integers") from None
    async with ctx(request).sessions() as db:
        items, total = await audit.entries(db, page, per_page, request.query.get("action") or None)
    return web.json_response({"items": items, "total": total, "page": page, "per_page": per_page})
