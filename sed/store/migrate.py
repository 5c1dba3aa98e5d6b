"""Bring a database to the current schema with Alembic, safely when several processes start at once.

``sed fusion`` and ``sed api`` may open the same database at the same moment; the upgrade
runs under a lock (a PostgreSQL advisory lock, or an ``flock`` beside the SQLite file)
so only one of them migrates and the other finds the schema current.
"""

from __future__ import annotations

import contextlib
import fcntl
from collections.abc import Iterator
from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

MIGRATIONS_DIR = Path(__file__).with_name("migrations")
#: Arbitrary 64-bit key of the PostgreSQL advisory lock that serialises migrations.
ADVISORY_LOCK_KEY = 0x5ED_0001
#: Revision whose tables a database made before migrations existed already has.
BASELINE_REVISION = "0001"


def _alembic_config(connection: sa.Connection) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["connection"] = connection
    return config


def head_revision() -> str:
    """The newest revision the code knows."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    head = ScriptDirectory.from_config(config).get_current_head()
    assert head is not None
    return head


def current_revision(engine: sa.Engine) -> str | None:
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def upgrade(engine: sa.Engine) -> None:
    """Apply every missing migration (no-op when the schema is current)."""
    if current_revision(engine) == head_revision():
        return
    with _migration_lock(engine), engine.connect() as conn:
        config = _alembic_config(conn)
        inspector = sa.inspect(conn)
        if inspector.has_table("incidents") and not inspector.has_table("alembic_version"):
            command.stamp(config, BASELINE_REVISION)  # a pre-migration database: its tables are revision 0001
        command.upgrade(config, "head")
        conn.commit()


@contextlib.contextmanager
def _migration_lock(engine: sa.Engine) -> Iterator[None]:
    if engine.dialect.name == "postgresql":
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT pg_advisory_lock(:key)"), {"key": ADVISORY_LOCK_KEY})
            try:
                yield
            finally:
                conn.execute(sa.text("SELECT pg_advisory_unlock(:key)"), {"key": ADVISORY_LOCK_KEY})
                conn.commit()
        return
    database = engine.url.database
    if not database or database == ":memory:":
        yield
        return
    with open(f"{database}.migrate-lock", "a+b") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


__all__ = ["current_revision", "head_revision", "upgrade"]
