"""The ray backend's directory in the database (app/storage/placements.py, revision 0003), on
SQLite and PostgreSQL, and a Directory rebuilt from it as a restarted directory actor is.

Gold: what was written, read back by a second engine (another process's view), and a second
Directory's answers equal to the first one's.
"""

from __future__ import annotations

from sqlalchemy import create_engine

from app.backends.ray_directory import Directory
from app.storage import Storage
from app.storage.placements import (
    Placement,
    add_owner,
    delete_placement,
    load_directory,
    save_placement,
)

LIMITS = {"max_sessions": 100, "max_sessions_per_owner": 2, "max_sessions_per_address": 3}


def test_placements_and_owners_round_trip(storage: Storage) -> None:
    """Placements by session (a second save replaces the first), owners in first-seen order
    (a repeated owner stays where it was), deletes; read through a separate engine."""
    engine = storage.engine
    save_placement(engine, "s1", Placement(0, "a" * 64, "10.0.0.1"), new_owner=True)
    save_placement(engine, "s2", Placement(1, "b" * 64, "10.0.0.2"), new_owner=True)
    save_placement(engine, "s3", Placement(1, "a" * 64, "10.0.0.1"), new_owner=False)
    add_owner(engine, "a" * 64)  # already listed: no second entry, no reordering
    save_placement(engine, "s2", Placement(0, "b" * 64, "10.0.0.2"), new_owner=False)
    delete_placement(engine, "s3")
    delete_placement(engine, "nope")
    other = create_engine(engine.url)
    try:
        placements, owners = load_directory(other)
    finally:
        other.dispose()
    assert placements == {
        "s1": Placement(0, "a" * 64, "10.0.0.1"),
        "s2": Placement(0, "b" * 64, "10.0.0.2"),
    }
    assert owners == ["a" * 64, "b" * 64]


def test_a_restarted_directory_rebuilds_its_map_quotas_and_owners(storage: Storage) -> None:
    """A Directory on the database answers as the first one did after it is gone: lookups,
    sessions per shard, the owner list (same order, so replicas' indexes stay valid), and the
    session quotas count the sessions placed before (a third one of the owner is refused)."""
    url = storage.engine.url.render_as_string(hide_password=False)
    first = Directory(url)
    assert first.place("s1", "a" * 64, "10.0.0.1", [0, 1], LIMITS) == (0, None)
    assert first.place("s2", "a" * 64, "10.0.0.1", [0, 1], LIMITS) == (1, None)
    assert first.place("s3", "", "10.0.0.9", [0, 1], LIMITS) == (0, None)
    assert first.place("s4", "b" * 64, "10.0.0.2", [0, 1], LIMITS) == (1, None)
    assert first.place("s1", "a" * 64, "10.0.0.1", [0, 1], LIMITS) == (0, None)  # a retry
    first.release("s4")
    first.engine.dispose()

    again = Directory(url)
    assert again.stats()["persistent"] is True
    assert {s: again.lookup(s) for s in ("s1", "s2", "s3", "s4")} == {
        s: first.lookup(s) for s in ("s1", "s2", "s3", "s4")
    }
    assert again.lookup("s4") is None
    assert (again.sessions_on(0), again.sessions_on(1)) == (["s1", "s3"], ["s2"])
    assert again.owners_since(0) == (["a" * 64, "b" * 64], 2)
    assert again.owners_since(1) == (["b" * 64], 2)
    shard, refusal = again.place("s5", "a" * 64, "10.0.0.5", [0, 1], LIMITS)
    assert shard is None and refusal == (
        "this owner has 2 live sessions; max_sessions_per_owner = 2 (delete one, or wait for "
        "one to expire)"
    )
    assert again.count() == 3
    again.engine.dispose()


def test_without_a_database_the_directory_keeps_nothing(storage: Storage) -> None:
    """No URL: the map lives in memory only (nothing written to the tables)."""
    directory = Directory()
    assert directory.place("s1", "a" * 64, "10.0.0.1", [0], LIMITS) == (0, None)
    assert directory.stats()["persistent"] is False
    assert load_directory(storage.engine) == ({}, [])
