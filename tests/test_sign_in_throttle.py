"""Sign-in throttling: growing waits per account and per address, a lock after many failures that
the audit log records, a clear message with when to try again, and no lift by a restart."""

from __future__ import annotations

import asyncio
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from pbxbridge.web.throttle import ACCOUNT, ACCOUNT_RULE, ADDRESS, ADDRESS_RULE, Attempt, LoginThrottle
from tests.fixtures_refusals import (  # noqa: F401 - fixtures
    Site,
    Visitor,
    fast_password_hashing,
    populated_templates,
    pseudo_catalog,
    site,
    start_site,
    whisper_transcript,
)
from tests.fixtures_web import PASSWORD

LOCK_MIN = int(ACCOUNT_RULE.lock_s // 60)


def test_an_address_trying_many_accounts_is_held_back_too() -> None:
    now = [0.0]
    throttle = LoginThrottle(clock=lambda: now[0])
    # One name each: no account reaches its own free tries, the address does.
    for i in range(ADDRESS_RULE.free - 1):
        assert throttle.failed(f"user{i}", "10.0.0.9") == []
        assert throttle.retry_after(f"user{i}", "10.0.0.9") == 0.0
    throttle.failed("one-more", "10.0.0.9")
    assert throttle.retry_after("anyone", "10.0.0.9") == 1.0
    assert throttle.retry_after("anyone", "10.0.0.10") == 0.0
    # Another address's right password does not wipe this address's record; a quiet hour does.
    throttle.succeeded("anyone", "10.0.0.10")
    assert throttle.failures(ADDRESS, "10.0.0.9") == ADDRESS_RULE.free
    now[0] = ADDRESS_RULE.forget_after_s + 1
    assert throttle.failures(ADDRESS, "10.0.0.9") == 0


def test_the_lock_comes_after_many_failures_and_is_rebuilt_from_the_log() -> None:
    now = [1_000_000.0]
    throttle = LoginThrottle(clock=lambda: now[0])
    attempts: list[Attempt] = []
    locks = []
    for _ in range(ACCOUNT_RULE.lock_after):
        now[0] += throttle.retry_after("anna", "10.0.0.1")
        attempts.append(Attempt(now[0], "Anna", "10.0.0.1", succeeded=False))
        locks = throttle.failed("Anna", "10.0.0.1")
    # The tenth failure locks the account (and only it): from every address, for the whole lock.
    assert [(lock.scope, lock.key, lock.failures) for lock in locks] == [(ACCOUNT, "anna", ACCOUNT_RULE.lock_after)]
    found = throttle.wait("anna", "192.168.1.5")
    assert found is not None and found.locked and found.seconds == ACCOUNT_RULE.lock_s
    # A new process reads the same failures from the audit log: still locked, as long.
    restarted = LoginThrottle(clock=lambda: now[0])

    async def load(since: float) -> list[Attempt]:
        assert since == now[0] - 24 * 3600
        return attempts

    asyncio.run(restarted.restore_once(load))
    assert restarted.retry_after("ANNA", "10.0.0.7") == ACCOUNT_RULE.lock_s
    now[0] += ACCOUNT_RULE.lock_s
    assert restarted.retry_after("anna", "10.0.0.7") == 0.0


async def test_a_locked_account_refuses_even_the_right_password_and_says_when(site: Site) -> None:
    client = site.client()
    for i in range(ACCOUNT_RULE.lock_after):
        site.wait(site.context.throttle.retry_after("ivan", "127.0.0.1"))
        response = await client.login("ivan", f"guess number {i}")
        assert response.status == 401, i
    # Locked: the right password fails, the answer says for how long, in words and in Retry-After.
    response = await client.login("ivan")
    assert response.status == 429
    assert response.headers["Retry-After"] == str(int(ACCOUNT_RULE.lock_s))
    async with client.send("POST", "/api/login", json={"username": "ivan", "password": PASSWORD}) as answer:
        body = await answer.json()
    # When, on the department's clock (Moscow, 24-hour).
    until = datetime.fromtimestamp(site.now[0] + ACCOUNT_RULE.lock_s, ZoneInfo("Europe/Moscow")).strftime("%H:%M")
    assert body == {
        "error": f"Too many failed sign-ins: sign-in is locked. Try again in {LOCK_MIN} minutes, at {until}.",
        "retry_after": int(ACCOUNT_RULE.lock_s), "locked": True}
    # The sign-in form says the same (and keeps the name typed).
    await client.prime()
    async with client.send("POST", "/login", data={"username": "ivan", "password": PASSWORD,
                                                   "csrf_token": client.csrf}) as form:
        assert form.status == 429 and form.headers["Retry-After"] == str(int(ACCOUNT_RULE.lock_s))
        assert f"Try again in {LOCK_MIN} minutes, at {until}." in await form.text()
    # Other people are not locked out with him: the address's ten failures cost them a second at most.
    assert site.context.throttle.retry_after("petr", "127.0.0.1") <= 1.0
    site.wait(1.0)
    assert (await client.login("petr")).status == 200

    # The head sees it: every failure with its reason, the lock, the refused tries.
    failed = await site.audit("sign_in_failed")
    reasons = [e.details["reason"] for e in failed]
    assert reasons[: ACCOUNT_RULE.lock_after] == ["wrong_password"] * ACCOUNT_RULE.lock_after
    assert reasons[ACCOUNT_RULE.lock_after:] == ["locked"]  # the repeats are summed up (see test_audit_refusals)
    assert {(e.username, e.ip) for e in failed} == {("ivan", "127.0.0.1")}
    (lock,) = await site.audit("sign_in_locked")
    assert (lock.username, lock.ip, lock.target, lock.details["scope"], lock.details["failures"]) == (
        "ivan", "127.0.0.1", "account:ivan", "account", ACCOUNT_RULE.lock_after)

    # The lock ends; the right password then works and clears the count: one typo is free again.
    site.wait(ACCOUNT_RULE.lock_s)
    assert (await client.login("ivan")).status == 200
    assert (await site.client().login("ivan", "one typo")).status == 401
    assert site.context.throttle.failures(ACCOUNT, "ivan") == 1
    # (The shared address still remembers its eleven failures: two seconds.)
    site.wait(site.context.throttle.retry_after("ivan", "127.0.0.1"))
    assert (await site.client().login("ivan")).status == 200


async def test_a_restart_does_not_lift_a_lock(site: Site) -> None:
    client = site.client()
    for i in range(ACCOUNT_RULE.lock_after):
        site.wait(site.context.throttle.retry_after("petr", "127.0.0.1"))
        assert (await client.login("petr", f"guess {i}")).status == 401
    await site.server.stop()
    server, context, engine = await start_site(site.data.config, site.data, site.now)
    again = Visitor(server.url)
    try:
        site.wait(60)
        response = await again.login("petr")
        assert response.status == 429
        # (Times in the log are kept to the microsecond: the second may round either way.)
        assert abs(int(response.headers["Retry-After"]) - (ACCOUNT_RULE.lock_s - 60)) <= 1
    finally:
        await again.close()
        await server.stop()
        await engine.dispose()


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
async def test_the_wait_message_goes_through_the_catalog(site: Site, pseudo_catalog: None) -> None:
    client = site.client()
    for _ in range(ACCOUNT_RULE.free):
        await client.login("sergey", "not it")
    async with client.send("POST", "/api/login", json={"username": "sergey", "password": "x"}) as answer:
        assert answer.status == 429
        assert (await answer.json())["error"] == "⟦Too many failed attempts. Try again in 1 second.⟧"


async def test_a_very_long_name_is_refused_like_any_other_and_logged_cut(site: Site) -> None:
    for length in (101, 5000):
        client = site.client()
        response = await client.login("я" * length, "whatever")
        assert response.status == 401
    entries = await site.audit("sign_in_failed")
    assert [(e.username, e.details["reason"]) for e in entries] == [("я" * 100, "unknown_user")] * 2
