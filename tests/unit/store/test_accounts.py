"""Users, tokens and the audit log on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest

from sed.store import ConflictError, Role, Store


def test_users_are_unique_and_removal_revokes_their_tokens(store: Store) -> None:
    store.accounts.add_user("ann", password_hash="h1", role=Role.ADMIN, now_ns=1)
    with pytest.raises(ConflictError, match="'ann' already exists"):
        store.accounts.add_user("ann", password_hash="h2", role=Role.OPERATOR, now_ns=2)
    store.accounts.add_user("bob", password_hash="h3", role=Role.OPERATOR, now_ns=3)
    assert [(u.username, u.role) for u in store.accounts.list_users()] == [("ann", Role.ADMIN), ("bob", Role.OPERATOR)]
    assert store.accounts.password_hash("ann") == "h1"
    assert store.accounts.count_admins() == 1
    store.accounts.add_token("d" * 64, username="bob", label="login", now_ns=3, expires_at_ns=None)
    assert store.accounts.remove_user("bob") is True
    assert store.accounts.user_for_token("d" * 64, now_ns=4) is None
    assert store.accounts.get_user("bob") is None


def test_token_is_valid_until_it_expires_or_is_revoked(store: Store) -> None:
    store.accounts.add_user("ann", password_hash="h", role=Role.OPERATOR, now_ns=1)
    store.accounts.add_token("a" * 64, username="ann", label="login", now_ns=10, expires_at_ns=100)
    store.accounts.add_token("b" * 64, username="ann", label="prometheus", now_ns=10, expires_at_ns=None)
    user = store.accounts.user_for_token("a" * 64, now_ns=99)
    assert user is not None and user.username == "ann" and user.role is Role.OPERATOR
    assert store.accounts.user_for_token("a" * 64, now_ns=100) is None
    assert store.accounts.delete_expired_tokens(now_ns=100) == 1
    assert store.accounts.user_for_token("b" * 64, now_ns=2**62) is not None
    assert store.accounts.revoke_token("b" * 64) is True
    assert store.accounts.user_for_token("b" * 64, now_ns=11) is None


def test_audit_log_is_newest_first_and_filterable(store: Store) -> None:
    store.accounts.audit(username="ann", action="clip.play", target="pole-1:1", at_ns=5, remote_addr="10.0.0.7")
    store.accounts.audit(username="bob", action="login", target="-", at_ns=6)
    store.accounts.audit(username="ann", action="clip.play", target="pole-2:1", at_ns=7)
    entries = store.accounts.audit_entries()
    assert [(e.username, e.target) for e in entries] == [("ann", "pole-2:1"), ("bob", "-"), ("ann", "pole-1:1")]
    assert entries[-1].remote_addr == "10.0.0.7"
    plays = store.accounts.audit_entries(action="clip.play", target="pole-1:1")
    assert [(e.username, e.at_ns) for e in plays] == [("ann", 5)]
    assert [e.at_ns for e in store.accounts.audit_entries(since_ns=6, username="bob")] == [6]
