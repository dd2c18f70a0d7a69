"""Who may see what: the head sees everything, a manager their own calls and clients."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from sqlalchemy import ColumnElement, exists, false, or_, select, true
from sqlalchemy.ext.asyncio import AsyncSession

from pbxbridge.calls.tables import Call
from pbxbridge.clients.tables import Client, Manager
from pbxbridge.web.context import USER
from pbxbridge.web.errors import api_error
from pbxbridge.web.i18n import N_
from pbxbridge.web.tables import HEAD, MANAGER, OPS
from pbxbridge.web.users import SignedInUser


def current_user(request: web.Request) -> SignedInUser | None:
    """The signed-in user of a request (set by the session middleware), or None."""
    return request.get(USER)


def require_user(request: web.Request, *roles: str) -> SignedInUser:
    """The signed-in user, if their role is one of ``roles`` (any role when none given)."""
    user = current_user(request)
    if user is None:
        raise api_error(401, N_("sign in first"))
    if roles and user.role not in roles:
        raise api_error(403, N_("your role may not do this"))
    return user


def _responsible_for(extension: str) -> Any:
    manager_id = select(Manager.id).where(Manager.extension == extension).scalar_subquery()
    return select(Client.id).where(Client.responsible_manager_id == manager_id)


def calls_visible(user: SignedInUser) -> ColumnElement[bool]:
    """SQL condition on Call: the calls this user may open."""
    if user.role == HEAD:
        return true()
    if user.role == MANAGER and user.extension:
        ext = user.extension
        return or_(
            Call.manager == ext,
            Call.final_manager == ext,
            Call.client_id.in_(_responsible_for(ext)),
        )
    return false()


def clients_visible(user: SignedInUser) -> ColumnElement[bool]:
    """SQL condition on Client: the cards this user may open."""
    if user.role == HEAD:
        return true()
    if user.role == MANAGER and user.extension:
        ext = user.extension
        talked = exists().where(
            Call.client_id == Client.id, or_(Call.manager == ext, Call.final_manager == ext)
        )
        return or_(Client.id.in_(_responsible_for(ext)), talked)
    return false()


# Ids are 32-bit integers on PostgreSQL; a larger number in an address names nothing (and must
# not reach the database, which would fail on it).
MAX_ID = 2**31 - 1


async def load_call(session: AsyncSession, user: SignedInUser, call_id: int) -> Call:
    """The call, or 404 when there is none and 403 when it is not this user's."""
    call = await session.get(Call, call_id) if 0 < call_id <= MAX_ID else None
    if call is None:
        raise api_error(404, N_("no such call"))
    allowed = await session.scalar(select(Call.id).where(Call.id == call_id, calls_visible(user)))
    if allowed is None:
        raise api_error(403, N_("this call is not yours"))
    return call


async def load_client(session: AsyncSession, user: SignedInUser, client_id: int) -> Client:
    """The client's card, or 404 / 403."""
    client = await session.get(Client, client_id) if 0 < client_id <= MAX_ID else None
    if client is None:
        raise api_error(404, N_("no such client"))
    allowed = await session.scalar(select(Client.id).where(Client.id == client_id, clients_visible(user)))
    if allowed is None:
        raise api_error(403, N_("this client is not yours"))
    return client


CALL_ROLES = (HEAD, MANAGER)
RULES_ROLES = (HEAD, OPS)
WALLBOARD_ROLES = (HEAD, OPS, MANAGER)
