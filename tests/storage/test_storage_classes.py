"""The classroom's queries (app/storage/classes.py) on SQLite and on a real PostgreSQL server."""

from __future__ import annotations

from app.storage import SessionCheckpoint, Storage
from app.storage import classes as queries


def checkpoint(session_id: str) -> SessionCheckpoint:
    """A minimal checkpoint: what makes a session's row exist."""
    return SessionCheckpoint(
        session_id=session_id, owner_hash="o" * 64, address="127.0.0.1", epoch=3,
        status="paused", history_id=1, snapshot=b"{}", history_columns=["loss"],
        first_epoch=1, rows=b"", reset_history=False,
    )


def test_classes_and_their_learners_on_both_databases(storage: Storage) -> None:
    """Gold: what was written, read back. A code is unique (a second insert says False, the
    caller draws another); counts; a session joins only once it has a row; a later checkpoint
    of that session keeps its class (save_checkpoint never writes class_code); detach, preset,
    and a class's delete detaches its learners but keeps their sessions."""
    engine = storage.engine
    row = queries.ClassRow("ABC234", "t" * 64, "Period 3", 1.0, None)
    assert queries.insert_class(engine, row, "o" * 64, "10.0.0.1")
    assert not queries.insert_class(engine, row, None, "10.0.0.2")
    assert queries.insert_class(engine, queries.ClassRow("XYZ789", "u" * 64, "B", 2.0, None),
                                None, "10.0.0.1")
    counts = queries.count_classes(engine, "o" * 64, "10.0.0.1")
    assert counts.total == 2
    assert (counts.by_owner, counts.by_address) == (1, 2)
    assert queries.count_classes(engine, None, "10.0.0.2") == queries.ClassCounts(2, 0, 0)
    assert queries.read_class(engine, "ABC234") == row
    assert queries.read_class(engine, "NOPE22") is None

    assert not queries.attach_learner(engine, "s1", "ABC234", "Ada")  # no row yet
    storage.save_checkpoint(checkpoint("s1"))
    storage.save_checkpoint(checkpoint("s2"))
    assert queries.attach_learner(engine, "s1", "ABC234", "Ada")
    assert queries.attach_learner(engine, "s2", "ABC234", "Grace")
    storage.save_checkpoint(checkpoint("s1"))  # a later checkpoint keeps the class
    assert sorted(queries.read_learners(engine, "ABC234")) == [("s1", "Ada"), ("s2", "Grace")]
    queries.detach_learner(engine, "s2", "XYZ789")  # not in that class: nothing changes
    queries.detach_learner(engine, "s2", "ABC234")
    assert queries.read_learners(engine, "ABC234") == [("s1", "Ada")]

    queries.save_preset(engine, "ABC234", '{"dataset": "xor"}')
    stored = queries.read_class(engine, "ABC234")
    assert stored is not None and stored.preset == '{"dataset": "xor"}'
    queries.delete_class(engine, "ABC234")
    assert queries.read_class(engine, "ABC234") is None
    assert queries.read_learners(engine, "ABC234") == []
    kept = storage.load_session("s1")
    assert kept is not None and kept.class_code is None and kept.epoch == 3
