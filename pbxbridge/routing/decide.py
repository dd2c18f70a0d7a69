"""Where an inbound call goes: the client's own manager, a free colleague, or the queue.

Pure: rules, line states and the call's facts in, a decision out; the clock is
an argument.
"""

from __future__ import annotations

import math
import zoneinfo
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from pbxbridge.routing.line_states import Line, LineState, LineStates
from pbxbridge.routing.rules import Group, RoutingRules


class Action(StrEnum):
    # Dial the manager's handset for ring_timeout_s, then ask again.
    DIAL = "dial"
    # Send the call to a dialplan target (queue, after-hours destination) for good.
    GOTO = "goto"


class Reason(StrEnum):
    OWN_MANAGER = "own_manager"
    COLLEAGUE = "colleague"
    QUEUE = "queue"
    AFTER_HOURS = "after_hours"


class Skip(StrEnum):
    """Why the client's own manager was passed over."""

    NONE = ""
    NO_MANAGER = "no_manager"
    BUSY = "busy"
    RINGING_TOO_LONG = "ringing_too_long"
    NO_ANSWER = "no_answer"
    TOO_MANY_WAITING = "too_many_waiting"
    PAUSED = "paused"
    UNAVAILABLE = "unavailable"


@dataclass(frozen=True, slots=True)
class CallFacts:
    """What is known about the call being routed."""

    caller: str | None = None
    client_id: int | None = None
    # The client's responsible manager's extension; None for a new lead.
    own_manager: str | None = None
    # 1 on the first AGI call; the dialplan counts up each time a dial comes back.
    attempt: int = 1
    # How long the last dialled handset rang before the dial came back.
    rang_s: float = 0.0
    # Extensions already dialled for this call.
    tried: tuple[str, ...] = ()
    # DIALSTATUS of the last dial (NOANSWER, BUSY, CHANUNAVAIL, ...).
    dial_status: str = ""


@dataclass(frozen=True, slots=True)
class Decision:
    action: Action
    # A dial string (DIAL) or a "context,exten,priority" target (GOTO).
    target: str
    reason: Reason
    extension: str | None = None
    skipped_own: Skip = Skip.NONE
    group: str | None = None
    policy: str | None = None
    timeout_s: int | None = None

    def describe(self) -> str:
        """One line for the PBX's console and the daemon's log."""
        parts = [f"{self.reason.value} -> {self.action.value} {self.target}"]
        if self.skipped_own is not Skip.NONE:
            parts.append(f"own manager skipped: {self.skipped_own.value}")
        if self.group:
            parts.append(f"group {self.group} ({self.policy})")
        return "; ".join(parts)


@dataclass(frozen=True, slots=True)
class Workload:
    """Per-extension facts the policies weigh that live outside the AMI stream."""

    # Calls each manager handled today (least_busy).
    calls_today: Mapping[str, int]
    # Group name -> extension a round-robin group chose last.
    last_chosen: Mapping[str, str | None]


def decide(
    rules: RoutingRules,
    lines: LineStates,
    call: CallFacts,
    now: float,
    workload: Workload | None = None,
) -> Decision:
    """Pick the destination for one inbound call."""
    workload = workload or Workload(calls_today={}, last_chosen={})
    local = datetime.fromtimestamp(now, zoneinfo.ZoneInfo(rules.timezone))
    group = rules.group_of(call.own_manager) or rules.group_named(rules.default_group)
    if not rules.is_open(local):
        return Decision(
            action=Action.GOTO,
            target=rules.after_hours_destination or _queue(rules, group),
            reason=Reason.AFTER_HOURS,
            group=group.name if group else None,
        )

    skip = _own_manager_skip(rules, lines, call, now)
    if skip is Skip.NONE and call.own_manager is not None:
        return _dial(rules, call.own_manager, Reason.OWN_MANAGER, skip, group, None)

    if group is not None:
        policy = group.policy or rules.policy
        free = [
            ext
            for ext in group.members
            if ext != call.own_manager and ext not in call.tried and _is_free(rules, lines.line(ext))
        ]
        chosen = _choose(policy, free, group, lines, workload)
        if chosen is not None:
            return _dial(rules, chosen, Reason.COLLEAGUE, skip, group, policy)
    return Decision(
        action=Action.GOTO,
        target=_queue(rules, group),
        reason=Reason.QUEUE,
        skipped_own=skip,
        group=group.name if group else None,
        policy=(group.policy or rules.policy) if group else None,
    )


def _own_manager_skip(rules: RoutingRules, lines: LineStates, call: CallFacts, now: float) -> Skip:
    own = call.own_manager
    if own is None:
        return Skip.NO_MANAGER
    if own in call.tried:
        # The dial came back: the handset rang out or refused the call.
        if call.dial_status in ("BUSY", "CONGESTION"):
            return Skip.BUSY
        if call.dial_status == "CHANUNAVAIL":
            return Skip.UNAVAILABLE
        # Rang for the whole ring timeout (or hung up on it some other way).
        return Skip.RINGING_TOO_LONG if call.rang_s >= rules.ring_timeout_s else Skip.NO_ANSWER
    line = lines.line(own)
    if line.state is LineState.IN_CALL:
        return Skip.BUSY
    if line.state is LineState.UNAVAILABLE:
        return Skip.UNAVAILABLE
    if line.state is LineState.PAUSED:
        return Skip.PAUSED
    if line.state is LineState.RINGING and _ringing_for(line, now) >= rules.ring_timeout_s:
        return Skip.RINGING_TOO_LONG
    if line.waiting > rules.max_waiting:
        return Skip.TOO_MANY_WAITING
    return Skip.NONE


def _is_free(rules: RoutingRules, line: Line) -> bool:
    return line.state is LineState.IDLE and line.waiting <= rules.max_waiting


def _ringing_for(line: Line, now: float) -> float:
    if line.ringing_since is None:
        # Ringing since before we connected: nothing says it is new, so treat it as old.
        return math.inf
    return now - line.ringing_since


def _choose(
    policy: str, free: list[str], group: Group, lines: LineStates, workload: Workload
) -> str | None:
    if not free:
        return None
    order = {ext: i for i, ext in enumerate(group.members)}
    if policy == "round_robin":
        last = workload.last_chosen.get(group.name)
        start = order[last] + 1 if last in order else 0
        rotated = group.members[start:] + group.members[:start]
        return next(ext for ext in rotated if ext in free)

    def idle_for(ext: str) -> float:
        since = lines.line(ext).idle_since
        # Never seen in a call: idle the longest.
        return -math.inf if since is None else since

    if policy == "longest_idle":
        return min(free, key=lambda ext: (idle_for(ext), order[ext]))
    # least_busy: fewest calls today, then fewest callers waiting, then longest idle.
    return min(
        free,
        key=lambda ext: (workload.calls_today.get(ext, 0), lines.waiting_for(ext), idle_for(ext), order[ext]),
    )


def _dial(
    rules: RoutingRules, ext: str, reason: Reason, skip: Skip, group: Group | None, policy: str | None
) -> Decision:
    return Decision(
        action=Action.DIAL,
        target=rules.dial_template.replace("{ext}", ext),
        reason=reason,
        extension=ext,
        skipped_own=skip,
        group=group.name if group else None,
        policy=policy,
        timeout_s=rules.ring_timeout_s,
    )


def _queue(rules: RoutingRules, group: Group | None) -> str:
    if group is not None and group.queue_destination:
        return group.queue_destination
    return rules.queue_destination
