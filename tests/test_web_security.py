"""Session cookies and sign-in throttling, without a server."""

from __future__ import annotations

from pbxbridge.web.sessions import (
    SESSION_LIFETIME_S,
    SessionData,
    SessionSigner,
    tokens_match,
)
from pbxbridge.web.throttle import ACCOUNT_RULE, LoginThrottle


def test_session_cookie_is_signed_and_expires() -> None:
    signer = SessionSigner("a long random secret")
    data = SessionData(user_id=7, password_tag="abcd", csrf="token", issued_at=1_000.0)
    cookie = signer.dumps(data)
    assert signer.loads(cookie, 1_000.0 + 60) == data
    # Expired, issued in the future, signed with another key, or tampered with: no session.
    assert signer.loads(cookie, 1_000.0 + SESSION_LIFETIME_S + 1) is None
    assert signer.loads(cookie, 1_000.0 - 60) is None
    assert SessionSigner("another secret").loads(cookie, 1_060.0) is None
    payload, signature = cookie.split(".")
    forged = SessionSigner("another secret").dumps(SessionData(1, "abcd", "token", 1_000.0)).split(".")[0]
    assert signer.loads(f"{forged}.{signature}", 1_060.0) is None
    assert signer.loads(payload, 1_060.0) is None
    assert signer.loads("garbage", 1_060.0) is None


def test_csrf_tokens_must_be_present_and_equal() -> None:
    assert tokens_match("abc", "abc")
    assert not tokens_match("abc", "abd")
    assert not tokens_match(None, "abc") and not tokens_match("", "") and not tokens_match("abc", None)


def test_each_failure_past_the_free_ones_doubles_the_wait() -> None:
    now = [0.0]
    throttle = LoginThrottle(clock=lambda: now[0])
    free = ACCOUNT_RULE.free
    waits = [throttle.failed("Anna", "10.0.0.1") or throttle.retry_after("anna", "10.0.0.1") for _ in range(free + 3)]
    assert waits[: free - 1] == [0.0] * (free - 1)
    assert waits[free - 1:] == [1.0, 2.0, 4.0, 8.0]
    # Per account (any case, from any address); other accounts from the same address are not held up.
    assert throttle.retry_after("anna", "10.0.0.1") == 8.0
    assert throttle.retry_after("ANNA ", "10.0.0.2") == 8.0
    assert throttle.retry_after("boris", "10.0.0.1") == 0.0
    now[0] = 8.0
    assert throttle.retry_after("anna", "10.0.0.1") == 0.0
    # The wait is capped until the lock; a correct password clears the account.
    for _ in range(ACCOUNT_RULE.lock_after - free - 4):
        throttle.failed("anna", "10.0.0.3")
    assert throttle.retry_after("anna", "10.0.0.1") == ACCOUNT_RULE.max_delay_s
    throttle.succeeded("ANNA", "10.0.0.1")
    assert throttle.retry_after("anna", "10.0.0.1") == 0.0
