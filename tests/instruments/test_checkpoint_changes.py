"""CheckpointStore.changes(): what a database fed only by changes() holds is the store itself.

Gold: a dict standing for the database, updated only by each changes() result (upsert the
added rows, delete the dropped epochs), compared after every call with the store's own complete
checkpoints (epoch -> their encoded bytes). Random sequences of records, weights-only adds,
replacements, thinning, clears and loads, with changes() called at random points.
"""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from app.instruments.checkpoints import Checkpoint, CheckpointStore, encode_checkpoint
from app.sessions.config import SessionConfig

CONFIG = SessionConfig.model_validate({"layers": [{"units": 2}]})


def complete(epoch: int, value: float) -> Checkpoint:
    return Checkpoint(epoch, [np.full((2, 2), value)], iterations=epoch, config=CONFIG,
                      config_bytes=50)


def expected(store: CheckpointStore) -> dict[int, bytes]:
    return {e: encode_checkpoint(cp) for e, cp in store.items() if cp.config is not None}


OPERATIONS = st.lists(st.tuples(
    st.sampled_from(["put", "add", "clear", "changes", "load"]),
    st.integers(0, 40), st.floats(-1, 1, allow_nan=False)), max_size=80)


@settings(max_examples=150, deadline=None)
@given(OPERATIONS)
def test_a_database_fed_by_changes_equals_the_store(operations: list[tuple[str, int, float]]
                                                    ) -> None:
    # Room for ~6 checkpoints: thinning happens often.
    store = CheckpointStore(memory_bytes=6 * complete(0, 0.0).nbytes + 10)
    database: dict[int, bytes] = {}

    def sync() -> None:
        added, dropped = store.changes()
        assert not {e for e, _ in added} & set(dropped)
        for epoch in dropped:
            database.pop(epoch, None)
        database.update(added)
        assert database == expected(store)

    for kind, epoch, value in operations:
        if kind == "put":
            store.put(complete(epoch, value))
        elif kind == "add":
            store.add(epoch, [np.full((2, 2), value)])
        elif kind == "clear":
            store.clear()
        elif kind == "load":  # a restart: the store rebuilt from the database's rows
            sync()
            store = CheckpointStore(memory_bytes=store.memory_bytes)
            store.load(sorted(database.items()))
            sync()
        else:
            sync()
    sync()
    assert store.changes() == ([], [])  # nothing twice
