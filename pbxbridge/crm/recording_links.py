"""Signed, expiring addresses of recordings: what a CRM in the cloud fetches a call's sound from.

amoCRM plays a call's recording from the ``link`` it was given, without signing in to pbxbridge.
The address names the recording and when it stops working, signed with the web app's secret key
(HMAC-SHA256): changing either breaks the signature, and nothing else in it gives access.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from urllib.parse import urlencode

PATH_PREFIX = "/recordings/shared/"
DAY_S = 86_400


def _key(secret_key: str) -> bytes:
    # Its own key, derived from the web secret: a session cookie's signature is never a link's.
    return hashlib.sha256(("pbxbridge-recording-link:" + secret_key).encode()).digest()


def signature(secret_key: str, recording_id: int, expires: int) -> str:
    """The signature over the recording's id and the expiry (Unix seconds), URL-safe."""
    digest = hmac.new(_key(secret_key), f"{recording_id}.{expires}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def signed_url(public_url: str, secret_key: str, recording_id: int, expires: int) -> str:
    """The recording's address on the web app, valid until ``expires``."""
    query = urlencode({"expires": expires, "signature": signature(secret_key, recording_id, expires)})
    return f"{public_url.rstrip('/')}{PATH_PREFIX}{recording_id}?{query}"


def is_valid(secret_key: str, recording_id: int, expires: str, given: str, now: float) -> bool:
    """Whether a link's expiry and signature are its own and it has not expired."""
    if not secret_key or not expires.isdigit() or len(expires) > 12:
        return False
    expected = signature(secret_key, recording_id, int(expires))
    return hmac.compare_digest(expected.encode(), given.encode()) and now <= int(expires)
