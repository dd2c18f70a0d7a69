"""User accounts: argon2 password hashes, roles, a manager's extension."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from pbxbridge.web.tables import MANAGER, ROLES, User

_HASHER = PasswordHasher()
# Verifying against this when the username is unknown keeps the answer's
# timing the same, so it does not tell which usernames exist.
_DUMMY_HASH: str | None = None


def use_hasher(hasher: PasswordHasher) -> None:
    """Hash new passwords with other argon2 parameters (a small host, or a test suite)."""
    global _HASHER, _DUMMY_HASH
    _HASHER = hasher
    _DUMMY_HASH = None


def _dummy_hash() -> str:
    global _DUMMY_HASH
    if _DUMMY_HASH is None:
        _DUMMY_HASH = _HASHER.hash("not a password anyone has")
    return _DUMMY_HASH
MIN_PASSWORD_LENGTH = 8


class UserError(ValueError):
    """A user that cannot be created or changed as asked."""


@dataclass(frozen=True, slots=True)
class SignedInUser:
    """Who is behind a request: enough to decide what they may see."""

    id: int
    username: str
    role: str
    extension: str | None
    # Changes when the password does, so a new password ends old sessions.
    password_tag: str
    # The web app's language the user chose; None: the browser's.
    language: str | None = None

    def as_json(self) -> dict[str, object]:
        """Public fields for /api/me."""
        return {
            "id": self.id, "username": self.username, "role": self.role, "extension": self.extension,
            "language": self.language,
        }


def password_tag(password_hash: str) -> str:
    """A short fingerprint of the stored hash, kept in the session cookie."""
    return hashlib.sha256(password_hash.encode()).hexdigest()[:16]


def signed_in(user: User) -> SignedInUser:
    """The request-side view of a user row."""
    return SignedInUser(
        user.id, user.username, user.role, user.extension, password_tag(user.password_hash), user.language
    )


def hash_password(password: str) -> str:
    """argon2id hash of a password (refuses short ones)."""
    if len(password) < MIN_PASSWORD_LENGTH:
        raise UserError(f"password must be at least {MIN_PASSWORD_LENGTH} characters")
    return _HASHER.hash(password)


def _check_role(role: str, extension: str | None) -> None:
    if role not in ROLES:
        raise UserError(f"role must be one of {', '.join(ROLES)}, got {role!r}")
    if role == MANAGER and not extension:
        raise UserError("a manager needs the extension of their handset")


async def add_user(
    session: AsyncSession, username: str, password: str, role: str, extension: str | None = None
) -> User:
    """Create a user; raises UserError for a taken name, bad role or short password."""
    username = username.strip()
    if not username:
        raise UserError("username must not be empty")
    _check_role(role, extension)
    if await find_user(session, username) is not None:
        raise UserError(f"user {username!r} already exists")
    user = User(
        username=username,
        password_hash=hash_password(password),
        role=role,
        extension=extension or None,
        created_at=datetime.now(UTC),
    )
    session.add(user)
    await session.flush()
    return user


async def find_user(session: AsyncSession, username: str) -> User | None:
    """The user with that name, or None."""
    return (await session.execute(select(User).where(User.username == username))).scalar_one_or_none()


async def list_users(session: AsyncSession) -> list[User]:
    """Every user, by name."""
    return list((await session.execute(select(User).order_by(User.username))).scalars())


async def set_password(session: AsyncSession, username: str, password: str) -> User:
    """Give a user a new password (which ends their open sessions)."""
    user = await find_user(session, username)
    if user is None:
        raise UserError(f"no user {username!r}")
    user.password_hash = hash_password(password)
    await session.flush()
    return user


async def set_language(session: AsyncSession, user_id: int, language: str | None) -> User:
    """Keep the user's own language for the web app (None: follow the browser again)."""
    user = await session.get(User, user_id)
    if user is None:
        raise UserError(f"no user with id {user_id}")
    user.language = language
    await session.flush()
    return user


async def authenticate(session: AsyncSession, username: str, password: str) -> User | None:
    """The user if the password matches, else None (same work either way)."""
    user = await find_user(session, username.strip())
    try:
        _HASHER.verify(user.password_hash if user else _dummy_hash(), password)
    except (VerificationError, InvalidHashError):
        return None
    if user is None:
        return None
    if _HASHER.check_needs_rehash(user.password_hash):
        user.password_hash = _HASHER.hash(password)
    return user
