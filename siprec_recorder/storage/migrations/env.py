"""Alembic environment of the index database.

The recorder runs migrations itself (:func:`siprec_recorder.storage.migrations.upgrade`), on a
connection it has already locked, and hands that connection in ``config.attributes``. The
``alembic`` command line (for autogenerate, see README.md beside this file) gets a URL instead,
from ``-x url=...`` or ``SIPREC_DATABASE_URL``.
"""

from __future__ import annotations

import os

from alembic import context
from sqlalchemy import Connection, create_engine, pool

from siprec_recorder.storage.migrations.metadata import include_object, target_metadata


def _configure_and_run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata(),
        include_object=include_object,
        # SQLite has almost no ALTER TABLE: changes to a table are a copy-and-move batch.
        render_as_batch=True,
        compare_type=True,
        compare_server_default=False,
    )
    with context.begin_transaction():
        context.run_migrations()


def _sync_url() -> str:
    url = context.get_x_argument(as_dictionary=True).get("url") or os.environ.get(
        "SIPREC_DATABASE_URL", ""
    )
    if not url:
        raise SystemExit("give the database: alembic -x url=sqlite:///path/index.sqlite3 ...")
    # The command line runs synchronously; the recorder's async drivers have sync siblings.
    return url.replace("+aiosqlite", "").replace("+asyncpg", "+psycopg")


connection = context.config.attributes.get("connection")
if connection is not None:
    _configure_and_run(connection)
else:
    engine = create_engine(_sync_url(), poolclass=pool.NullPool)
    with engine.connect() as conn:
        _configure_and_run(conn)
