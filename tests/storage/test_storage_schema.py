"""Migrations (app/storage/migrations) and the app's start on SQLite and PostgreSQL.

Golds: Alembic's own autogenerate comparison of the migrated database with tables.py (an
empty diff), and the revision a newer release would have left in alembic_version.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from fastapi.testclient import TestClient
from sqlalchemy import inspect, text

from app.main import check_database, create_app
from app.settings import Settings
from app.storage import SchemaTooNew, Storage
from app.storage.database import alembic_config
from app.storage.tables import metadata
from tests import conftest
from tests.conftest import make_settings

FUTURE = "9999_from_a_newer_release"
HEAD = "0004_directory_holdings"


def test_migration_matches_tables(storage: Storage) -> None:
    """The migrations (0001_initial, 0002_class_creators, 0003_ray_directory,
    0004_directory_holdings) create exactly the tables, columns, indexes and keys of tables.py."""
    with storage.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), metadata)
    assert diff == []


def test_migrate_twice_is_a_no_op(storage: Storage) -> None:
    """A second start on the same database finds it at the head revision and changes nothing."""
    storage.migrate()
    with storage.engine.connect() as conn:
        assert MigrationContext.configure(conn).get_current_revision() == HEAD


@pytest.fixture
def future_schema(storage: Storage) -> Iterator[Settings]:
    """The storage's database as a newer release left it (alembic_version ahead); restored
    afterwards (the PostgreSQL database is shared by the run)."""
    with storage.engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = :v"), {"v": FUTURE})
    try:
        yield storage.settings
    finally:
        with storage.engine.begin() as conn:
            conn.execute(text("UPDATE alembic_version SET version_num = :v"), {"v": HEAD})


def test_schema_newer_than_the_code_is_a_clear_error(future_schema: Settings) -> None:
    """migrate() refuses a database at an unknown (newer) revision, naming both revisions and
    what to do; nothing is changed."""
    other = Storage(future_schema)
    try:
        with pytest.raises(SchemaTooNew) as error:
            other.migrate()
    finally:
        other.close()
    message = str(error.value)
    assert FUTURE in message and f"'{HEAD}'" in message and "newer" in message
    assert "NN_PLAYGROUND_DATABASE_URL" in message


def test_server_refuses_to_start_on_a_newer_schema(future_schema: Settings) -> None:
    """The app's startup fails with SchemaTooNew (not a crash later), and the console
    script's check exits with the one-line message instead of a traceback."""
    with pytest.raises(SchemaTooNew), TestClient(create_app(future_schema)):
        pass
    with pytest.raises(SystemExit) as exit_:
        check_database(future_schema)
    assert str(exit_.value).startswith("nn-playground: the database ") and FUTURE in str(
        exit_.value
    )


def test_start_migrates_off_the_event_loop(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The lifespan creates data_dir and the SQLite file, migrates in a thread with no event
    loop running, and serves app.state.storage; the database is closed at shutdown."""
    loops: list[bool] = []
    closed: list[Storage] = []
    migrate, close = Storage.migrate, Storage.close

    def recording_migrate(self: Storage) -> None:
        try:
            asyncio.get_running_loop()
            loops.append(True)
        except RuntimeError:
            loops.append(False)
        migrate(self)

    def recording_close(self: Storage) -> None:
        closed.append(self)
        close(self)

    monkeypatch.setattr(Storage, "migrate", recording_migrate)
    monkeypatch.setattr(Storage, "close", recording_close)
    data_dir = tmp_path / "new" / "data"
    with TestClient(create_app(make_settings(data_dir=data_dir))) as client:
        storage = client.app.state.storage  # type: ignore[attr-defined]
        assert isinstance(storage, Storage) and storage.engine.dialect.name == "sqlite"
        assert (data_dir / "playground.db").is_file()
        assert storage.session_ids() == []
    assert loops == [False]
    assert closed == [storage]  # closed with the app


def test_start_on_postgresql(postgres_url: str, tmp_path: Path) -> None:
    """NN_PLAYGROUND_DATABASE_URL (database_url) points the app at PostgreSQL; it migrates on
    start and answers requests."""
    settings = make_settings(data_dir=tmp_path, database_url=postgres_url)
    with TestClient(create_app(settings)) as client:
        storage = client.app.state.storage  # type: ignore[attr-defined]
        assert storage.engine.dialect.name == "postgresql"
        assert isinstance(storage.session_ids("stored"), list)
        assert client.get("/health").status_code == 200
    assert not (tmp_path / "playground.db").exists()


def test_missing_postgresql_fails_naming_the_package(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without PostgreSQL's binaries the fixture fails (not skips) and says what to install."""
    monkeypatch.setattr(conftest.glob, "glob", lambda _pattern: [])
    with pytest.raises(pytest.fail.Exception) as failure:
        conftest.postgres_bindir()
    assert "apt-get install -y postgresql" in str(failure.value)


def downgraded_to_0001(storage: Storage) -> None:
    """The storage's database as release 0001_initial left it."""
    config = alembic_config()
    with storage.engine.begin() as conn:
        config.attributes["connection"] = conn
        command.downgrade(config, "0001_initial")


def class_columns(storage: Storage) -> set[str]:
    """The columns of the classes table as the database has them."""
    return {column["name"] for column in inspect(storage.engine).get_columns("classes")}


def test_0002_adds_the_class_creators_keeping_old_classes(storage: Storage) -> None:
    """A class stored by the 0001 schema survives the upgrade to 0002 with no creator (NULL),
    and the new columns take a creator."""
    downgraded_to_0001(storage)
    assert "owner_hash" not in class_columns(storage)
    with storage.engine.begin() as conn:
        conn.execute(text("INSERT INTO classes (code, teacher_hash, title, created_at) "
                          "VALUES ('OLD234', :h, 'Old', 1.0)"), {"h": "t" * 64})
    storage.migrate()
    assert {"owner_hash", "address"} <= class_columns(storage)
    with storage.engine.begin() as conn:
        old = conn.execute(text("SELECT code, owner_hash, address FROM classes")).one()
        conn.execute(text("UPDATE classes SET owner_hash = :o, address = '10.0.0.1'"),
                     {"o": "o" * 64})
    assert tuple(old) == ("OLD234", None, None)
    with storage.engine.connect() as conn:
        assert compare_metadata(MigrationContext.configure(conn), metadata) == []


def test_0002_keeps_a_creator_column_already_there(storage: Storage) -> None:
    """A 0001 database whose classes table already has owner_hash (added by hand) upgrades:
    0002 adds only what is missing, and the schema then equals tables.py."""
    downgraded_to_0001(storage)
    with storage.engine.begin() as conn:
        conn.execute(text("ALTER TABLE classes ADD COLUMN owner_hash VARCHAR(64)"))
    storage.migrate()
    assert {"owner_hash", "address"} <= class_columns(storage)
    with storage.engine.connect() as conn:
        assert MigrationContext.configure(conn).get_current_revision() == HEAD
        assert compare_metadata(MigrationContext.configure(conn), metadata) == []
