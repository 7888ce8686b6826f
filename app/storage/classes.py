"""Queries of the classroom (issue 10): the `classes` table and the sessions' class columns.

Plain synchronous functions of an Engine: call them through
`await storage.call(fn, storage.engine, ...)` (a database thread), never on the event loop.
Reads use `reading(engine)`: on SQLite they never wait for the checkpoint writer's lock.
A class keeps only the SHA-256 of its teacher token (as owner tokens, app/api/owners.py).
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Engine, func, insert, select, update
from sqlalchemy import delete as sql_delete
from sqlalchemy.exc import IntegrityError

from app.storage.database import reading
from app.storage.tables import classes, sessions


@dataclass(frozen=True)
class ClassRow:
    """One class as stored."""

    code: str
    teacher_hash: str
    title: str
    created_at: float
    preset: str | None  # JSON of the last pushed config


@dataclass(frozen=True)
class ClassCounts:
    """How many classes exist: in all, created with one owner token, from one address
    (classes.owner_hash and address, revision 0002: the quotas hold across restarts)."""

    total: int
    by_owner: int
    by_address: int


def insert_class(
    engine: Engine, row: ClassRow, owner_hash: str | None, address: str
) -> bool:
    """Store a new class; False when its code is taken (the caller draws another)."""
    try:
        with engine.begin() as connection:
            connection.execute(insert(classes).values(
                code=row.code, teacher_hash=row.teacher_hash, title=row.title,
                created_at=row.created_at, preset=row.preset, owner_hash=owner_hash,
                address=address,
            ))
    except IntegrityError:
        return False
    return True


def count_classes(engine: Engine, owner_hash: str | None, address: str) -> ClassCounts:
    """Classes in all, created with this owner token, created from this address."""
    count = select(func.count()).select_from(classes)
    with reading(engine) as connection:
        total = int(connection.execute(count).scalar_one())
        by_owner = 0
        if owner_hash is not None:
            by_owner = int(connection.execute(
                count.where(classes.c.owner_hash == owner_hash)
            ).scalar_one())
        by_address = int(connection.execute(count.where(classes.c.address == address))
                         .scalar_one())
    return ClassCounts(total, by_owner, by_address)


def read_class(engine: Engine, code: str) -> ClassRow | None:
    """A class by its code, or None."""
    columns = (classes.c.code, classes.c.teacher_hash, classes.c.title, classes.c.created_at,
               classes.c.preset)
    with reading(engine) as connection:
        row = connection.execute(select(*columns).where(classes.c.code == code)).first()
    if row is None:
        return None
    return ClassRow(row.code, row.teacher_hash, row.title, row.created_at, row.preset)


def read_learners(engine: Engine, code: str) -> list[tuple[str, str]]:
    """(session id, learner name) of every stored session attached to the class, oldest first."""
    query = (
        select(sessions.c.id, sessions.c.learner_name)
        .where(sessions.c.class_code == code)
        .order_by(sessions.c.created_at)
    )
    with reading(engine) as connection:
        return [(row.id, row.learner_name or "") for row in connection.execute(query)]


def attach_learner(engine: Engine, session_id: str, code: str, name: str) -> bool:
    """Attach a stored session to a class; False when the session has no row yet (it was not
    checkpointed yet: the hub tries again)."""
    with engine.begin() as connection:
        result = connection.execute(
            update(sessions).where(sessions.c.id == session_id)
            .values(class_code=code, learner_name=name)
        )
    return bool(result.rowcount)


def detach_learner(engine: Engine, session_id: str, code: str) -> None:
    """Detach a session from this class (if it is still in it)."""
    with engine.begin() as connection:
        connection.execute(
            update(sessions).where(sessions.c.id == session_id, sessions.c.class_code == code)
            .values(class_code=None, learner_name=None)
        )


def save_preset(engine: Engine, code: str, preset: str) -> None:
    """Remember the class's last pushed config (JSON)."""
    with engine.begin() as connection:
        connection.execute(update(classes).where(classes.c.code == code).values(preset=preset))


def delete_class(engine: Engine, code: str) -> None:
    """Delete a class; its learners' sessions stay, detached."""
    with engine.begin() as connection:
        connection.execute(
            update(sessions).where(sessions.c.class_code == code)
            .values(class_code=None, learner_name=None)
        )
        connection.execute(sql_delete(classes).where(classes.c.code == code))
