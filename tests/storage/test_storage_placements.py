"""The ray backend's directory in the database (app/storage/placements.py, revision 0003), on
SQLite and PostgreSQL, and a Directory rebuilt from it as a restarted directory actor is.

Gold: what was written, read back by a second engine (another process's view), and a second
Directory's answers equal to the first one's.
"""

from __future__ import annotations

from sqlalchemy import create_engine

from app.backends.ray_directory import Directory
from app.storage import SessionCheckpoint, Storage
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


def test_idle_evicted_sessions_count_only_towards_the_stored_quota(storage: Storage) -> None:
    """Sessions a shard evicted (set_stored) leave max_sessions_per_owner's count and stay in
    max_stored_sessions_per_owner's, as on one machine; a restarted directory reads which are
    stored from the sessions table's state (the shard writes it after the last checkpoint)."""
    limits = {**LIMITS, "max_stored_sessions_per_owner": 3}  # and 2 live per owner
    url = storage.engine.url.render_as_string(hide_password=False)
    directory = Directory(url)
    try:
        for sid in ("s1", "s2"):
            assert directory.place(sid, "a" * 64, "10.0.0.1", [0], limits) == (0, None)
        assert "max_sessions_per_owner = 2" in str(
            directory.place("s3", "a" * 64, "10.0.0.1", [0], limits)[1]
        )
        directory.set_stored(["s1", "nope"], True)
        assert directory.place("s3", "a" * 64, "10.0.0.1", [0], limits) == (0, None)
        directory.set_stored(["s2"], True)
        assert directory.place("s4", "a" * 64, "10.0.0.1", [0], limits)[1] == (
            "this owner has 1 live and 2 stored sessions; max_stored_sessions_per_owner = 3 "
            "(delete one)"
        )
    finally:
        directory.engine.dispose()
    for sid in ("s1", "s2", "s3"):
        storage.save_checkpoint(checkpoint(sid))
    for sid in ("s1", "s2"):
        storage.set_state(sid, "stored")
    again = Directory(url)
    try:
        assert again.stats()["stored"] == 2
        assert "1 live and 2 stored" in str(again.place("s4", "a" * 64, "", [0], limits)[1])
        again.set_stored(["s1"], False)  # back on its next call: live again
        assert again.place("s4", "a" * 64, "", [0], limits)[1] == (
            "this owner has 2 live sessions; max_sessions_per_owner = 2 (delete one, or wait "
            "for one to expire)"
        )
    finally:
        again.engine.dispose()


def checkpoint(session_id: str) -> SessionCheckpoint:
    """A minimal checkpoint (a sessions row for the directory to join)."""
    return SessionCheckpoint(
        session_id=session_id,
        owner_hash="a" * 64,
        address="10.0.0.1",
        epoch=1,
        status="paused",
        history_id=1,
        snapshot=b"{}",
        history_columns=["loss"],
        first_epoch=1,
        rows=b"",
        reset_history=False,
    )
