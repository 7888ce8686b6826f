"""Restore cost of a long session's history: chunks merged (history_chunk_bytes) or not.

Saves one session's 6-column history in many small checkpoints (default 10,000 of 30 epochs:
300,000 epochs), once with merging off (history_chunk_bytes 0: one chunk per checkpoint, as
before merging) and once with the default 1 MB, and prints the chunks stored, the time all the
writes took, and the median of 5 Storage.load_session calls (what a restore reads). Prints the
load average: figures only count on a quiet machine.

    .venv/bin/python bench/storage_chunks.py [CHECKPOINTS] [EPOCHS_PER_CHECKPOINT]
"""

from __future__ import annotations

import os
import sys
import tempfile
import time

import numpy as np
from sqlalchemy import func, select

from app.settings import Settings
from app.storage import SessionCheckpoint, Storage
from app.storage.tables import history_chunks

COLUMNS = [f"c{i}" for i in range(6)]


def run(cap: int, checkpoints: int, per: int) -> None:
    storage = Storage(Settings(data_dir=tempfile.mkdtemp(), history_chunk_bytes=cap))
    storage.migrate()
    first = 1
    started = time.perf_counter()
    for _ in range(checkpoints):
        rows = np.arange(first, first + per, dtype=float)[:, None] + np.arange(6)[None, :]
        storage.save_checkpoint(SessionCheckpoint(
            "s", "o" * 64, "a", first + per - 1, "running", 1, b"{}", COLUMNS, first,
            rows.tobytes(), False,
        ))
        first += per
    writes = time.perf_counter() - started
    loads = []
    for _ in range(5):
        started = time.perf_counter()
        stored = storage.load_session("s")
        loads.append(time.perf_counter() - started)
        assert stored is not None and len(stored.history) == first - 1
    with storage.engine.connect() as conn:
        chunks = conn.execute(select(func.count()).select_from(history_chunks)).scalar_one()
    print(f"history_chunk_bytes={cap:>9}: {first - 1} epochs in {chunks} chunks; writes "
          f"{writes:.1f} s in all; load median {np.median(loads) * 1000:.1f} ms "
          f"(min {min(loads) * 1000:.1f}); load average {os.getloadavg()[0]:.1f}", flush=True)
    storage.close()


def main() -> None:
    checkpoints = int(sys.argv[1]) if len(sys.argv) > 1 else 10_000
    per = int(sys.argv[2]) if len(sys.argv) > 2 else 30
    for cap in (0, Settings().history_chunk_bytes):
        run(cap, checkpoints, per)


if __name__ == "__main__":
    main()
