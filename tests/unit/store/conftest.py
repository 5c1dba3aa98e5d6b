"""The store under test runs on SQLite and on a real PostgreSQL server.

``scripts/test.sh`` starts a throwaway cluster (``scripts/start-postgres.sh``) and exports
``SED_TEST_POSTGRES_URL``; each test gets a schema of its own there, dropped afterwards.
Without the variable the PostgreSQL cases skip, saying so; under CI (``CI`` set) they fail.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from sed.store import Store

POSTGRES_URL_ENV = "SED_TEST_POSTGRES_URL"


def postgres_url() -> str | None:
    return os.environ.get(POSTGRES_URL_ENV) or None


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty database URL on each backend."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'sed.sqlite'}"
        return
    base = postgres_url()
    if base is None:
        reason = f"no PostgreSQL server: {POSTGRES_URL_ENV} unset (scripts/test.sh starts one)"
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(base)
    with admin.begin() as conn:
        conn.execute(sa.text(f"CREATE SCHEMA {schema}"))
    separator = "&" if "?" in base else "?"
    try:
        yield f"{base}{separator}options=-csearch_path%3D{schema}"
    finally:
        with admin.begin() as conn:
            conn.execute(sa.text(f"DROP SCHEMA {schema} CASCADE"))
        admin.dispose()


@pytest.fixture
def store(db_url: str) -> Iterator[Store]:
    s = Store(db_url)
    yield s
    s.close()
