"""Routing rules as values, and the service that reads and replaces them in the database."""

from __future__ import annotations

import re
import zoneinfo
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from pbxbridge.config import RoutingConfig
from pbxbridge.db.engine import WRITE
from pbxbridge.routing.tables import (
    RoutingGroup,
    RoutingGroupMember,
    RoutingHours,
    RoutingSettings,
)

POLICIES = ("least_busy", "longest_idle", "round_robin")
# FreePBX's queue application context; "400" is FreePBX's first suggested queue number.
DEFAULT_QUEUE_DESTINATION = "ext-queues,400,1"
_GOTO = re.compile(r"^[A-Za-z0-9_.\-]+,[^,\s]+,[A-Za-z0-9_]+$")
_HHMM = re.compile(r"^([01]\d|2[0-3]):[0-5]\d$|^24:00$")


class RulesError(ValueError):
    """Rules that cannot be stored; ``problems`` names each bad field."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("invalid routing rules: " + "; ".join(problems))
        self.problems = problems


@dataclass(frozen=True, slots=True)
class Group:
    """Managers who take each other's clients when one is busy."""

    name: str
    members: tuple[str, ...]
    policy: str | None = None
    queue_destination: str | None = None


@dataclass(frozen=True, slots=True)
class Hours:
    """One opening span on one weekday (0 Monday .. 6 Sunday), local time, closes exclusive."""

    weekday: int
    opens: str
    closes: str


@dataclass(frozen=True, slots=True)
class RoutingRules:
    """Everything the overflow decision is configured by."""

    ring_timeout_s: int = 20
    max_waiting: int = 2
    policy: str = "least_busy"
    timezone: str = "Europe/Moscow"
    queue_destination: str = DEFAULT_QUEUE_DESTINATION
    # Empty: out-of-hours callers go to the queue too.
    after_hours_destination: str = ""
    dial_template: str = "PJSIP/{ext}"
    default_group: str | None = None
    groups: tuple[Group, ...] = ()
    # No spans: always open.
    hours: tuple[Hours, ...] = field(default_factory=tuple)

    def group_named(self, name: str | None) -> Group | None:
        """The group with that name, if any."""
        return next((g for g in self.groups if g.name == name), None) if name else None

    def group_of(self, extension: str | None) -> Group | None:
        """The first group that has this manager in it."""
        if extension is None:
            return None
        return next((g for g in self.groups if extension in g.members), None)

    def is_open(self, local: datetime) -> bool:
        """Whether a local time falls within business hours."""
        if not self.hours:
            return True
        hhmm = local.strftime("%H:%M")
        return any(h.weekday == local.weekday() and h.opens <= hhmm < h.closes for h in self.hours)

    def to_json(self) -> dict[str, Any]:
        """Plain JSON-able form (the shape ``rules_from_json`` reads)."""
        data = asdict(self)
        data["groups"] = [
            {**asdict(g), "members": list(g.members)} for g in self.groups
        ]
        data["hours"] = [asdict(h) for h in self.hours]
        return data


def rules_from_config(config: RoutingConfig, timezone: str = "Europe/Moscow") -> RoutingRules:
    """The rules a fresh install starts with, from the [routing] settings."""
    return RoutingRules(
        ring_timeout_s=config.ring_timeout_s,
        max_waiting=config.max_waiting,
        policy=config.policy,
        timezone=timezone,
    )


def rules_from_json(data: Mapping[str, Any], base: RoutingRules | None = None) -> RoutingRules:
    """Rules from JSON, keys missing from ``data`` taken from ``base``; raises RulesError."""
    base = base or RoutingRules()
    problems: list[str] = []
    known = set(RoutingRules.__dataclass_fields__)
    for key in data:
        if key not in known:
            problems.append(f"{key}: unknown key")

    def integer(key: str, low: int) -> int:
        value = data.get(key, getattr(base, key))
        if not isinstance(value, int) or isinstance(value, bool) or value < low:
            problems.append(f"{key}: must be an integer >= {low}, got {value!r}")
            return int(getattr(base, key))
        return value

    def text(key: str, allow_empty: bool = True) -> str:
        value = data.get(key, getattr(base, key))
        if not isinstance(value, str) or (not allow_empty and not value):
            problems.append(f"{key}: must be a{'' if allow_empty else ' non-empty'} string, got {value!r}")
            return str(getattr(base, key))
        return value

    ring_timeout_s = integer("ring_timeout_s", 1)
    max_waiting = integer("max_waiting", 0)
    policy = text("policy", allow_empty=False)
    if policy not in POLICIES:
        problems.append(f"policy: must be one of {', '.join(POLICIES)}, got {policy!r}")
    timezone = text("timezone", allow_empty=False)
    try:
        zoneinfo.ZoneInfo(timezone)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        problems.append(f"timezone: unknown time zone {timezone!r}")
    queue_destination = text("queue_destination", allow_empty=False)
    _check_goto("queue_destination", queue_destination, problems)
    after_hours = text("after_hours_destination")
    if after_hours:
        _check_goto("after_hours_destination", after_hours, problems)
    dial_template = text("dial_template", allow_empty=False)
    if "{ext}" not in dial_template:
        problems.append(f"dial_template: must contain {{ext}}, got {dial_template!r}")
    default_group = data.get("default_group", base.default_group)
    if default_group is not None and not isinstance(default_group, str):
        problems.append(f"default_group: must be a group name or null, got {default_group!r}")
        default_group = None

    groups = base.groups
    if "groups" in data:
        groups = tuple(_group(i, raw, problems) for i, raw in enumerate(_list(data["groups"], "groups", problems)))
        names = [g.name for g in groups]
        for name in {n for n in names if names.count(n) > 1}:
            problems.append(f"groups: name {name!r} used twice")
    if default_group and default_group not in {g.name for g in groups}:
        problems.append(f"default_group: no group named {default_group!r}")
    hours = base.hours
    if "hours" in data:
        hours = tuple(_hours(i, raw, problems) for i, raw in enumerate(_list(data["hours"], "hours", problems)))
    if problems:
        raise RulesError(problems)
    return RoutingRules(
        ring_timeout_s=ring_timeout_s,
        max_waiting=max_waiting,
        policy=policy,
        timezone=timezone,
        queue_destination=queue_destination,
        after_hours_destination=after_hours,
        dial_template=dial_template,
        default_group=default_group or None,
        groups=groups,
        hours=hours,
    )


def _check_goto(key: str, value: str, problems: list[str]) -> None:
    if not _GOTO.match(value):
        problems.append(f"{key}: must be a dialplan target 'context,exten,priority', got {value!r}")


def _list(value: Any, key: str, problems: list[str]) -> list[Any]:
    if not isinstance(value, list):
        problems.append(f"{key}: must be a list")
        return []
    return value


def _group(index: int, raw: Any, problems: list[str]) -> Group:
    where = f"groups[{index}]"
    if not isinstance(raw, Mapping):
        problems.append(f"{where}: must be an object")
        return Group(name=f"?{index}", members=())
    name = raw.get("name")
    if not isinstance(name, str) or not name:
        problems.append(f"{where}.name: must be a non-empty string")
        name = f"?{index}"
    members = raw.get("members", [])
    if not isinstance(members, list) or not all(isinstance(m, str) and m for m in members):
        problems.append(f"{where}.members: must be a list of extensions")
        members = []
    if len(set(members)) != len(members):
        problems.append(f"{where}.members: an extension is listed twice")
    policy = raw.get("policy")
    if policy is not None and policy not in POLICIES:
        problems.append(f"{where}.policy: must be one of {', '.join(POLICIES)} or null, got {policy!r}")
    queue = raw.get("queue_destination")
    if queue is not None:
        if isinstance(queue, str):
            _check_goto(f"{where}.queue_destination", queue, problems)
        else:
            problems.append(f"{where}.queue_destination: must be a string or null")
    for key in raw:
        if key not in ("name", "members", "policy", "queue_destination"):
            problems.append(f"{where}.{key}: unknown key")
    return Group(name=name, members=tuple(members), policy=policy, queue_destination=queue)


def _hours(index: int, raw: Any, problems: list[str]) -> Hours:
    where = f"hours[{index}]"
    if not isinstance(raw, Mapping):
        problems.append(f"{where}: must be an object")
        return Hours(0, "00:00", "00:00")
    weekday = raw.get("weekday")
    if not isinstance(weekday, int) or isinstance(weekday, bool) or not 0 <= weekday <= 6:
        problems.append(f"{where}.weekday: must be 0 (Monday) .. 6 (Sunday), got {weekday!r}")
        weekday = 0
    opens, closes = raw.get("opens"), raw.get("closes")
    for key, value in (("opens", opens), ("closes", closes)):
        if not isinstance(value, str) or not _HHMM.match(value):
            problems.append(f"{where}.{key}: must be HH:MM, got {value!r}")
    if isinstance(opens, str) and isinstance(closes, str) and opens >= closes:
        problems.append(f"{where}: opens {opens} is not before closes {closes}")
    return Hours(weekday=weekday, opens=str(opens), closes=str(closes))


# ----- the service: read on every call, replace through the API -------------------------


async def load_rules(session: AsyncSession, defaults: RoutingRules | None = None) -> RoutingRules:
    """The rules stored in the database (``defaults`` while none were ever saved)."""
    defaults = defaults or RoutingRules()
    settings = await session.get(RoutingSettings, 1)
    groups = (await session.execute(select(RoutingGroup).order_by(RoutingGroup.position, RoutingGroup.id))).scalars()
    hours = (
        await session.execute(select(RoutingHours).order_by(RoutingHours.weekday, RoutingHours.opens))
    ).scalars()
    group_values = tuple(
        Group(
            name=g.name,
            members=tuple(m.extension for m in g.members),
            policy=g.policy,
            queue_destination=g.queue_destination,
        )
        for g in groups
    )
    hour_values = tuple(Hours(weekday=h.weekday, opens=h.opens, closes=h.closes) for h in hours)
    if settings is None:
        return RoutingRules(
            **{k: getattr(defaults, k) for k in RoutingRules.__dataclass_fields__ if k not in ("groups", "hours")},
            groups=group_values or defaults.groups,
            hours=hour_values or defaults.hours,
        )
    return RoutingRules(
        ring_timeout_s=settings.ring_timeout_s,
        max_waiting=settings.max_waiting,
        policy=settings.policy,
        timezone=settings.timezone,
        queue_destination=settings.queue_destination,
        after_hours_destination=settings.after_hours_destination,
        dial_template=settings.dial_template,
        default_group=settings.default_group,
        groups=group_values,
        hours=hour_values,
    )


async def store_rules(session: AsyncSession, rules: RoutingRules) -> None:
    """Replace the stored rules with ``rules`` (inside the caller's transaction)."""
    values = {
        "ring_timeout_s": rules.ring_timeout_s,
        "max_waiting": rules.max_waiting,
        "policy": rules.policy,
        "timezone": rules.timezone,
        "queue_destination": rules.queue_destination,
        "after_hours_destination": rules.after_hours_destination,
        "dial_template": rules.dial_template,
        "default_group": rules.default_group,
        "updated_at": datetime.now(UTC),
    }
    settings = await session.get(RoutingSettings, 1)
    if settings is None:
        session.add(RoutingSettings(id=1, **values))
    else:
        for key, value in values.items():
            setattr(settings, key, value)
    # Keep round-robin positions of groups that survive the change.
    old = {g.name: g.last_chosen for g in (await session.execute(select(RoutingGroup))).scalars()}
    await session.execute(delete(RoutingGroupMember))
    await session.execute(delete(RoutingGroup))
    await session.execute(delete(RoutingHours))
    await session.flush()
    for position, group in enumerate(rules.groups):
        session.add(
            RoutingGroup(
                name=group.name,
                position=position,
                policy=group.policy,
                queue_destination=group.queue_destination,
                last_chosen=old.get(group.name),
                members=[RoutingGroupMember(extension=ext, position=i) for i, ext in enumerate(group.members)],
            )
        )
    for span in rules.hours:
        session.add(RoutingHours(weekday=span.weekday, opens=span.opens, closes=span.closes))
    await session.flush()


async def get_rules(
    sessions: async_sessionmaker[AsyncSession], defaults: RoutingRules | None = None
) -> RoutingRules:
    """Read the current rules (one short read-only transaction)."""
    async with sessions() as session:
        return await load_rules(session, defaults)


async def set_rules(
    sessions: async_sessionmaker[AsyncSession],
    data: Mapping[str, Any] | RoutingRules,
    defaults: RoutingRules | None = None,
) -> RoutingRules:
    """Validate and store rules; a mapping may hold only the keys to change. Raises RulesError."""
    async with sessions() as session:
        async with session.begin():
            # Take SQLite's write lock first: a read-then-write transaction
            # would otherwise fail with "database is locked" beside the call writer.
            await session.connection(execution_options=WRITE)
            current = await load_rules(session, defaults)
            rules = data if isinstance(data, RoutingRules) else rules_from_json(data, current)
            if isinstance(data, RoutingRules):
                # Same validation whichever way the rules came in.
                rules = rules_from_json(data.to_json(), current)
            await store_rules(session, rules)
    return rules


async def remember_round_robin(sessions: async_sessionmaker[AsyncSession], group: str, extension: str) -> None:
    """Note whom a round-robin group handed the last caller to."""
    async with sessions() as session:
        async with session.begin():
            await session.connection(execution_options=WRITE)
            await session.execute(
                update(RoutingGroup).where(RoutingGroup.name == group).values(last_chosen=extension)
            )


async def round_robin_positions(session: AsyncSession) -> dict[str, str | None]:
    """Group name -> the extension chosen last."""
    result = await session.execute(select(RoutingGroup.name, RoutingGroup.last_chosen))
    return {name: last for name, last in result.all()}
