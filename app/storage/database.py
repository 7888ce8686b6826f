"""The engine (SQLite under data_dir by default, or NN_PLAYGROUND_DATABASE_URL) and migrations.

SQLite runs in WAL mode (readers never wait for the writer) with a busy timeout, and every
transaction starts with BEGIN IMMEDIATE: a deferred transaction that reads and then writes can
fail at once with "database is locked" when another connection wrote in between, whatever the
timeout; an immediate one takes the write lock first and waits for it up to the busy timeout.
Connections marked read-only (`Storage.reading()`: execution option READ_ONLY) begin deferred
instead, so reads never queue behind a write.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.script.revision import RevisionError
from alembic.util.exc import CommandError
from sqlalchemy import Connection, Engine, create_engine, event, make_url

from app.settings import Settings

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
SQLITE_BUSY_TIMEOUT_MS = 30_000
READ_ONLY = "nn_read_only"  # execution option of a connection that only reads


class SchemaTooNew(RuntimeError):
    """The database was migrated by a newer release than this code: refuse to touch it."""


def database_url(settings: Settings) -> str:
    """settings.database_url, or the SQLite file playground.db in settings.data_dir."""
    if settings.database_url:
        return settings.database_url
    return f"sqlite:///{Path(settings.data_dir).resolve() / 'playground.db'}"


def make_engine(settings: Settings) -> Engine:
    """An engine whose pool holds a connection for each database thread (and the writer's)."""
    url = make_url(database_url(settings))
    if url.get_backend_name() == "sqlite":
        if url.database and url.database != ":memory:":
            Path(url.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(
            url,
            pool_size=settings.database_threads + 2,
            connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000},
        )
        event.listen(engine, "connect", _sqlite_connect)
        event.listen(engine, "begin", _sqlite_begin)
        return engine
    return create_engine(
        url, pool_size=settings.database_threads + 2, pool_pre_ping=True
    )


def _sqlite_connect(dbapi_connection: Any, _record: Any) -> None:
    """WAL, a busy timeout, foreign keys (for ON DELETE CASCADE); we emit BEGIN ourselves."""
    dbapi_connection.isolation_level = None  # the driver's own implicit BEGIN is off
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=NORMAL")  # WAL: durable at checkpoints, never corrupt
    cursor.close()


def _sqlite_begin(connection: Any) -> None:
    """Take the write lock at the start of every transaction but a read-only connection's
    (see the module docstring)."""
    read_only = connection.get_execution_options().get(READ_ONLY, False)
    connection.exec_driver_sql("BEGIN" if read_only else "BEGIN IMMEDIATE")


@contextmanager
def reading(engine: Engine) -> Iterator[Connection]:
    """A connection for reads only: on SQLite its transaction does not take the write lock,
    so it never waits for the checkpoint writer (use engine.begin() to write)."""
    with engine.connect() as conn:
        yield conn.execution_options(**{READ_ONLY: True})


def alembic_config() -> Config:
    """The Alembic configuration of app/storage/migrations (no alembic.ini)."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    return config


def migrate(engine: Engine) -> None:
    """Upgrade the schema to the newest revision; SchemaTooNew when the database is ahead."""
    config = alembic_config()
    script = ScriptDirectory.from_config(config)
    head = script.get_current_head()
    with engine.begin() as connection:
        current = MigrationContext.configure(connection).get_current_revision()
        if current is not None and current != head:
            try:
                known = script.get_revision(current) is not None
            except (CommandError, RevisionError):
                known = False
            if not known:
                raise SchemaTooNew(
                    f"the database {engine.url.render_as_string(hide_password=True)} has "
                    f"schema revision {current!r}, newer than this release knows (its newest "
                    f"is {head!r}): run a release that knows it, or point "
                    "NN_PLAYGROUND_DATABASE_URL / NN_PLAYGROUND_DATA_DIR at another database"
                )
        config.attributes["connection"] = connection
        command.upgrade(config, "head")
