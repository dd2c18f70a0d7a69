"""Sign-in throttling per account and per address: growing waits, then a lock.

Every failed sign-in counts twice: against the account tried (from any address:
someone guessing one manager's password from many machines) and against the
address it came from (one machine trying many accounts). Past a few free
failures each one doubles the wait before the next try; past more, the account
or address is locked for a while. A try during a wait is refused without
checking the password, so a correct guess during a lock still fails.

The counts are kept in memory and rebuilt from the audit log (every failed
sign-in is written there) when the process starts, so a restart does not lift
a lock.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass

ACCOUNT = "account"
ADDRESS = "address"
# Longest name kept as a key (and in the audit log): a hostile 1 MB username stays small.
MAX_NAME_CHARS = 100
MAX_ENTRIES = 100_000


@dataclass(frozen=True, slots=True)
class Rule:
    """How one kind of key (account or address) is held back."""

    # Failures that cost nothing (typos).
    free: int
    # From this failure on the key is locked for lock_s after each failure.
    lock_after: int
    lock_s: float
    # The wait between free and locked: base_s, doubling, at most max_delay_s.
    base_s: float = 1.0
    max_delay_s: float = 60.0
    # Failures this long ago (counted from the latest) are forgotten.
    forget_after_s: float = 24 * 3600.0

    def wait_after(self, failures: int) -> float:
        """The wait that the ``failures``-th failure brings."""
        if failures >= self.lock_after:
            return self.lock_s
        if failures < self.free:
            return 0.0
        return min(self.max_delay_s, self.base_s * 2 ** (failures - self.free))


# A person mistyping gets three free tries, then seconds; guessing gets them locked for 15 minutes.
ACCOUNT_RULE = Rule(free=3, lock_after=10, lock_s=15 * 60.0)
# Many people may share an address (an office behind NAT, a reverse proxy): more free tries, and
# failures forgotten after a quiet hour, so one person's typos do not hold up the rest.
ADDRESS_RULE = Rule(free=10, lock_after=50, lock_s=15 * 60.0, forget_after_s=3600.0)
# The oldest failure that can still count, for rebuilding the counts at start.
LOOKBACK_S = max(ACCOUNT_RULE.forget_after_s, ADDRESS_RULE.forget_after_s)


@dataclass(slots=True)
class _Failures:
    count: int
    last_at: float
    blocked_until: float


@dataclass(frozen=True, slots=True)
class Wait:
    """Why a try must wait, and until when (a Unix time when the clock is the wall clock)."""

    seconds: float
    until: float
    # A lock, not just a growing wait: the message and the audit log say so.
    locked: bool
    scope: str


@dataclass(frozen=True, slots=True)
class Lock:
    """A lock that one failure has just started (the caller writes it to the audit log)."""

    scope: str
    key: str
    failures: int
    until: float


@dataclass(frozen=True, slots=True)
class Attempt:
    """A past sign-in attempt, as the audit log holds it."""

    at: float
    username: str
    address: str
    succeeded: bool


def account_key(username: str) -> str:
    """The account a typed name means: case and surrounding spaces do not matter."""
    return username.strip().lower()[:MAX_NAME_CHARS]


class LoginThrottle:
    """Remembers failed sign-ins per account and per address and says how long to wait."""

    def __init__(
        self,
        clock: Callable[[], float] = time.time,
        account: Rule = ACCOUNT_RULE,
        address: Rule = ADDRESS_RULE,
    ) -> None:
        self._clock = clock
        self._rules = {ACCOUNT: account, ADDRESS: address}
        self._failures: dict[str, dict[str, _Failures]] = {ACCOUNT: {}, ADDRESS: {}}
        self._restored = False
        self._restoring = asyncio.Lock()

    @property
    def restored(self) -> bool:
        """Whether the counts were rebuilt from the audit log already."""
        return self._restored

    async def restore_once(self, load: Callable[[float], Awaitable[Iterable[Attempt]]]) -> None:
        """Rebuild the counts from past attempts (``load(since)``), once per process."""
        async with self._restoring:
            if self._restored:
                return
            now = self._clock()
            for attempt in sorted(await load(now - LOOKBACK_S), key=lambda a: a.at):
                if attempt.at > now:
                    continue
                if attempt.succeeded:
                    self.succeeded(attempt.username, attempt.address)
                else:
                    self.failed(attempt.username, attempt.address, at=attempt.at)
            self._restored = True

    def wait(self, username: str, address: str) -> Wait | None:
        """The longest wait in force for this account or address, or None to go ahead."""
        now = self._clock()
        longest: Wait | None = None
        for scope, key in ((ACCOUNT, account_key(username)), (ADDRESS, address)):
            entry = self._failures[scope].get(key)
            if entry is None or entry.blocked_until <= now:
                continue
            if longest is None or entry.blocked_until > longest.until:
                locked = entry.count >= self._rules[scope].lock_after
                longest = Wait(entry.blocked_until - now, entry.blocked_until, locked, scope)
        return longest

    def retry_after(self, username: str, address: str) -> float:
        """Seconds until this account may try again from this address (0: now)."""
        found = self.wait(username, address)
        return found.seconds if found else 0.0

    def failed(self, username: str, address: str, at: float | None = None) -> list[Lock]:
        """Count a failure against the account and the address; return the locks it starts."""
        now = self._clock() if at is None else at
        locks: list[Lock] = []
        for scope, key in ((ACCOUNT, account_key(username)), (ADDRESS, address)):
            rule = self._rules[scope]
            table = self._failures[scope]
            entry = table.get(key)
            if entry is None or now - entry.last_at > rule.forget_after_s:
                entry = _Failures(0, now, now)
            entry.count += 1
            entry.last_at = now
            entry.blocked_until = max(entry.blocked_until, now + rule.wait_after(entry.count))
            table[key] = entry
            if entry.count >= rule.lock_after:
                locks.append(Lock(scope, key, entry.count, entry.blocked_until))
            if len(table) > MAX_ENTRIES:
                self._prune(table, rule, now)
        return locks

    def succeeded(self, username: str, address: str) -> None:
        """A correct password clears the account's failures.

        The address keeps its count: one valid account must not let its owner wipe the
        record of the other accounts they tried.
        """
        self._failures[ACCOUNT].pop(account_key(username), None)

    def failures(self, scope: str, key: str) -> int:
        """How many failures count against an account (as ``account_key`` gives it) or address now."""
        entry = self._failures[scope].get(key)
        if entry is None or self._clock() - entry.last_at > self._rules[scope].forget_after_s:
            return 0
        return entry.count

    @staticmethod
    def _prune(table: dict[str, _Failures], rule: Rule, now: float) -> None:
        for key in [k for k, v in table.items() if now - v.last_at > rule.forget_after_s]:
            del table[key]
        if len(table) > MAX_ENTRIES:
            # Keep the keys still held back, then the most recent.
            oldest = sorted(table, key=lambda k: (table[k].blocked_until > now, table[k].last_at))
            for key in oldest[: len(table) - MAX_ENTRIES]:
                del table[key]
