"""Overflow routing rules for operations: read, and replace after validation."""

from __future__ import annotations

from aiohttp import web
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from pbxbridge.clients.tables import Manager
from pbxbridge.routing.rules import (
    RoutingRules,
    RulesError,
    check_members,
    get_rules,
    load_rules,
    rules_from_config,
    rules_from_json,
    store_rules,
)
from pbxbridge.web.access import RULES_ROLES, require_user
from pbxbridge.web.audit import record
from pbxbridge.web.auth_routes import json_body
from pbxbridge.web.context import WebContext, ctx, write_session
from pbxbridge.web.errors import api_error
from pbxbridge.web.i18n import _
from pbxbridge.web.tables import User

routes = web.RouteTableDef()


def _defaults(request: web.Request) -> RoutingRules:
    """The rules in force until someone saves their own: the [routing] settings."""
    config = ctx(request).config
    return rules_from_config(config.routing, config.kpi.timezone)


async def known_extensions(db: AsyncSession, context: WebContext) -> set[str]:
    """Extensions a group may name: managers (from calls and the [managers] settings), users'
    handsets, and the lines the PBXes listed since they logged in."""
    known = set(await db.scalars(select(Manager.extension)))
    known |= {ext for ext in await db.scalars(select(User.extension)) if ext}
    known |= set(context.config.managers)
    for states in getattr(context.live, "lines", {}).values():
        known |= set(states.lines())
    return known


@routes.get("/api/routing/rules")
async def read_rules(request: web.Request) -> web.Response:
    """The rules the overflow decision uses now."""
    require_user(request, *RULES_ROLES)
    rules = await get_rules(ctx(request).sessions, _defaults(request))
    return web.json_response(rules.to_json())


@routes.put("/api/routing/rules")
async def replace_rules(request: web.Request) -> web.Response:
    """Change the rules (keys left out keep their value); 422 lists every bad field, translated."""
    user = require_user(request, *RULES_ROLES)
    body = await json_body(request)
    context = ctx(request)
    try:
        # The rules service's own steps, in one transaction with the audit entry.
        async with write_session(context) as db:
            rules = rules_from_json(body, await load_rules(db, _defaults(request)))
            if "groups" in body:
                check_members(rules, await known_extensions(db, context))
            await store_rules(db, rules)
            record(db, request, user, "change_routing_rules", "routing", changed=sorted(body))
    except RulesError as exc:
        raise api_error(
            422,
            _(request, "The rules were not saved"),
            problems=[_(request, p.message, **p.params) for p in exc.details],
            fields=[p.where for p in exc.details],
        ) from None
    return web.json_response(rules.to_json())
