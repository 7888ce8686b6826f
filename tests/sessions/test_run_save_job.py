"""Saving a run is a worker job (RunSaveJob, app/runs/snapshot.py SnapshotBuild): sliced, so
the worker's other sessions keep training and answering while a long run's JSON is written.

Golds: the worker's own "export_json" op (json.dumps of the whole export) for the bytes; for
the slicing, calls answered and epochs trained by another session while the save's reply is
outstanding (an inline build answers nothing until it is done).
"""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import numpy as np

from app.runs.snapshot import SnapshotBuild
from app.sessions.config import SessionConfig
from app.sessions.export import export_session
from app.sessions.session import TrainingSession
from tests.sessions.test_pace import WorkerClient, worker  # noqa: F401  (the fixture)

SAVE = {"kind": "snapshot", "thumbnail_size": 8, "extent": 6.0, "max_seconds": 60}


def long_export(client: WorkerClient, epochs: int) -> dict[str, Any]:
    """An export whose history is `epochs` rows of curves (NaN in one column's first row)."""
    client.create("seed", dataset="xor")
    client.call("command", "seed", {"type": "step", "n": 2, "wait": True})
    export: dict[str, Any] = client.call("export", "seed")
    steps = np.arange(epochs, dtype=np.float64)
    export["history"] = {
        name: [None if (i == 0 and name == "test_metric") else v
               for i, v in enumerate((0.1 + 0.5 * np.exp(-steps / (k + 7.0))).tolist())]
        for k, name in enumerate(export["history"])
    }
    export["epoch"] = epochs
    return export


def test_a_long_save_leaves_the_other_sessions_training(
    worker: tuple[WorkerClient, threading.Thread],  # noqa: F811
) -> None:
    """A 20,000-epoch session is saved while another trains: during the save the worker
    answers the other's reads (at least 3) and it trains on; the record's export JSON is
    byte for byte the worker's export_json of the (paused) session."""
    client, _ = worker
    client.call("import", "long", long_export(client, 20_000))
    client.create("other", dataset="circle")
    client.call("command", "other", {"type": "play"})
    time.sleep(0.2)
    gold = client.call("export_json", "long")
    request_id = 10_000
    client.send(("call", request_id, "run", "long", SAVE))
    epochs: list[int] = []
    while True:
        with client.arrived:
            if request_id in client.replies:
                status, record = client.replies.pop(request_id)
                break
        epochs.append(client.epoch("other"))
    assert status == 200, record
    print(f"{len(epochs)} reads of the other session during the save, epochs {epochs[:3]}..")
    assert len(epochs) >= 3 and epochs[-1] > epochs[0]
    assert record["export_json"] == gold
    assert record["epochs"] == 20_000 and len(record["thumbnail"]) == 64


def test_a_save_of_a_deleted_session_answers_404(
    worker: tuple[WorkerClient, threading.Thread],  # noqa: F811
) -> None:
    """Deleted while its run is being built, the session's save answers 404 (the job stops)
    and the worker goes on (a later call is answered)."""
    client, _ = worker
    client.call("import", "long", long_export(client, 20_000))
    client.send(("call", 7, "run", "long", SAVE))
    client.call("delete", "long")
    with client.arrived:
        assert client.arrived.wait_for(lambda: 7 in client.replies, 10.0)
        status, detail = client.replies.pop(7)
    assert status == 404 and "deleted" in detail
    assert client.epoch("seed") == 2


def test_the_build_is_the_export_at_its_start_whatever_the_session_does() -> None:
    """Built 5 values per slice (many units) while the session trains 20 more epochs between
    slices: the bytes equal json.dumps(export_session(...)) taken when the build began,
    non-finite history values (NaN, inf) as null."""
    session = TrainingSession(SessionConfig.model_validate({"dataset": "reg-plane"}), "s")
    for _ in range(30):
        session.train_one_epoch()
    session.history._table[3, 1] = np.nan
    session.history._table[5, 0] = np.inf
    gold = json.dumps(export_session(session), allow_nan=False).encode()
    build = SnapshotBuild(session, 8, 6.0)
    build.SLICE = 5
    units = 0
    while not build.advance(0.0):  # one unit per call
        units += 1
        if units <= 20:
            session.train_one_epoch()
    assert session.epoch == 50 and units == build.total  # then one more closes the JSON
    assert build.result()["export_json"] == gold
    assert json.loads(gold)["history"]["test_loss"][3] is None
