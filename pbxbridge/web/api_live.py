"""The wallboard over HTTP: a snapshot, and a WebSocket that pushes each change.

The board itself (``web.live``) knows what the PBXes said: extensions and numbers. What a
person reads beside them comes from the database here: managers' names, the names on the
client cards, numbers as people write them, and the department's missed callers of the day
still to call back (the KPI store's definition, ``kpi.callbacks``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any
from urllib.parse import urlsplit

from aiohttp import WSMsgType, web
from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError

from pbxbridge.clients.numbers import normalise_number
from pbxbridge.clients.tables import Client, ClientPhone, Manager
from pbxbridge.kpi.calendar import local_day
from pbxbridge.kpi.callbacks import missed_not_called_back
from pbxbridge.kpi.definitions import KpiSettings
from pbxbridge.web.access import WALLBOARD_ROLES, clients_visible, require_user
from pbxbridge.web.context import WebContext, ctx
from pbxbridge.web.display import phone_display
from pbxbridge.web.errors import api_error
from pbxbridge.web.i18n import _
from pbxbridge.web.users import SignedInUser

log = logging.getLogger(__name__)
routes = web.RouteTableDef()
EMPTY: dict[str, Any] = {
    "pbx_time": None, "calls": [], "waiting": [], "managers": [], "queues": [],
    "totals": {"waiting": 0, "longest_wait_s": None},
}
# How long a browser's board keeps the names and the day's missed count before asking again:
# a push comes up to five times a second, the names and the count change far more slowly.
REFRESH_S = 10.0


class BoardNames:
    """Names, numbers and the day's missed callers for one browser's board, read now and then.

    A client's name is shown to whoever may open the client's card (``clients_visible``);
    everyone else sees the number, as before.
    """

    def __init__(self, context: WebContext, user: SignedInUser, clock: Any = time.monotonic) -> None:
        self.context = context
        self.user = user
        self._clock = clock
        self._read_at: float | None = None
        self._managers: dict[str, str] = {}
        self._clients: dict[str, str | None] = {}
        self._missed: dict[str, Any] | None = None

    async def dress(self, snapshot: dict[str, Any]) -> dict[str, Any]:
        """The snapshot with names and shown numbers (a new dict: the board's is shared by every browser)."""
        region = self.context.config.phone.default_region
        # The PBX writes a number as the carrier sent it (79161110001, 8916...); the cards keep E.164.
        e164 = {
            raw: normalise_number(raw, region)
            for c in (*snapshot["calls"], *snapshot["waiting"])
            if (raw := c.get("client_number"))
        }
        try:
            await self._read({n for n in e164.values() if n})
        except (SQLAlchemyError, OSError) as exc:
            # The line goes on without the database: the board shows what the PBX says.
            log.warning("wallboard names unavailable: %s", exc)
        managers = self._managers

        def call(item: dict[str, Any]) -> dict[str, Any]:
            raw = item.get("client_number")
            number = e164.get(raw) if raw else None
            return {
                **item,
                "client_display": phone_display(number or raw, region) if raw else None,
                "client_name": self._clients.get(number) if number else None,
                "manager_name": managers.get(item.get("manager") or ""),
            }

        return {
            **snapshot,
            "calls": [call(c) for c in snapshot["calls"]],
            "waiting": [call(c) for c in snapshot["waiting"]],
            "managers": [{**m, "name": managers.get(m["extension"])} for m in snapshot["managers"]],
            "names": managers,
            "totals": {**snapshot.get("totals", EMPTY["totals"]), "missed_not_called_back": self._missed},
        }

    async def _read(self, numbers: set[str]) -> None:
        now = self._clock()
        stale = self._read_at is None or now - self._read_at >= REFRESH_S
        unknown = numbers - set(self._clients) if not stale else numbers
        if not stale and not unknown:
            return
        async with self.context.sessions() as db:
            if stale:
                rows = await db.execute(select(Manager.extension, Manager.name))
                self._managers = {ext: name for ext, name in rows.all() if name}
                self._managers.update({e: n for e, n in self.context.config.managers.items() if e not in self._managers})
                settings = KpiSettings.from_config(self.context.config)
                today = local_day(self.context.clock(), settings.zone)
                missed = await missed_not_called_back(db, today)
                self._missed = {"day": missed.day.isoformat(), "callers": missed.callers, "calls": missed.calls}
                self._clients = {}
                self._read_at = now
            if unknown:
                rows = await db.execute(
                    select(ClientPhone.number, Client.name)
                    .join(Client, Client.id == ClientPhone.client_id)
                    .where(ClientPhone.number.in_(sorted(unknown)), clients_visible(self.user))
                )
                found = {number: name for number, name in rows.all()}
                self._clients.update({n: found.get(n) for n in unknown})


@routes.get("/api/live/snapshot")
async def snapshot(request: web.Request) -> web.Response:
    """Calls in progress, callers waiting and managers' lines right now, with names and the day's totals."""
    user = require_user(request, *WALLBOARD_ROLES)
    context = ctx(request)
    live = context.live
    return web.json_response(await BoardNames(context, user).dress(live.snapshot() if live is not None else EMPTY))


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
    user = require_user(request, *WALLBOARD_ROLES)
    if not _same_origin(request):
        raise api_error(403, _(request, "This page may only be watched from this site."))
    context = ctx(request)
    board = context.live
    names = BoardNames(context, user)
    ws = web.WebSocketResponse(heartbeat=30.0)
    await ws.prepare(request)
    await ws.send_json(await names.dress(board.snapshot() if board is not None else EMPTY))
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
            # Nothing moving on the line still refreshes the day's figures now and then.
            done, _pending = await asyncio.wait({getter, reader}, timeout=REFRESH_S, return_when=asyncio.FIRST_COMPLETED)
            if reader in done:
                getter.cancel()
                break
            if getter in done:
                latest = getter.result()
            else:
                getter.cancel()
                latest = board.snapshot()
            await ws.send_json(await names.dress(latest))
    except (ConnectionResetError, RuntimeError):
        pass
    finally:
        board.unsubscribe(queue)
        reader.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await reader
        await ws.close()
    return ws
