"""Alembic environment: the same migrations on SQLite (batch mode) and PostgreSQL.

:func:`sed.store.migrate.upgrade` hands in an open connection (``config.attributes``);
the ``alembic`` command line uses ``-x url=…`` or ``sqlalchemy.url`` instead::

    alembic -c sed/store/migrations/alembic.ini -x url=sqlite:///sed.sqlite revision --autogenerate -m "…"
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import context

from sed.store.tables import metadata


def _run(connection: sa.Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        render_as_batch=connection.dialect.name == "sqlite",  # SQLite cannot ALTER most things in place
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def _main() -> None:
    config = context.config
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    url = context.get_x_argument(as_dictionary=True).get("url") or config.get_main_option("sqlalchemy.url")
    if not url:
        raise SystemExit("alembic: give the database as -x url=sqlite:///sed.sqlite (or postgresql+psycopg://…)")
    if context.is_offline_mode():
        context.configure(url=url, target_metadata=metadata, literal_binds=True)
        with context.begin_transaction():
            context.run_migrations()
        return
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        _run(conn)
    engine.dispose()


_main()
