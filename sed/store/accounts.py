"""Users, their API tokens, and the audit log of who touched what (SQL only; hashing lives in the API).

Tokens are random strings handed to the client once; only their SHA-256 is stored, so a
copy of the database does not let anyone in.
"""

from __future__ import annotations

import dataclasses
import enum

import sqlalchemy as sa

from sed.errors import SedError
from sed.store import tables as t


class ConflictError(SedError):
    """A write would duplicate something that must be unique (a username, a rule name)."""


class Role(enum.StrEnum):
    """Operators read, review and listen; admins also manage sensors, rules and users."""

    OPERATOR = "operator"
    ADMIN = "admin"


@dataclasses.dataclass(frozen=True, kw_only=True)
class User:
    username: str
    role: Role
    created_at_ns: int


@dataclasses.dataclass(frozen=True, kw_only=True)
class AuditEntry:
    entry_id: int
    at_ns: int
    username: str
    action: str
    target: str
    remote_addr: str | None


class Accounts:
    """Users, tokens and the audit log, on the store's engine."""

    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine

    # ------------------------------------------------------------------ users

    def add_user(self, username: str, *, password_hash: str, role: Role, now_ns: int) -> User:
        """Create a user.

        Raises
        ------
        ConflictError
            If ``username`` is taken.
        """
        with self.engine.begin() as conn:
            exists = conn.execute(sa.select(t.users.c.username).where(t.users.c.username == username)).first()
            if exists is not None:
                raise ConflictError(f"user {username!r} already exists")
            conn.execute(
                t.users.insert().values(
                    username=username, password_hash=password_hash, role=str(role), created_at_ns=now_ns
                )
            )
        return User(username=username, role=role, created_at_ns=now_ns)

    def password_hash(self, username: str) -> str | None:
        with self.engine.connect() as conn:
            query = sa.select(t.users.c.password_hash).where(t.users.c.username == username)
            return conn.execute(query).scalar_one_or_none()

    def set_password_hash(self, username: str, password_hash: str) -> bool:
        with self.engine.begin() as conn:
            statement = t.users.update().where(t.users.c.username == username).values(password_hash=password_hash)
            return conn.execute(statement).rowcount == 1

    def get_user(self, username: str) -> User | None:
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(t.users).where(t.users.c.username == username)).mappings().first()
        return None if row is None else _user(row)

    def list_users(self) -> list[User]:
        with self.engine.connect() as conn:
            return [_user(row) for row in conn.execute(sa.select(t.users).order_by(t.users.c.username)).mappings()]

    def remove_user(self, username: str) -> bool:
        """Delete a user and every token of theirs."""
        with self.engine.begin() as conn:
            conn.execute(t.tokens.delete().where(t.tokens.c.username == username))
            return conn.execute(t.users.delete().where(t.users.c.username == username)).rowcount == 1

    def count_admins(self) -> int:
        with self.engine.connect() as conn:
            query = sa.select(sa.func.count()).select_from(t.users).where(t.users.c.role == str(Role.ADMIN))
            return int(conn.execute(query).scalar_one())

    # ------------------------------------------------------------------ tokens

    def add_token(
        self, token_sha256: str, *, username: str, label: str, now_ns: int, expires_at_ns: int | None
    ) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                t.tokens.insert().values(
                    token_sha256=token_sha256,
                    username=username,
                    label=label,
                    created_at_ns=now_ns,
                    expires_at_ns=expires_at_ns,
                )
            )

    def user_for_token(self, token_sha256: str, *, now_ns: int) -> User | None:
        """The user a token belongs to, if the token exists and has not expired."""
        query = (
            sa.select(t.users)
            .join(t.tokens, t.tokens.c.username == t.users.c.username)
            .where(t.tokens.c.token_sha256 == token_sha256)
            .where(sa.or_(t.tokens.c.expires_at_ns.is_(None), t.tokens.c.expires_at_ns > now_ns))
        )
        with self.engine.connect() as conn:
            row = conn.execute(query).mappings().first()
        return None if row is None else _user(row)

    def revoke_token(self, token_sha256: str) -> bool:
        with self.engine.begin() as conn:
            return conn.execute(t.tokens.delete().where(t.tokens.c.token_sha256 == token_sha256)).rowcount == 1

    def delete_expired_tokens(self, *, now_ns: int) -> int:
        with self.engine.begin() as conn:
            statement = t.tokens.delete().where(
                t.tokens.c.expires_at_ns.is_not(None), t.tokens.c.expires_at_ns <= now_ns
            )
            return conn.execute(statement).rowcount

    # ------------------------------------------------------------------ audit

    def audit(self, *, username: str, action: str, target: str, at_ns: int, remote_addr: str | None = None) -> None:
        """Append one entry to the audit log (committed before the caller proceeds)."""
        with self.engine.begin() as conn:
            conn.execute(
                t.audit_log.insert().values(
                    at_ns=at_ns, username=username, action=action, target=target[:128], remote_addr=remote_addr
                )
            )

    def audit_entries(
        self,
        *,
        username: str | None = None,
        action: str | None = None,
        target: str | None = None,
        since_ns: int | None = None,
        limit: int = 100,
    ) -> list[AuditEntry]:
        """Audit log entries, newest first."""
        query = sa.select(t.audit_log).order_by(t.audit_log.c.entry_id.desc()).limit(limit)
        if username is not None:
            query = query.where(t.audit_log.c.username == username)
        if action is not None:
            query = query.where(t.audit_log.c.action == action)
        if target is not None:
            query = query.where(t.audit_log.c.target == target)
        if since_ns is not None:
            query = query.where(t.audit_log.c.at_ns >= since_ns)
        with self.engine.connect() as conn:
            return [AuditEntry(**row) for row in conn.execute(query).mappings()]


def _user(row: sa.RowMapping) -> User:
    return User(username=row["username"], role=Role(row["role"]), created_at_ns=row["created_at_ns"])


__all__ = ["Accounts", "AuditEntry", "ConflictError", "Role", "User"]
