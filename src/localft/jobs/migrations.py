"""Named, ordered schema migrations, applied once by `Store.open()`.

Each migration runs in its own transaction and is recorded in `localft_migrations`; a database that already has
a name skips it. Several processes may open the same database at once (a server and `localft worker`s): SQLite
serialises them with `BEGIN IMMEDIATE` (see store.py), PostgreSQL with a transaction-scoped advisory lock.
Add new migrations at the end; never edit or reorder applied ones.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from sqlalchemy import Connection, Engine, inspect, select, text

from localft.jobs import schema

Migration = Callable[[Connection], None]

_PG_LOCK_KEY = 7_351_442  # arbitrary constant shared by every localft process


def m001_initial(conn: Connection) -> None:
    """Files, jobs, events, checkpoints and fine-tuned models."""
    for table in (schema.files, schema.jobs, schema.events, schema.checkpoints, schema.models):
        table.create(conn, checkfirst=True)


def m002_event_order_index(conn: Connection) -> None:
    """Event pages are read per job in insertion order: index (job_id, seq) together."""
    # Plain DDL: an `Index` object would attach itself to the shared Table and leak into m001 on the next database.
    conn.execute(text("CREATE INDEX IF NOT EXISTS ix_localft_events_job_seq ON localft_events (job_id, seq)"))


def m003_projects(conn: Connection) -> None:
    """Files, jobs and fine-tuned models belong to the project of the key that made them (NULL: none)."""
    # A new database got the column from m001, which creates today's tables: add it only where it is missing.
    for table in (schema.files, schema.jobs, schema.models):
        if "project" not in {column["name"] for column in inspect(conn).get_columns(table.name)}:
            conn.execute(text(f"ALTER TABLE {table.name} ADD COLUMN project VARCHAR(64)"))
        conn.execute(text(f"CREATE INDEX IF NOT EXISTS ix_{table.name}_project ON {table.name} (project)"))


def m004_workers_and_meta(conn: Connection) -> None:
    """Live workers (what `localft workers` lists) and facts about the installation (its data folder's id)."""
    for table in (schema.workers, schema.meta):
        table.create(conn, checkfirst=True)


MIGRATIONS: list[tuple[str, Migration]] = [
    ("m001_initial", m001_initial),
    ("m002_event_order_index", m002_event_order_index),
    ("m003_projects", m003_projects),
    ("m004_workers_and_meta", m004_workers_and_meta),
]


def migrate(engine: Engine) -> list[str]:
    """Apply the migrations this database lacks, in order; returns the names applied now."""
    applied_now: list[str] = []
    with engine.begin() as conn:
        _lock(conn)
        schema.schema_migrations.create(conn, checkfirst=True)
    for name, step in MIGRATIONS:
        with engine.begin() as conn:
            _lock(conn)
            done = conn.execute(
                select(schema.schema_migrations.c.name).where(schema.schema_migrations.c.name == name)
            ).first()
            if done is not None:
                continue
            step(conn)
            conn.execute(schema.schema_migrations.insert().values(name=name, applied_at=int(time.time())))
            applied_now.append(name)
    return applied_now


def applied(engine: Engine) -> list[str]:
    """Names of the migrations recorded in this database, in the order they were defined."""
    if not inspect(engine).has_table(schema.schema_migrations.name):
        return []
    with engine.connect() as conn:
        names = set(conn.execute(select(schema.schema_migrations.c.name)).scalars())
    return [name for name, _ in MIGRATIONS if name in names]


def _lock(conn: Connection) -> None:
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_LOCK_KEY})
