"""Passwords (argon2id) and bearer tokens.

A login hands the client a random token once; the store keeps only its SHA-256. Every
request except ``/healthz``, the login itself and the dashboard's static files carries
``Authorization: Bearer <token>``.
"""

from __future__ import annotations

import hashlib
import secrets

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from sed.store import Role, Store, User

#: Random bytes in a token (256 bits).
TOKEN_BYTES = 32
#: Shortest accepted password, characters.
MIN_PASSWORD_CHARS = 10

_hasher = PasswordHasher()  # argon2id with the library's (RFC 9106 low-memory) parameters
#: Verified against when the user does not exist, so a wrong name costs as long as a wrong password.
_DUMMY_HASH = _hasher.hash("sed: no such user")


def hash_password(password: str) -> str:
    """The argon2id PHC string of a password."""
    return _hasher.hash(password)


def check_password_strength(password: str, *, username: str) -> str | None:
    """Why a password is refused, or ``None`` when it is acceptable."""
    if len(password) < MIN_PASSWORD_CHARS:
        return f"password has {len(password)} characters; at least {MIN_PASSWORD_CHARS} required"
    if password.lower() == username.lower():
        return "password equals the username"
    return None


def authenticate(store: Store, username: str, password: str) -> User | None:
    """The user whose password this is, or ``None``; rehashes when the parameters changed."""
    stored = store.accounts.password_hash(username)
    try:
        _hasher.verify(stored or _DUMMY_HASH, password)
    except (VerificationError, InvalidHashError):
        return None
    if stored is None:
        return None
    if _hasher.check_needs_rehash(stored):
        store.accounts.set_password_hash(username, _hasher.hash(password))
    return store.accounts.get_user(username)


def token_digest(token: str) -> str:
    """What the store keeps of a token: its SHA-256, hex."""
    return hashlib.sha256(token.encode()).hexdigest()


def issue_token(store: Store, username: str, *, label: str, now_ns: int, ttl_s: float | None) -> tuple[str, int | None]:
    """Create a token for a user; returns it (shown once) and its expiry (UTC ns, ``None``: never)."""
    token = secrets.token_urlsafe(TOKEN_BYTES)
    expires_at_ns = None if ttl_s is None else now_ns + int(ttl_s * 1e9)
    store.accounts.add_token(
        token_digest(token), username=username, label=label, now_ns=now_ns, expires_at_ns=expires_at_ns
    )
    return token, expires_at_ns


def may(user: User, role: Role) -> bool:
    """Whether ``user`` holds at least ``role`` (admins may do what operators may)."""
    return user.role is Role.ADMIN or user.role is role


__all__ = [
    "MIN_PASSWORD_CHARS",
    "authenticate",
    "check_password_strength",
    "hash_password",
    "issue_token",
    "may",
    "token_digest",
]
