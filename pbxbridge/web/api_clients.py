"""Client cards over HTTP: search, one card with its calls, editing name and manager, the notes'
history, and merging two cards of the same person."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from aiohttp import web
from sqlalchemy import func, or_, select

from pbxbridge.calls.tables import Call
from pbxbridge.clients.merge import MergeError, merge_clients
from pbxbridge.clients.tables import Client, ClientNote, ClientPhone, Manager, fold_name
from pbxbridge.web.access import (
    CALL_ROLES,
    calls_visible,
    clients_visible,
    load_client,
    require_user,
)
from pbxbridge.web.api_calls import _names, _transcribed, call_item
from pbxbridge.web.audit import record
from pbxbridge.web.auth_routes import json_body
from pbxbridge.web.context import ctx, write_session
from pbxbridge.web.display import phone_display
from pbxbridge.web.errors import api_error
from pbxbridge.web.i18n import _
from pbxbridge.web.tables import HEAD
from pbxbridge.web.users import SignedInUser

routes = web.RouteTableDef()

MAX_NOTES = 20_000
MAX_NAME = 200


def _iso(value: datetime) -> str:
    return value.isoformat().replace("+00:00", "Z")


def _note_json(note: ClientNote) -> dict[str, Any]:
    return {"id": note.id, "text": note.text, "author": note.author, "created_at": _iso(note.created_at)}


async def _notes(db: Any, client_id: int) -> list[ClientNote]:
    """A card's notes, newest first."""
    rows = await db.execute(
        select(ClientNote).where(ClientNote.client_id == client_id)
        .order_by(ClientNote.created_at.desc(), ClientNote.id.desc())
    )
    return list(rows.scalars())


async def _latest_notes(db: Any, client_ids: list[int]) -> dict[int, str]:
    """The newest note's text of each card (the list shows it as the card's notes)."""
    if not client_ids:
        return {}
    newest = (
        select(func.max(ClientNote.id)).where(ClientNote.client_id.in_(client_ids)).group_by(ClientNote.client_id)
    )
    rows = await db.execute(select(ClientNote.client_id, ClientNote.text).where(ClientNote.id.in_(newest)))
    return dict(rows.all())


def _card(
    client: Client, managers_by_id: dict[int, tuple[str, str | None]], region: str, notes: str = ""
) -> dict[str, Any]:
    responsible = managers_by_id.get(client.responsible_manager_id) if client.responsible_manager_id else None
    numbers = sorted(p.number for p in client.phones)
    return {
        "id": client.id,
        "name": client.name,
        "is_lead": client.is_lead,
        "created_at": client.created_at.isoformat().replace("+00:00", "Z"),
        "numbers": numbers,
        # Each number as people write it (+7 (495) 123-45-67); "numbers" stays what is dialled.
        "phones": [{"number": n, "display": phone_display(n, region)} for n in numbers],
        "responsible_manager": responsible[0] if responsible else None,
        "responsible_manager_name": responsible[1] if responsible else None,
        # The newest note; the whole history is the card's "note_history".
        "notes": notes,
    }


async def _managers_by_id(db: Any) -> dict[int, tuple[str, str | None]]:
    rows = await db.execute(select(Manager.id, Manager.extension, Manager.name))
    return {mid: (ext, name) for mid, ext, name in rows.all()}


@routes.get("/api/clients")
async def list_clients(request: web.Request) -> web.Response:
    """Cards by name or number (``q``), most recent first, paged."""
    user = require_user(request, *CALL_ROLES)
    q = request.query.get("q", "").strip()
    if "\x00" in q:
        # No name or number holds one, and PostgreSQL cannot even compare text with it.
        raise api_error(400, _(request, "{key}: remove the control characters from the text", key="q"))
    try:
        page = max(1, int(request.query.get("page", "1")))
        per_page = min(200, max(1, int(request.query.get("per_page", "50"))))
    except ValueError:
        raise api_error(400, _(request, "page and per_page must be integers")) from None
    conds = [clients_visible(user)]
    region = ctx(request).config.phone.default_region
    if q:
        digits = re.sub(r"\D", "", q)
        # The folded copy: SQLite's own case folding knows only ASCII letters.
        match = [Client.name_folded.contains(fold_name(q), autoescape=True)]
        if len(digits) >= 3:
            match.append(Client.id.in_(select(ClientPhone.client_id).where(ClientPhone.number.contains(digits))))
        conds.append(or_(*match))
    async with ctx(request).sessions() as db:
        total = int(await db.scalar(select(func.count()).select_from(Client).where(*conds)) or 0)
        last_call = (
            select(func.max(Call.started_at)).where(Call.client_id == Client.id).correlate(Client).scalar_subquery()
        )
        rows = await db.execute(
            select(Client, last_call.label("last_call_at"))
            .where(*conds)
            .order_by(last_call.desc().nulls_last(), Client.id.desc())
            .offset((page - 1) * per_page)
            .limit(per_page)
        )
        managers = await _managers_by_id(db)
        found = rows.all()
        latest = await _latest_notes(db, [client.id for client, _last in found])
        items = []
        for client, last_at in found:
            card = _card(client, managers, region, latest.get(client.id, ""))
            card["last_call_at"] = last_at.isoformat().replace("+00:00", "Z") if last_at else None
            items.append(card)
    return web.json_response({"items": items, "total": total, "page": page, "per_page": per_page})


@routes.get("/api/clients/{client_id:\\d+}")
async def get_client(request: web.Request) -> web.Response:
    """A card and every call on it the user may see, newest first."""
    user = require_user(request, *CALL_ROLES)
    client_id = int(request.match_info["client_id"])
    async with ctx(request).sessions() as db:
        client = await load_client(db, user, client_id)
        card = await _card_with_calls(db, user, client, ctx(request).config.phone.default_region)
    return web.json_response(card)


async def _card_with_calls(db: Any, user: SignedInUser, client: Client, region: str) -> dict[str, Any]:
    """The card as its page shows it: notes' history and every call on it the user may see."""
    card = await _full_card(db, client, region)
    calls = list(
        (
            await db.execute(
                select(Call)
                .where(Call.client_id == client.id, calls_visible(user))
                .order_by(Call.started_at.desc(), Call.id.desc())
            )
        ).scalars()
    )
    clients, managers = await _names(db, calls)
    transcribed = await _transcribed(db, [c.id for c in calls])
    card["calls"] = [call_item(c, clients, managers, transcribed, region) for c in calls]
    return card


@routes.patch("/api/clients/{client_id:\\d+}")
async def update_client(request: web.Request) -> web.Response:
    """Change a card's name or lead flag, or add a note; the head may also reassign its manager.

    ``notes`` adds a note to the history when it differs from the newest one (the card's form
    sends what it shows): nothing written before is overwritten.
    """
    user = require_user(request, *CALL_ROLES)
    client_id = int(request.match_info["client_id"])
    body = await json_body(request)
    unknown = set(body) - {"name", "notes", "is_lead", "responsible_manager"}
    if unknown:
        raise api_error(400, _(request, "unknown field(s): {fields}", fields=", ".join(sorted(unknown))))
    async with write_session(ctx(request)) as db:
        client = await load_client(db, user, client_id)
        changed: dict[str, Any] = {}
        if "name" in body:
            name = body["name"]
            if name is not None and (not isinstance(name, str) or len(name) > MAX_NAME):
                raise api_error(400, _(request, "name: text up to {count} characters", count=MAX_NAME))
            client.name = (name or "").strip() or None
            changed["name"] = client.name
        if "notes" in body:
            notes = body["notes"]
            if not isinstance(notes, str) or len(notes) > MAX_NOTES:
                raise api_error(400, _(request, "notes: text up to {count} characters", count=MAX_NOTES))
            await _add_note_if_new(db, client_id, notes, user.username)
            changed["notes"] = len(notes)
        if "is_lead" in body:
            if not isinstance(body["is_lead"], bool):
                raise api_error(400, _(request, "is_lead: true or false"))
            client.is_lead = body["is_lead"]
            changed["is_lead"] = client.is_lead
        if "responsible_manager" in body:
            if user.role != HEAD:
                raise api_error(403, _(request, "only the head of sales reassigns clients"))
            ext = body["responsible_manager"]
            if ext is None:
                client.responsible_manager_id = None
            else:
                manager_id = await db.scalar(select(Manager.id).where(Manager.extension == str(ext)))
                if manager_id is None:
                    raise api_error(
                        400, _(request, "responsible_manager: no manager with extension {extension}", extension=ext)
                    )
                client.responsible_manager_id = manager_id
            changed["responsible_manager"] = ext
        record(db, request, user, "update_client", f"client:{client_id}", **changed)
        await db.flush()
        card = await _full_card(db, client, ctx(request).config.phone.default_region)
    return web.json_response(card)


async def _full_card(db: Any, client: Client, region: str) -> dict[str, Any]:
    notes = await _notes(db, client.id)
    card = _card(client, await _managers_by_id(db), region, notes[0].text if notes else "")
    card["note_history"] = [_note_json(n) for n in notes]
    return card


async def _add_note_if_new(db: Any, client_id: int, text: str, author: str) -> ClientNote | None:
    text = text.strip()
    newest = await db.scalar(
        select(ClientNote.text).where(ClientNote.client_id == client_id)
        .order_by(ClientNote.created_at.desc(), ClientNote.id.desc()).limit(1)
    )
    if not text or text == newest:
        return None
    note = ClientNote(client_id=client_id, text=text, author=author, created_at=datetime.now(UTC))
    db.add(note)
    await db.flush()
    return note


@routes.post("/api/clients/{client_id:\\d+}/notes")
async def add_note(request: web.Request) -> web.Response:
    """Add a note to a card's history, signed with the user's name and the time."""
    user = require_user(request, *CALL_ROLES)
    client_id = int(request.match_info["client_id"])
    body = await json_body(request)
    unknown = set(body) - {"text"}
    if unknown:
        raise api_error(400, _(request, "unknown field(s): {fields}", fields=", ".join(sorted(unknown))))
    text = body.get("text")
    if not isinstance(text, str) or not text.strip() or len(text) > MAX_NOTES:
        raise api_error(400, _(request, "text: a note of 1 to {count} characters", count=MAX_NOTES))
    async with write_session(ctx(request)) as db:
        await load_client(db, user, client_id)
        note = ClientNote(client_id=client_id, text=text.strip(), author=user.username, created_at=datetime.now(UTC))
        db.add(note)
        await db.flush()
        record(db, request, user, "add_client_note", f"client:{client_id}", length=len(note.text))
        answer = _note_json(note)
    return web.json_response(answer, status=201)


@routes.post("/api/clients/{client_id:\\d+}/merge")
async def merge(request: web.Request) -> web.Response:
    """The head merges another card of the same person into this one: its numbers, calls and
    notes move here and it is gone. Answers the card as it now stands."""
    user = require_user(request, HEAD)
    client_id = int(request.match_info["client_id"])
    body = await json_body(request)
    other_id = body.get("client_id")
    if set(body) != {"client_id"} or isinstance(other_id, bool) or not isinstance(other_id, int):
        raise api_error(400, _(request, "client_id: the card to merge into this one"))
    if other_id == client_id:
        raise api_error(400, _(request, "A card cannot be merged with itself"))
    async with write_session(ctx(request)) as db:
        kept = await load_client(db, user, client_id)
        merged = await load_client(db, user, other_id)
        try:
            result = await merge_clients(db, kept, merged)
        except MergeError:  # pragma: no cover - the same card is refused above
            raise api_error(400, _(request, "A card cannot be merged with itself")) from None
        record(
            db, request, user, "merge_clients", f"client:{client_id}", merged=result.merged_id,
            merged_name=result.merged_name, numbers=result.numbers, calls=result.calls, notes=result.notes,
        )
        card = await _card_with_calls(db, user, kept, ctx(request).config.phone.default_region)
    return web.json_response(card)


@routes.get("/api/managers")
async def list_managers(request: web.Request) -> web.Response:
    """Managers known from calls and settings: extension and name."""
    require_user(request)
    async with ctx(request).sessions() as db:
        rows = await db.execute(select(Manager.extension, Manager.name).order_by(Manager.extension))
        items = [{"extension": ext, "name": name} for ext, name in rows.all()]
    return web.json_response({"items": items})
