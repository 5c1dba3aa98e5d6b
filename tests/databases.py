"""Databases for tests: SQLite in a temporary folder, or a schema of its own on a real PostgreSQL server.

``scripts/test.sh`` starts a throwaway cluster (``scripts/start-postgres.sh``) and exports
``SED_TEST_POSTGRES_URL``; each test gets a fresh schema there, dropped afterwards.
Without the variable the PostgreSQL cases skip, saying so; under CI (``CI`` set) they fail.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

POSTGRES_URL_ENV = "SED_TEST_POSTGRES_URL"
BACKENDS = ("sqlite", "postgresql")


@contextlib.contextmanager
def database_url(backend: str, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty database URL on ``backend`` ("sqlite" or "postgresql"), dropped on exit."""
    if backend == "sqlite":
        yield f"sqlite:///{tmp_path / 'sed.sqlite'}"
        return
    base = os.environ.get(POSTGRES_URL_ENV)
    if not base:
        reason = f'no PostgreSQL server: {POSTGRES_URL_ENV} unset (eval "$(scripts/start-postgres.sh)")'
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
