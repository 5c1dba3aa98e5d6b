"""An API on a temporary SQLite store, with an admin and an operator signed in."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from sed.api.app import create_app
from sed.api.auth import hash_password, issue_token
from sed.config import ServerConfig, parse_config
from sed.store import Role, Store

PASSWORD = "correct horse battery"
_HASH = hash_password(PASSWORD)  # argon2 is slow on purpose: hash once per session


@pytest.fixture
def make_config(tmp_path: Path) -> Callable[..., ServerConfig]:
    def make(**sections: dict[str, Any]) -> ServerConfig:
        (tmp_path / "authorized").mkdir(exist_ok=True)
        (tmp_path / "fusion.key_secret").write_text("x")
        raw: dict[str, Any] = {
            "site": {"origin_lat_deg": 49.7475, "origin_lon_deg": 13.3776},
            "fusion": {
                "secret_key_file": str(tmp_path / "fusion.key_secret"),
                "authorized_keys_dir": str(tmp_path / "authorized"),
            },
            "store": {"url": f"sqlite:///{tmp_path / 'api.sqlite'}"},
        }
        for name, values in sections.items():
            raw[name] = {**raw.get(name, {}), **values}
        return parse_config(raw, ServerConfig)

    return make


@pytest.fixture
def config(make_config: Callable[..., ServerConfig]) -> ServerConfig:
    return make_config()


@pytest.fixture
def store(config: ServerConfig) -> Iterator[Store]:
    s = Store(config.store.url)
    yield s
    s.close()


@pytest.fixture
def client(config: ServerConfig, store: Store) -> Iterator[TestClient]:
    with TestClient(create_app(config, store)) as c:  # runs the lifespan: live feed, webhooks, retention
        yield c


def _signed_in(store: Store, username: str, role: Role) -> dict[str, str]:
    if store.accounts.get_user(username) is None:
        store.accounts.add_user(username, password_hash=_HASH, role=role, now_ns=time.time_ns())
    token, _ = issue_token(store, username, label="test", now_ns=time.time_ns(), ttl_s=3600)
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def admin(store: Store) -> dict[str, str]:
    """Headers of a signed-in admin."""
    return _signed_in(store, "alice", Role.ADMIN)


@pytest.fixture
def operator(store: Store) -> dict[str, str]:
    """Headers of a signed-in operator."""
    return _signed_in(store, "oscar", Role.OPERATOR)
