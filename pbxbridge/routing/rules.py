"""Routing rules as values, and the service that reads and replaces them in the database."""

from __future__ import annotations

import re
import zoneinfo
from collections.abc import Collection, Mapping
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
# A day's times: 00:00 .. 23:59, and 24:00 as the end of the day (00:00-24:00 is the whole day).
_HHMM = re.compile(r"^([01]\d|2[0-3]):[0-5]\d$|^24:00$")
# What a group member must look like before it is looked up among the known extensions.
_EXTENSION = re.compile(r"^\d{2,6}$")
WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")


def N_(message: str) -> str:  # noqa: N802 - the name the message catalog's extractor looks for
    """Mark a message for the catalog; the web app translates it when it shows it."""
    return message


@dataclass(frozen=True, slots=True)
class Problem:
    """One reason the rules cannot be stored: where, and what a person should read (English, ``{}`` filled from params)."""

    where: str
    message: str
    params: Mapping[str, object] = field(default_factory=dict)

    def text(self) -> str:
        """The message in English with its values filled in."""
        return self.message.format(**self.params)

    def __str__(self) -> str:
        return f"{self.where}: {self.text()}"


class RulesError(ValueError):
    """Rules that cannot be stored; ``problems`` names each bad field, ``details`` holds them as Problems."""

    def __init__(self, details: list[Problem]) -> None:
        self.details = details
        self.problems = [str(p) for p in details]
        super().__init__("invalid routing rules: " + "; ".join(self.problems))


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
    problems: list[Problem] = []
    known = set(RoutingRules.__dataclass_fields__)
    for key in data:
        if key not in known:
            problems.append(Problem(key, N_("Unknown setting {key}."), {"key": key}))

    def integer(key: str, low: int, message: str) -> int:
        value = data.get(key, getattr(base, key))
        if not isinstance(value, int) or isinstance(value, bool) or value < low:
            problems.append(Problem(key, message, {"low": low, "value": _shown(value)}))
            return int(getattr(base, key))
        return value

    def text(key: str, allow_empty: bool = True) -> str:
        value = data.get(key, getattr(base, key))
        if not isinstance(value, str) or (not allow_empty and not value):
            problems.append(Problem(key, N_("{key} must be filled in with text, not {value}."),
                                    {"key": key, "value": _shown(value)}))
            return str(getattr(base, key))
        return value

    ring_timeout_s = integer(
        "ring_timeout_s", 1, N_("Ring the manager for a whole number of seconds, at least {low}, not {value}.")
    )
    max_waiting = integer(
        "max_waiting", 0, N_("The number of callers waiting must be a whole number, at least {low}, not {value}.")
    )
    policy = text("policy", allow_empty=False)
    if policy not in POLICIES:
        problems.append(Problem("policy", N_("Unknown policy {value}: use {choices}."),
                                {"value": _shown(policy), "choices": ", ".join(POLICIES)}))
    timezone = text("timezone", allow_empty=False)
    try:
        zoneinfo.ZoneInfo(timezone)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        problems.append(Problem("timezone", N_("Unknown time zone {value} (for example Europe/Moscow)."),
                                {"value": _shown(timezone)}))
    queue_destination = text("queue_destination", allow_empty=False)
    _check_goto("queue_destination", queue_destination, problems)
    after_hours = text("after_hours_destination")
    if after_hours:
        _check_goto("after_hours_destination", after_hours, problems)
    dial_template = text("dial_template", allow_empty=False)
    if "{ext}" not in dial_template:
        problems.append(Problem("dial_template", N_("The dial string must contain {{ext}}, got {value}."),
                                {"value": _shown(dial_template)}))
    default_group = data.get("default_group", base.default_group)
    if default_group is not None and not isinstance(default_group, str):
        problems.append(Problem("default_group", N_("The default group must be a group's name, not {value}."),
                                {"value": _shown(default_group)}))
        default_group = None

    groups = base.groups
    if "groups" in data:
        groups = tuple(_group(i, raw, problems) for i, raw in enumerate(_list(data["groups"], "groups", problems)))
        names = [g.name for g in groups]
        for name in sorted({n for n in names if names.count(n) > 1}):
            problems.append(Problem("groups", N_("Two groups are named {name}."), {"name": name}))
    if default_group and default_group not in {g.name for g in groups}:
        problems.append(Problem("default_group", N_("There is no group named {name}."), {"name": default_group}))
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


def check_members(rules: RoutingRules, known: Collection[str]) -> None:
    """Every group member must be an extension somebody knows (a manager, a user, a line the PBX listed).

    Raises RulesError naming each member that is not: a typo here would leave a group
    ringing a handset that does not exist while the client waits.
    """
    problems: list[Problem] = []
    for index, group in enumerate(rules.groups):
        where = f"groups[{index}].members"
        for member in group.members:
            if not _EXTENSION.match(member):
                problems.append(Problem(where, N_("Group {group}: {member} is not an extension (digits only)."),
                                        {"group": group.name, "member": member}))
            elif member not in known:
                problems.append(Problem(where, N_("Group {group}: no manager or line has extension {member}."),
                                        {"group": group.name, "member": member}))
    if problems:
        raise RulesError(problems)


def _shown(value: Any) -> str:
    # How a bad value reads in a message: text as typed, anything else as JSON would write it.
    if isinstance(value, str):
        return f"«{value}»"
    if value is None:
        return "null"
    return repr(value)


def _check_goto(key: str, value: str, problems: list[Problem]) -> None:
    if not _GOTO.match(value):
        problems.append(Problem(key, N_("{key} must be a dialplan target context,exten,priority, not {value}."),
                                {"key": key, "value": _shown(value)}))


def _list(value: Any, key: str, problems: list[Problem]) -> list[Any]:
    if not isinstance(value, list):
        problems.append(Problem(key, N_("{key} must be a list."), {"key": key}))
        return []
    return value


def _group(index: int, raw: Any, problems: list[Problem]) -> Group:
    where = f"groups[{index}]"
    if not isinstance(raw, Mapping):
        problems.append(Problem(where, N_("Group {n} must be an object."), {"n": index + 1}))
        return Group(name=f"?{index}", members=())
    name = raw.get("name")
    if not isinstance(name, str) or not name:
        problems.append(Problem(f"{where}.name", N_("Group {n} needs a name."), {"n": index + 1}))
        name = f"?{index}"
    members = raw.get("members", [])
    if not isinstance(members, list) or not all(isinstance(m, str) and m for m in members):
        problems.append(Problem(f"{where}.members", N_("Group {group}: members must be a list of extensions."),
                                {"group": name}))
        members = []
    for member in sorted({m for m in members if members.count(m) > 1}):
        problems.append(Problem(f"{where}.members", N_("Group {group}: extension {member} is listed twice."),
                                {"group": name, "member": member}))
    policy = raw.get("policy")
    if policy is not None and policy not in POLICIES:
        problems.append(Problem(f"{where}.policy", N_("Group {group}: unknown policy {value}."),
                                {"group": name, "value": _shown(policy)}))
    queue = raw.get("queue_destination")
    if queue is not None:
        if isinstance(queue, str):
            _check_goto(f"{where}.queue_destination", queue, problems)
        else:
            problems.append(Problem(f"{where}.queue_destination", N_("Group {group}: the queue must be text or empty."),
                                    {"group": name}))
    for key in raw:
        if key not in ("name", "members", "policy", "queue_destination"):
            problems.append(Problem(f"{where}.{key}", N_("Unknown setting {key}."), {"key": key}))
    return Group(name=name, members=tuple(members), policy=policy, queue_destination=queue)


def _hours(index: int, raw: Any, problems: list[Problem]) -> Hours:
    where = f"hours[{index}]"
    if not isinstance(raw, Mapping):
        problems.append(Problem(where, N_("Business hours line {n} must be an object."), {"n": index + 1}))
        return Hours(0, "00:00", "00:00")
    weekday = raw.get("weekday")
    if not isinstance(weekday, int) or isinstance(weekday, bool) or not 0 <= weekday <= 6:
        problems.append(Problem(f"{where}.weekday", N_("Business hours line {n}: no such weekday {value}."),
                                {"n": index + 1, "value": _shown(weekday)}))
        weekday = 0
    opens, closes = raw.get("opens"), raw.get("closes")
    for key, value in (("opens", opens), ("closes", closes)):
        if not isinstance(value, str) or not _HHMM.match(value):
            problems.append(Problem(
                f"{where}.{key}",
                N_("Business hours line {n}: {value} is not a time from 00:00 to 24:00."),
                {"n": index + 1, "value": _shown(value)},
            ))
    if isinstance(opens, str) and isinstance(closes, str) and opens >= closes:
        # Overnight spans are two lines (22:00-24:00, then 00:00-06:00 the next day).
        problems.append(Problem(
            where, N_("opens {opens} is not before closes {closes} on {day}: split a night into two lines."),
            {"opens": opens, "closes": closes, "day": WEEKDAYS[weekday]},
        ))
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
