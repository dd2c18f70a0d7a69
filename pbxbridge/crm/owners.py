"""The client's responsible manager as the CRM has it: routing's "own manager" when the card has none.

Bitrix24: ``telephony.externalCall.searchCrmEntities`` by the caller's number, whose first entity is
the one to follow (its documentation says so); its ``ASSIGNED_BY`` carries the user's inner number.
amoCRM: ``GET /api/v4/contacts?query=<number>``, the first contact's ``responsible_user_id``.
A CRM user is a manager's extension through ``pbxbridge crm users`` (or the inner number itself).

A caller waits while the router decides, so the CRM never holds a call up: each answer is kept
for a while (``CACHE_S``; "nobody" for less, ``MISS_CACHE_S``), and a lookup slower than
``TIMEOUT_S`` is not waited for: the call is routed without it while the lookup goes on and fills
the cache for the caller's next call. A CRM that fails is asked again only after ``MISS_CACHE_S``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import aiohttp
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from pbxbridge.config import Config
from pbxbridge.crm.targets import DeliveryFailed, post
from pbxbridge.crm.users import users_of

log = logging.getLogger(__name__)

SEARCH_CRM_ENTITIES = "telephony.externalCall.searchCrmEntities"
CONTACTS_PATH = "/api/v4/contacts"
# How long the router waits for a CRM before routing without it (a caller hears ringing meanwhile).
TIMEOUT_S = 0.8
# A responsible manager changes rarely; a number unknown to the CRM may become a lead any minute.
CACHE_S = 600.0
MISS_CACHE_S = 60.0
MAX_CACHED = 20_000
HTTP_TIMEOUT_S = 5.0

# number -> (CRM name, CRM user id, the user's inner number if the CRM said it), or None.
Lookup = Callable[[aiohttp.ClientSession, str], Awaitable[tuple[str, str, str | None] | None]]


@dataclass(frozen=True, slots=True)
class _Cached:
    extension: str | None
    until: float


def bitrix24_lookup(webhook_url: str) -> Lookup:
    """Bitrix24's responsible user for a number: the first CRM entity's ``ASSIGNED_BY``."""

    async def lookup(http: aiohttp.ClientSession, number: str) -> tuple[str, str, str | None] | None:
        body = json.dumps({"PHONE_NUMBER": number}).encode()
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        status, answer, _ = await post(http, f"{webhook_url}{SEARCH_CRM_ENTITIES}.json", body, headers,
                                       SEARCH_CRM_ENTITIES)
        if status != 200 or not isinstance(answer, dict):
            raise DeliveryFailed(f"{SEARCH_CRM_ENTITIES}: HTTP {status}")
        for entity in answer.get("result") or []:
            assigned = entity.get("ASSIGNED_BY") or {}
            user_id = str(entity.get("ASSIGNED_BY_ID") or assigned.get("ID") or "")
            if user_id:
                inner = str(assigned.get("USER_PHONE_INNER") or "").strip() or None
                return "bitrix24", user_id, inner
        return None

    return lookup


def amocrm_lookup(base_url: str, token: str) -> Lookup:
    """amoCRM's responsible user for a number: the first contact found by it."""

    async def lookup(http: aiohttp.ClientSession, number: str) -> tuple[str, str, str | None] | None:
        url = f"{base_url.rstrip('/')}{CONTACTS_PATH}?{urlencode({'query': number.lstrip('+')})}"
        headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
        try:
            async with http.get(url, headers=headers, timeout=aiohttp.ClientTimeout(total=HTTP_TIMEOUT_S)) as answer:
                if answer.status == 204:
                    return None  # amoCRM's "nothing found"
                if answer.status != 200:
                    raise DeliveryFailed(f"{CONTACTS_PATH}: HTTP {answer.status}")
                body: Any = await answer.json(content_type=None)
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            raise DeliveryFailed(f"{CONTACTS_PATH}: {type(exc).__name__}") from None
        for contact in (body or {}).get("_embedded", {}).get("contacts") or []:
            if contact.get("responsible_user_id"):
                return "amocrm", str(contact["responsible_user_id"]), None
        return None

    return lookup


class CrmOwners:
    """``await owners.owner_of(number)``: the manager the CRM holds responsible for a number, as an extension."""

    def __init__(
        self,
        lookups: list[Lookup],
        sessions: async_sessionmaker[AsyncSession] | None = None,
        timeout_s: float = TIMEOUT_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.lookups = lookups
        self.sessions = sessions
        self.timeout_s = timeout_s
        self.clock = clock
        self._cache: OrderedDict[str, _Cached] = OrderedDict()
        self._running: dict[str, asyncio.Task[str | None]] = {}
        self._http: aiohttp.ClientSession | None = None

    async def owner_of(self, number: str) -> str | None:
        """The extension of the manager responsible for the number, from the cache or the CRM within the timeout."""
        cached = self._cache.get(number)
        if cached is not None and cached.until > self.clock():
            return cached.extension
        task = self._running.get(number)
        if task is None:
            task = asyncio.create_task(self._find(number), name=f"pbxbridge-crm-owner-{number}")
            self._running[number] = task
            task.add_done_callback(lambda _t: self._running.pop(number, None))
        try:
            # Shielded: a lookup past the timeout goes on and fills the cache for the next call.
            return await asyncio.wait_for(asyncio.shield(task), self.timeout_s)
        except TimeoutError:
            log.info("CRM: the responsible manager of %s not known within %.1f s; routed without it",
                     number, self.timeout_s)
            return None

    async def _find(self, number: str) -> str | None:
        if self._http is None:
            self._http = aiohttp.ClientSession()
        extension: str | None = None
        ttl = MISS_CACHE_S
        try:
            for lookup in self.lookups:
                found = await lookup(self._http, number)
                if found is None:
                    continue
                target, user_id, inner = found
                extension = await self._extension(target, user_id) or inner
                if extension:
                    ttl = CACHE_S
                    break
        except DeliveryFailed as exc:
            log.warning("CRM: the responsible manager of %s could not be read: %s", number, exc)
        except Exception:
            log.exception("CRM: the responsible manager of %s could not be read", number)
        self._cache[number] = _Cached(extension, self.clock() + ttl)
        self._cache.move_to_end(number)
        while len(self._cache) > MAX_CACHED:
            self._cache.popitem(last=False)
        return extension

    async def _extension(self, target: str, user_id: str) -> str | None:
        if self.sessions is None:
            return None
        async with self.sessions() as session:
            mapping = await users_of(session, target)
        return next((ext for ext, uid in sorted(mapping.items()) if uid == user_id), None)

    async def close(self) -> None:
        for task in list(self._running.values()):
            task.cancel()
        if self._http is not None:
            await self._http.close()
            self._http = None


def owners_from_config(config: Config, sessions: async_sessionmaker[AsyncSession] | None) -> CrmOwners | None:
    """The configured CRMs asked in turn (Bitrix24, then amoCRM); None when neither is set."""
    lookups: list[Lookup] = []
    if config.crm.bitrix24.webhook_url:
        lookups.append(bitrix24_lookup(config.crm.bitrix24.webhook_url))
    if config.crm.amocrm.base_url and config.crm.amocrm.token:
        lookups.append(amocrm_lookup(config.crm.amocrm.base_url, config.crm.amocrm.token))
    return CrmOwners(lookups, sessions) if lookups else None
