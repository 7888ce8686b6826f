"""The ray backend's directory in the database (issue 12): placements, the owner list, and the
races and replays of the job budgets (revision 0004).

Plain synchronous functions of an Engine, called by the directory actor
(app/backends/ray_directory.py) in its own thread: an actor with no event loop, whose methods
run one at a time, so a write here is done before the directory answers the call that made it.
A restarted directory reads everything back with `load_directory`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from sqlalchemy import Engine, delete, insert, select
from sqlalchemy.exc import IntegrityError

from app.storage.database import reading
from app.storage.tables import directory_holdings, directory_owners, placements, sessions


@dataclass(frozen=True)
class Placement:
    """Where a session lives and whose it is."""

    shard: int
    owner_hash: str
    address: str


def save_placement(engine: Engine, session_id: str, placement: Placement, new_owner: bool) -> None:
    """Store a placement (replacing one of the same session) and, when `new_owner`, append its
    owner hash to the owner list; one transaction."""
    with engine.begin() as conn:
        conn.execute(delete(placements).where(placements.c.session_id == session_id))
        conn.execute(
            insert(placements).values(
                session_id=session_id,
                shard=placement.shard,
                owner_hash=placement.owner_hash,
                address=placement.address,
                created_at=time.time(),
            )
        )
    if new_owner:
        add_owner(engine, placement.owner_hash)


def add_owner(engine: Engine, owner_hash: str) -> None:
    """Append an owner hash to the list (a hash already there stays where it is)."""
    try:
        with engine.begin() as conn:
            if (
                conn.execute(
                    select(directory_owners.c.seq).where(
                        directory_owners.c.owner_hash == owner_hash
                    )
                ).first()
                is None
            ):
                conn.execute(insert(directory_owners).values(owner_hash=owner_hash))
    except IntegrityError:  # another directory incarnation wrote it meanwhile
        pass


def delete_placement(engine: Engine, session_id: str) -> None:
    """Forget a session's placement (deleted, or its create failed)."""
    with engine.begin() as conn:
        conn.execute(delete(placements).where(placements.c.session_id == session_id))


def load_directory(engine: Engine) -> tuple[dict[str, Placement], list[str]]:
    """Every placement by session id (oldest first), and the owner list in its order."""
    with reading(engine) as conn:
        rows = conn.execute(
            select(
                placements.c.session_id,
                placements.c.shard,
                placements.c.owner_hash,
                placements.c.address,
            ).order_by(placements.c.created_at)
        ).all()
        owners = (
            conn.execute(select(directory_owners.c.owner_hash).order_by(directory_owners.c.seq))
            .scalars()
            .all()
        )
    found = {row.session_id: Placement(row.shard, row.owner_hash, row.address) for row in rows}
    return found, list(owners)


def stored_sessions(engine: Engine) -> set[str]:
    """The placed sessions whose stored row says "stored" (evicted for idleness)."""
    with reading(engine) as conn:
        return set(
            conn.execute(
                select(placements.c.session_id)
                .join(sessions, sessions.c.id == placements.c.session_id)
                .where(sessions.c.state == "stored")
            ).scalars()
        )


# ---- races and time-travel replays (revision 0004): the job budgets' long-lived holdings -----


def save_holding(
    engine: Engine, kind: str, key: str, owner_hash: str, shard: int, nbytes: int
) -> None:
    """Store a race's or a replay's owner, shard and bytes (replacing what was stored)."""
    holdings = directory_holdings
    where = (holdings.c.kind == kind) & (holdings.c.key == key)
    with engine.begin() as conn:
        conn.execute(delete(holdings).where(where))
        conn.execute(
            insert(holdings).values(
                kind=kind, key=key, owner_hash=owner_hash, shard=shard, nbytes=nbytes
            )
        )


def delete_holding(engine: Engine, kind: str, key: str) -> None:
    """Forget a race (deleted) or a replay (its session deleted or evicted, its shard gone)."""
    holdings = directory_holdings
    with engine.begin() as conn:
        conn.execute(delete(holdings).where((holdings.c.kind == kind) & (holdings.c.key == key)))


def load_holdings(engine: Engine) -> list[tuple[str, str, str, int, int]]:
    """Every stored race and replay: (kind, key, owner hash, shard, bytes)."""
    holdings = directory_holdings
    with reading(engine) as conn:
        rows = conn.execute(
            select(
                holdings.c.kind,
                holdings.c.key,
                holdings.c.owner_hash,
                holdings.c.shard,
                holdings.c.nbytes,
            )
        ).all()
    return [(r.kind, r.key, r.owner_hash, r.shard, r.nbytes) for r in rows]
