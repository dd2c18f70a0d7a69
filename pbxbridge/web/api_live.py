"""The wallboard over HTTP: a snapshot, and a WebSocket that pushes each change."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any
from urllib.parse import urlsplit

from aiohttp import WSMsgType, web

from pbxbridge.web.access import WALLBOARD_ROLES, require_user
from pbxbridge.web.context import ctx
from pbxbridge.web.errors import api_error

routes = web.RouteTableDef()
EMPTY: dict[str, Any] = {"pbx_time": None, "calls": [], "waiting": [], "managers": [], "queues": []}


@routes.get("/api/live/snapshot")
async def snapshot(request: web.Request) -> web.Response:
    """Calls in progress, callers waiting and managers' lines right now."""
    require_user(request, *WALLBOARD_ROLES)
    live = ctx(request).live
    return web.json_response(live.snapshot() if live is not None else EMPTY)


def _same_origin(request: web.Request) -> bool:
    # Browsers send cookies with cross-site WebSocket handshakes; CSRF checks do not
    # cover GET, so the Origin must be this site.
    origin = request.headers.get("Origin")
    if origin is None:
        return True  # not a browser
    return urlsplit(origin).netloc == request.host


@routes.get("/api/live")
async def live_socket(request: web.Request) -> web.StreamResponse:
    """WebSocket: the snapshot at once, then a new one after every change."""
    require_user(request, *WALLBOARD_ROLES)
    if not _same_origin(request):
        raise api_error(403, "cross-site WebSocket refused")
    board = ctx(request).live
    ws = web.WebSocketResponse(heartbeat=30.0)
    await ws.prepare(request)
    await ws.send_json(board.snapshot() if board is not None else EMPTY)
    if board is None:
        await ws.close()
        return ws
    queue = board.subscribe()

    async def read() -> None:
        async for message in ws:
            if message.type == WSMsgType.ERROR:
                return

    reader = asyncio.create_task(read())
    try:
        while not ws.closed:
            getter = asyncio.ensure_future(queue.get())
            done, _ = await asyncio.wait({getter, reader}, return_when=asyncio.FIRST_COMPLETED)
            if getter not in done:
                getter.cancel()
                break
            await ws.send_json(getter.result())
    except (ConnectionResetError, RuntimeError):
        pass
    finally:
        board.unsubscribe(queue)
        reader.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await reader
        await ws.close()
    return ws
