"""Signed session cookies and CSRF tokens (no session store; sign-outs are remembered by signed_out)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
from dataclasses import dataclass

SESSION_COOKIE = "pbxb_session"
# Readable by the page's script, which echoes it in the X-CSRF-Token header.
CSRF_COOKIE = "pbxb_csrf"
CSRF_HEADER = "X-CSRF-Token"
CSRF_FIELD = "csrf_token"
SESSION_LIFETIME_S = 12 * 3600


@dataclass(frozen=True, slots=True)
class SessionData:
    """What the session cookie carries."""

    user_id: int
    password_tag: str
    csrf: str
    issued_at: float


def new_token() -> str:
    """A random URL-safe token."""
    return secrets.token_urlsafe(32)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class SessionSigner:
    """Signs and checks session cookies with the configured secret key (HMAC-SHA256)."""

    def __init__(self, secret_key: str) -> None:
        self._key = hashlib.sha256(("pbxbridge-session:" + secret_key).encode()).digest()

    def _sign(self, payload: str) -> str:
        return _b64(hmac.new(self._key, payload.encode(), hashlib.sha256).digest())

    def dumps(self, data: SessionData) -> str:
        """The cookie value for a session."""
        payload = _b64(
            json.dumps(
                {"u": data.user_id, "p": data.password_tag, "c": data.csrf, "t": data.issued_at},
                separators=(",", ":"),
            ).encode()
        )
        return f"{payload}.{self._sign(payload)}"

    def loads(self, value: str, now: float) -> SessionData | None:
        """The session in a cookie, or None when forged, malformed or expired."""
        payload, _, signature = value.partition(".")
        if not payload or not signature or not hmac.compare_digest(signature, self._sign(payload)):
            return None
        try:
            raw = json.loads(_unb64(payload))
            data = SessionData(int(raw["u"]), str(raw["p"]), str(raw["c"]), float(raw["t"]))
        except (ValueError, KeyError, TypeError):
            return None
        if not 0 <= now - data.issued_at <= SESSION_LIFETIME_S:
            return None
        return data


def tokens_match(given: str | None, expected: str | None) -> bool:
    """Constant-time comparison of two CSRF tokens; missing ones never match."""
    if not given or not expected:
        return False
    return hmac.compare_digest(given.encode(), expected.encode())
