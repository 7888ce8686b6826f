"""Long runs (issue 10): export/import bytes and times, and what time travel's recording costs.

Run: `.venv/bin/python bench/long_export.py` (about a minute; `--quick` skips the 500,000-epoch
JSON import, the slowest figure). What the worker does for each route, timed in-process:
- export: JSON (`export_session` + `json.dumps`, the `export_json` op) and compact
  (`export_compact`, the `export_compact` op) of a default session whose history has 100,000
  and 500,000 rows (7 columns: synthetic loss-like values with noise in every mantissa, which is
  what real curves look like to a compressor);
- import: JSON (`SessionExport.model_validate_json` + `import_session`) and compact
  (`import_compact` + `import_session`), the worker's whole import;
- time travel: the default session's epochs/s with and without recording (its first 3,000
  epochs: stride 1 to 4, the phase where recording costs most), one checkpoint's encoded bytes,
  and `changes()` / `load()` of a full store (what a database checkpoint and a restore cost).
"""

from __future__ import annotations

import os

os.environ["OPENBLAS_NUM_THREADS"] = "1"  # before numpy: one BLAS thread (RECIPES)

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from app.engine import fast
from app.instruments.checkpoints import CheckpointStore, attach
from app.sessions.config import SessionConfig
from app.sessions.export import SessionExport, export_session, history_from_table, import_session
from app.sessions.export_binary import export_compact, import_compact
from app.sessions.session import TrainingSession


def long_session(epochs: int) -> TrainingSession:
    """A default session with `epochs` rows of synthetic history (its state: epoch 1)."""
    session = TrainingSession(SessionConfig(), "bench")
    session.train_one_epoch()
    columns = len(session.history.columns)
    rng = np.random.default_rng(0)
    t = np.arange(1, epochs + 1)[:, None]
    rows = 0.1 + 0.5 * np.exp(-t / 3e4) + rng.normal(0, 1e-3, (epochs, columns))
    session.history = history_from_table(list(session.history.columns), rows,
                                         session.history.norm_count)
    session.epoch = epochs
    return session


def timed(run: object) -> tuple[object, float]:
    start = time.perf_counter()
    result = run()  # type: ignore[operator]
    return result, time.perf_counter() - start


def exports(epochs: int, json_import: bool) -> None:
    session = long_session(epochs)
    as_json, json_export = timed(lambda: json.dumps(export_session(session),
                                                    allow_nan=False).encode())
    compact, compact_export = timed(lambda: export_compact(session))
    assert isinstance(as_json, bytes) and isinstance(compact, bytes)
    _, compact_import = timed(lambda: import_session(import_compact(compact), "b"))
    json_in = "skipped"
    if json_import:
        _, seconds = timed(lambda: import_session(SessionExport.model_validate_json(as_json),
                                                  "j"))
        json_in = f"{seconds:.2f} s"
    print(f"| {epochs:,} | JSON | {len(as_json) / 1e6:.1f} MB | {json_export:.2f} s | {json_in} |")
    print(f"| {epochs:,} | compact | {len(compact) / 1e6:.1f} MB | {compact_export:.2f} s | "
          f"{compact_import:.2f} s |")


def epochs_per_second(record: bool, epochs: int) -> float:
    session = TrainingSession(SessionConfig(), "rate")
    if record:
        attach(session)
    start = time.perf_counter()
    for _ in range(epochs):
        session.train_one_epoch()
    return epochs / (time.perf_counter() - start)


def timetravel() -> None:
    rates: dict[bool, list[float]] = {False: [], True: []}
    for _ in range(5):  # interleaved, so load from other processes hits both alike
        for record in (False, True):
            rates[record].append(epochs_per_second(record, 3000))
    off, on = float(np.median(rates[False])), float(np.median(rates[True]))
    print(f"epochs/s over the first 3,000 epochs: {off:,.0f} without recording, {on:,.0f} "
          f"with ({100 * (1 - on / off):.0f}% slower)")
    session = TrainingSession(SessionConfig(), "full")
    store = attach(session)
    for _ in range(20_000):
        session.train_one_epoch()
    (added, _dropped), seconds = timed(store.changes)  # type: ignore[misc]
    sizes = [len(data) for _, data in added]
    print(f"after 20,000 epochs: {len(store)} checkpoints kept (stride {store.stride}), "
          f"{store.nbytes / 1e6:.2f} MB counted; one encoded: {int(np.median(sizes)):,} bytes; "
          f"changes() of all of them: {seconds * 1e3:.0f} ms, {sum(sizes) / 1e6:.2f} MB")
    fresh = CheckpointStore()
    _, seconds = timed(lambda: fresh.load(added))
    print(f"load() of those {len(added)} rows: {seconds * 1e3:.0f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="skip the 500,000-epoch JSON import")
    args = parser.parse_args()
    fast.warm_up()
    print(f"load average at start: {os.getloadavg()[0]:.2f}")
    print("| epochs | format | bytes | export | import |")
    print("|---:|---|---:|---:|---:|")
    exports(100_000, True)
    exports(500_000, not args.quick)
    timetravel()
    print(f"load average at end: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
