"""A manager clicks a number in Bitrix24: its ``OnExternalCallStart`` event, checked and read.

Bitrix24 posts its events as a form (PHP's nested names): ``event`` = ``ONEXTERNALCALLSTART``,
``data[USER_ID]``, ``data[PHONE_NUMBER]``, ``data[CALL_ID]`` (the call Bitrix24 registered for
the click), ``data[CRM_ENTITY_TYPE]`` / ``data[CRM_ENTITY_ID]``, ``data[LINE_NUMBER]``, and
``auth[application_token]``: the application's token, the only proof that Bitrix24 sent it
(dev.1c-bitrix.ru, "События" of the telephony scope; "Проверка безопасности в событиях").
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from pbxbridge.crm.tables import PENDING, CrmClick, CrmDelivery, CrmUser
from pbxbridge.crm.targets import Delivery

EXTERNAL_CALL_START = "ONEXTERNALCALLSTART"
BITRIX24 = "bitrix24"
# A click becomes the manager's call within this: the handset rings, the manager picks up, the number is dialled.
CLICK_BEFORE_CALL = timedelta(minutes=10)
# The PBX's clock and pbxbridge's may differ a little.
CLICK_AFTER_START = timedelta(minutes=2)
# TYPE of telephony.externalcall.register for an outbound call.
OUTBOUND_TYPE = 1


class ClickRefused(Exception):
    """An event that is not a click pbxbridge may place; ``status`` is the HTTP answer."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


@dataclass(frozen=True, slots=True)
class ClickEvent:
    """Who clicked which number, as Bitrix24 said it."""

    user_id: str
    number: str
    # Bitrix24's own call for the click (telephony.externalcall.register's CALL_ID).
    crm_call_id: str
    crm_entity: str


def read_click(form: Mapping[str, str], application_token: str) -> ClickEvent:
    """The click in an event's form; ``ClickRefused`` for a wrong token, another event or a field missing."""
    given = form.get("auth[application_token]", "")
    # Refused before anything else is read: a stranger learns nothing from the answer.
    if not application_token or not hmac.compare_digest(given.encode(), application_token.encode()):
        raise ClickRefused(403, "the application token is missing or wrong")
    event = form.get("event", "")
    if event.upper() != EXTERNAL_CALL_START:
        raise ClickRefused(400, f"not a click on a number: event {event[:64]!r}")
    user_id = form.get("data[USER_ID]", "").strip()
    number = (form.get("data[PHONE_NUMBER_INTERNATIONAL]") or form.get("data[PHONE_NUMBER]") or "").strip()
    if not user_id or not number:
        raise ClickRefused(400, "data[USER_ID] and data[PHONE_NUMBER] are required")
    entity = "/".join(v for v in (form.get("data[CRM_ENTITY_TYPE]", ""), form.get("data[CRM_ENTITY_ID]", "")) if v)
    return ClickEvent(user_id=user_id, number=number, crm_call_id=form.get("data[CALL_ID]", ""), crm_entity=entity)


async def extension_of(session: AsyncSession, target: str, user_id: str) -> str | None:
    """The extension mapped to a CRM user (``pbxbridge crm users``), or None."""
    rows = (await session.execute(
        select(CrmUser.extension).where(CrmUser.target == target, CrmUser.user_id == user_id).order_by(CrmUser.id)
    )).scalars().all()
    return rows[0] if rows else None


def remember_click(session: AsyncSession, click: CrmClick) -> None:
    """Keep a click whose call was placed, for the call's register to take its CRM call."""
    session.add(click)


async def click_for(session: AsyncSession, target: str, delivery: Delivery) -> str | None:
    """The CRM's own call for the click this call came from, taken for it; None for any other call.

    Bitrix24 registers a clicked call itself ("calls from OnExternalCallStart are registered
    already: only finish them"), so the call pbxbridge placed is put on that CALL_ID rather than
    registered twice. A click is this call's when the same manager called the same number within
    minutes after it; each click is taken by one call.
    """
    payload = delivery.payload
    if target != BITRIX24 or delivery.action != "register" or int(payload.get("TYPE") or 0) != OUTBOUND_TYPE:
        return None
    key = f"{delivery.pbx}:{delivery.linkedid}"
    taken = await session.scalar(select(CrmClick.crm_call_id).where(CrmClick.target == target, CrmClick.used_by == key))
    if taken is not None:
        return taken
    extension, number = payload.get("USER_PHONE_INNER"), payload.get("PHONE_NUMBER")
    try:
        started = datetime.fromisoformat(str(payload.get("CALL_START_DATE")))
    except ValueError:
        return None
    if not extension or not number or started.tzinfo is None:
        return None
    click = (await session.execute(
        select(CrmClick)
        .where(CrmClick.target == target, CrmClick.extension == str(extension), CrmClick.number == str(number),
               CrmClick.used_by.is_(None),
               CrmClick.clicked_at >= started - CLICK_BEFORE_CALL, CrmClick.clicked_at <= started + CLICK_AFTER_START)
        .order_by(CrmClick.clicked_at.desc())
        .limit(1)
    )).scalar_one_or_none()
    if click is None:
        return None
    click.used_by = key
    return click.crm_call_id


# STATUS_CODE of telephony.externalcall.finish for a click whose call was never placed.
BUSY_CODE, DECLINED_CODE = "486", "603"


def refused_click_finish(crm_call_id: str, extension: str | None, status_code: str, reason: str,
                         now: datetime) -> CrmDelivery:
    """The finish of a clicked call pbxbridge could not place: Bitrix24 registered it, so it is
    closed (busy or declined) rather than left open on the card. Queued like any delivery."""
    return CrmDelivery(
        target=BITRIX24, event="click.refused", action="finish", pbx=BITRIX24, linkedid=crm_call_id[:64],
        call_id=None, idempotency_key=f"click:{crm_call_id}:finish"[:255],
        payload={"CALL_ID": crm_call_id, "USER_PHONE_INNER": extension, "DURATION": 0, "STATUS_CODE": status_code,
                 "FAILED_REASON": reason[:200]},
        status=PENDING, attempts=0, next_attempt_at=now, created_at=now,
    )
