"""Alembic schema migrations of the sed store (SQLite and PostgreSQL); applied by :mod:`sed.store.migrate`."""
