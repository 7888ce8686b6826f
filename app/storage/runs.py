"""Queries on the `runs` table (issue 10, saved runs); plain functions of an Engine.

Synchronous: call them through `await storage.call(fn, storage.engine, ...)`, a database thread,
never on the event loop. A run is immutable: inserted once, read, listed, deleted by its owner.
Reads use `reading(engine)`: on SQLite they never wait for the checkpoint writer's lock.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, func, insert, select
from sqlalchemy import delete as sql_delete

from app.storage.database import reading
from app.storage.tables import runs

# The columns a gallery row and a run's summary show (not the export: megabytes).
SUMMARY_COLUMNS = (
    "slug", "title", "public", "dataset", "problem", "shape", "parameters", "epochs",
    "optimizer", "train_loss", "test_loss", "created_at", "thumbnail", "thumbnail_size",
)
SORTS = ("test_loss", "created", "epochs")


@dataclass(frozen=True)
class RunRow:
    """One run's summary columns plus its owner hash; `export` only when asked for."""

    slug: str
    owner_hash: str
    source_session: str
    summary: dict[str, Any]
    export: bytes | None = None


def insert_run(engine: Engine, record: dict[str, Any], max_runs: int) -> int | None:
    """Store a new run (every column of the `runs` table) unless its owner already has
    `max_runs`: None when stored, else the owner's count (-1: the slug is taken, pick another).

    Count and insert share one transaction, so concurrent saves of one owner rarely pass the
    quota together (SQLite serializes writers; PostgreSQL may let one extra through).
    """
    owned = select(func.count()).select_from(runs).where(
        runs.c.owner_hash == record["owner_hash"]
    )
    with engine.begin() as connection:
        held = int(connection.execute(owned).scalar_one())
        if held >= max_runs:
            return held
        taken = connection.execute(select(runs.c.slug).where(runs.c.slug == record["slug"]))
        if taken.first() is not None:
            return -1
        connection.execute(insert(runs).values(**record))
    return None


def count_runs(engine: Engine, owner_hash: str) -> int:
    """How many runs this owner has saved (the max_runs_per_owner quota)."""
    with reading(engine) as connection:
        query = select(func.count()).select_from(runs).where(runs.c.owner_hash == owner_hash)
        return int(connection.execute(query).scalar_one())


def read_run(engine: Engine, slug: str, with_export: bool) -> RunRow | None:
    """A run by its slug (None when there is none), its gzip export too when asked."""
    columns = [runs.c[name] for name in SUMMARY_COLUMNS]
    columns += [runs.c.owner_hash, runs.c.source_session]
    if with_export:
        columns.append(runs.c.export)
    with reading(engine) as connection:
        row = connection.execute(select(*columns).where(runs.c.slug == slug)).mappings().first()
    if row is None:
        return None
    return RunRow(
        slug=row["slug"],
        owner_hash=row["owner_hash"],
        source_session=row["source_session"],
        summary={name: row[name] for name in SUMMARY_COLUMNS},
        export=row["export"] if with_export else None,
    )


def list_runs(
    engine: Engine, dataset: str | None, problem: str | None, sort: str, limit: int, offset: int
) -> list[dict[str, Any]]:
    """Public runs only, filtered, best first: lowest test loss (runs without one last), or
    newest, or most epochs; ties broken by age then slug, so pages never overlap."""
    query = select(*(runs.c[name] for name in SUMMARY_COLUMNS)).where(runs.c.public.is_(True))
    if dataset is not None:
        query = query.where(runs.c.dataset == dataset)
    if problem is not None:
        query = query.where(runs.c.problem == problem)
    if sort == "test_loss":
        # NULLS LAST by hand: SQLite and PostgreSQL order NULLs differently by default.
        order = [runs.c.test_loss.is_(None), runs.c.test_loss.asc(), runs.c.created_at.asc()]
    elif sort == "created":
        order = [runs.c.created_at.desc()]
    else:
        order = [runs.c.epochs.desc(), runs.c.created_at.asc()]
    query = query.order_by(*order, runs.c.slug).limit(limit).offset(offset)
    with reading(engine) as connection:
        return [dict(row) for row in connection.execute(query).mappings()]


def delete_run(engine: Engine, slug: str) -> bool:
    """Delete a run; whether it existed."""
    with engine.begin() as connection:
        return connection.execute(sql_delete(runs).where(runs.c.slug == slug)).rowcount > 0
