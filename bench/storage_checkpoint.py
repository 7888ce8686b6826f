"""Cost of one checkpoint write (Storage.save_checkpoint) as the stored history grows.

Writes a 6-column history 1,000 epochs per checkpoint (48,000 bytes of rows) with a ~31 KB
snapshot, and prints the median ms per checkpoint with 1,000-10,000 epochs stored and with
99,000-108,000 stored: incremental chunks keep them equal. Then the time to load it all.

    .venv/bin/python bench/storage_checkpoint.py                       # SQLite (temp dir)
    .venv/bin/python bench/storage_checkpoint.py postgresql+psycopg://nn@127.0.0.1:5432/db
"""

from __future__ import annotations

import json
import sys
import tempfile
import time

import numpy as np

from app.settings import Settings
from app.storage import SessionCheckpoint, Storage

COLUMNS = ["epoch", "train_loss", "test_loss", "grad_1", "grad_2", "grad_3"]
ROWS_PER_CHECKPOINT = 1000


def checkpoint(snapshot: bytes, first: int) -> SessionCheckpoint:
    """The checkpoint carrying epochs first .. first + 999."""
    rows = np.random.default_rng(first).normal(size=(ROWS_PER_CHECKPOINT, len(COLUMNS)))
    return SessionCheckpoint(
        session_id="bench", owner_hash="a" * 64, address="127.0.0.1",
        epoch=first + ROWS_PER_CHECKPOINT - 1, status="running", history_id=1,
        snapshot=snapshot, history_columns=COLUMNS, first_epoch=first,
        rows=rows.tobytes(), reset_history=first == 1,
    )


def measure(url: str | None) -> None:
    """Print the figures for one database."""
    with tempfile.TemporaryDirectory() as data_dir:
        storage = Storage(Settings(data_dir=data_dir, database_url=url))
        storage.migrate()
        storage.delete_session("bench")
        weights = np.random.default_rng(0).normal(size=1500).tolist()
        snapshot = json.dumps({"weights": weights}).encode()

        def timed(first: int) -> float:
            started = time.perf_counter()
            storage.save_checkpoint(checkpoint(snapshot, first))
            return (time.perf_counter() - started) * 1000

        early = [timed(first) for first in range(1, 11_001, ROWS_PER_CHECKPOINT)][1:]
        for first in range(11_001, 99_001, ROWS_PER_CHECKPOINT):
            storage.save_checkpoint(checkpoint(snapshot, first))
        late = [timed(first) for first in range(99_001, 109_001, ROWS_PER_CHECKPOINT)]
        started = time.perf_counter()
        stored = storage.load_session("bench")
        load_ms = (time.perf_counter() - started) * 1000
        assert stored is not None
        storage.delete_session("bench")
        storage.close()
    name = storage.engine.dialect.name
    print(
        f"{name}: {len(snapshot)} B snapshot + {ROWS_PER_CHECKPOINT * len(COLUMNS) * 8} B rows "
        f"per checkpoint; median {np.median(early):.2f} ms with 1,000-10,000 epochs stored, "
        f"{np.median(late):.2f} ms with 99,000-108,000; load of {stored.history.shape[0]:,} "
        f"epochs {load_ms:.0f} ms"
    )


if __name__ == "__main__":
    measure(sys.argv[1] if len(sys.argv) > 1 else None)
