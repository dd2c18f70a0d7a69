"""The ``route`` AGI script: looks the caller up, reads the rules, decides, tells the dialplan.

Dialplan contract (see dialplans/extensions_custom.conf):

* arguments: ``attempt`` (1, 2, …), ``rang_s`` (how long the last dialled
  handset rang), ``dialstatus`` (the last ``DIALSTATUS``), ``tried``
  (extensions already dialled, joined by ``-``);
* variables set: ``PBXB_ACTION`` (``dial`` or ``goto``), ``PBXB_DEST`` (a dial
  string or a ``context,exten,priority`` target), ``PBXB_EXT``,
  ``PBXB_TIMEOUT``, ``PBXB_TRIED`` (to pass back next time), ``PBXB_REASON``.
"""

from __future__ import annotations

import logging
import time
import zoneinfo
from collections.abc import Awaitable, Callable, Iterable
from datetime import datetime
from datetime import time as dtime

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from pbxbridge.calls.tables import Call
from pbxbridge.clients.numbers import normalise_number
from pbxbridge.clients.store import find_client_by_number
from pbxbridge.clients.tables import Manager
from pbxbridge.routing.agi import AgiChannel, AgiRequest
from pbxbridge.routing.decide import (
    Action,
    CallFacts,
    Decision,
    Reason,
    Workload,
    decide,
)
from pbxbridge.routing.line_states import LineStates
from pbxbridge.routing.rules import (
    RoutingRules,
    load_rules,
    remember_round_robin,
    round_robin_positions,
)

log = logging.getLogger(__name__)


class OverflowRouter:
    """Answers the dialplan's ``AGI(agi://…/route,…)`` for each inbound call."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        lines: LineStates,
        defaults: RoutingRules | None = None,
        region: str = "RU",
        clock: Callable[[], float] = time.time,
        crm_owner: Callable[[str], Awaitable[str | None]] | None = None,
    ) -> None:
        self.sessions = sessions
        # The CRM's responsible manager for a caller whose card names none (cached, time-limited).
        self.crm_owner = crm_owner
        self.lines = lines
        self.defaults = defaults or RoutingRules()
        self.region = region
        self.clock = clock

    async def handle(self, request: AgiRequest, channel: AgiChannel) -> None:
        """The AGI handler: decide and set the dialplan's variables."""
        facts = call_facts_from_request(request)
        decision = await self.plan(request.caller_number, facts)
        tried = list(facts.tried)
        if decision.extension and decision.extension not in tried:
            tried.append(decision.extension)
        reason = decision.reason.value
        if decision.skipped_own.value:
            reason += f":{decision.skipped_own.value}"
        await channel.set_variable("PBXB_ACTION", decision.action.value)
        await channel.set_variable("PBXB_DEST", decision.target)
        await channel.set_variable("PBXB_EXT", decision.extension or "")
        await channel.set_variable("PBXB_TIMEOUT", str(decision.timeout_s or ""))
        await channel.set_variable("PBXB_TRIED", "-".join(tried))
        await channel.set_variable("PBXB_REASON", reason)
        await channel.verbose(f"pbxbridge route {request.caller_number or 'anonymous'}: {decision.describe()}", 3)

    async def plan(self, caller: str | None, facts: CallFacts) -> Decision:
        """The decision for a caller; the queue when the database cannot be read."""
        try:
            return await self._plan(caller, facts)
        except Exception:
            log.exception("routing failed; sending the caller to the queue")
            return Decision(action=Action.GOTO, target=self.defaults.queue_destination, reason=Reason.QUEUE)

    async def _plan(self, caller: str | None, facts: CallFacts) -> Decision:
        now = self.clock()
        async with self.sessions() as session:
            rules = await load_rules(session, self.defaults)
            number = normalise_number(caller, self.region) if caller else None
            client_id: int | None = None
            own: str | None = None
            if number is not None:
                client = await find_client_by_number(session, number, self.region)
                if client is not None:
                    client_id = client.id
                    if client.responsible_manager_id is not None:
                        manager = await session.get(Manager, client.responsible_manager_id)
                        own = manager.extension if manager else None
            members = {ext for g in rules.groups for ext in g.members}
            workload = Workload(
                calls_today=await calls_today(session, members, now, rules.timezone),
                last_chosen=await round_robin_positions(session),
            )
        if own is None and number is not None and self.crm_owner is not None:
            own = await self.crm_owner(number)
        facts = CallFacts(
            caller=number,
            client_id=client_id,
            own_manager=own,
            attempt=facts.attempt,
            rang_s=facts.rang_s,
            tried=facts.tried,
            dial_status=facts.dial_status,
        )
        decision = decide(rules, self.lines, facts, now, workload)
        if decision.reason is Reason.COLLEAGUE and decision.policy == "round_robin" and decision.group:
            await remember_round_robin(self.sessions, decision.group, decision.extension or "")
        log.info(
            "route %s (client %s, manager %s, attempt %d): %s",
            number or caller or "anonymous", client_id, own, facts.attempt, decision.describe(),
        )
        return decision


def call_facts_from_request(request: AgiRequest) -> CallFacts:
    """Attempt, ring time, dial status and tried extensions from the AGI arguments."""
    try:
        attempt = max(1, int(request.arg(1, "1")))
    except ValueError:
        attempt = 1
    try:
        rang_s = max(0.0, float(request.arg(2, "0")))
    except ValueError:
        rang_s = 0.0
    tried = tuple(t for t in request.arg(4).split("-") if t)
    return CallFacts(attempt=attempt, rang_s=rang_s, tried=tried, dial_status=request.arg(3).upper())


async def calls_today(session: AsyncSession, extensions: Iterable[str], now: float, timezone: str) -> dict[str, int]:
    """Calls each manager handled since local midnight (answered inbound or placed)."""
    exts = sorted(set(extensions))
    if not exts:
        return {}
    tz = zoneinfo.ZoneInfo(timezone)
    midnight = datetime.combine(datetime.fromtimestamp(now, tz).date(), dtime(0), tz)
    result = await session.execute(
        select(Call.manager, func.count())
        .where(Call.manager.in_(exts), Call.started_at >= midnight)
        .group_by(Call.manager)
    )
    return {manager: int(count) for manager, count in result.all() if manager is not None}
