"""Issue 10: "kill -9 a worker and its sessions are gone". A real worker process is killed with
SIGKILL while a client watches its training session; the session must come back on a fresh
worker from its last checkpoint, paused, within 2 s, and the client keeps its connection."""

from __future__ import annotations

import json
import os
import signal
import time
from typing import Any

import httpx
import numpy as np
from websockets.sync.client import connect

from app.sessions.frames import decode_frame, weights_hash
from app.storage import StoredSession
from tests.conftest import LiveServer


def stored_weights_hash(stored: StoredSession) -> str:
    """The weights hash of a stored checkpoint, from its snapshot's weights (the gold)."""
    weights = json.loads(stored.snapshot)["weights"]
    return weights_hash([np.asarray(w, dtype=np.float64) for w in weights])


def wait_for_standby(manager: Any) -> None:
    """Until the spare worker process is warm (it starts a few seconds after the server)."""
    deadline = time.monotonic() + 30
    while manager.standby is None or not manager.standby.ready:
        assert time.monotonic() < deadline, "no warm standby worker"
        time.sleep(0.05)


def export_history(export: dict[str, Any], columns: list[str]) -> np.ndarray:
    """An export's history as rows (null back to NaN), in the stored column order."""
    values = [[np.nan if v is None else v for v in export["history"][c]] for c in columns]
    return np.asarray(values, dtype=np.float64).T.reshape(-1, len(columns))


def test_a_killed_worker_s_session_comes_back_paused_within_2_s_on_the_same_socket() -> None:
    """SIGKILL the only worker while its session trains and a client watches: within 2 s the
    client gets {"type": "restored", "epoch": N}, then a fresh hello (epoch N, paused) and a
    frame with all N history rows, on the same connection. Gold: the database's last
    checkpoint (its weights hash and history) equals what the restored session serves, and
    nothing before the last checkpoint is lost (N >= the epoch stored before the kill)."""
    with LiveServer(worker_processes=1, checkpoint_seconds=0.2) as live, httpx.Client(
        base_url=live.url, timeout=30
    ) as http:
        created = http.post("/api/sessions", json={"dataset": "xor", "speed": 300}).json()
        sid, owner = created["id"], {"authorization": f"Bearer {created['owner_token']}"}
        stepped = http.post(f"/api/sessions/{sid}/commands", json={"type": "step", "n": 40},
                            headers=owner).json()
        assert stepped["epoch"] == 40 and stepped["status"] == "paused"
        manager, storage = live.app.state.manager, live.app.state.storage
        ws_url = live.url.replace("http", "ws", 1) + created["ws_url"]
        with connect(ws_url, compression=None, max_size=None) as ws:
            assert json.loads(ws.recv(timeout=10))["type"] == "hello"
            assert http.post(f"/api/sessions/{sid}/commands", json={"type": "play"},
                             headers=owner).status_code == 200
            time.sleep(0.8)  # it trains (~240 epochs at speed 300) and checkpoints meanwhile
            manager.persistence.writer.flush(5)
            wait_for_standby(manager)
            before = storage.load_session(sid)
            assert before is not None and before.epoch > 40
            worker = manager.workers[0].runner
            os.kill(worker.pid, signal.SIGKILL)  # our own child process
            killed = time.monotonic()
            texts: list[dict[str, Any]] = []
            epochs: list[int] = []  # the rows of the frames after the restore
            hello: dict[str, Any] = {"epoch": 0}
            while not texts or texts[-1]["type"] != "hello" or len(epochs) < hello["epoch"]:
                message = ws.recv(timeout=5)
                if isinstance(message, str):
                    texts.append(json.loads(message))
                    if texts[-1]["type"] == "restored":
                        restored_after = time.monotonic() - killed
                    hello = texts[-1].get("session", {"epoch": 0})
                elif texts and texts[-1]["type"] == "hello":
                    header, arrays = decode_frame(message)
                    epochs += range(header["epochs_first"],
                                    header["epochs_first"] + len(arrays["epochs"]))
            kinds = [t["type"] for t in texts]
            assert kinds[-2:] == ["restored", "hello"], kinds
            assert "lost" not in kinds and "removed" not in kinds
            assert restored_after < 2.0, restored_after
            restored = texts[-2]
            assert hello["status"] == "paused" and hello["epoch"] == restored["epoch"]
            assert epochs == list(range(1, hello["epoch"] + 1))  # the whole curve again
        after = storage.load_session(sid)
        assert after is not None and after.state == "live"
        # Nothing before the last checkpoint is lost; the restored state is that checkpoint.
        assert hello["epoch"] == after.epoch >= before.epoch
        assert hello["weights_hash"] == stored_weights_hash(after)
        export = http.get(f"/api/sessions/{sid}/export", headers=owner).json()
        assert export["epoch"] == after.epoch
        np.testing.assert_array_equal(export_history(export, after.history_columns),
                                      after.history)
        # Same owner token, same session: it trains on from the checkpoint.
        again = http.post(f"/api/sessions/{sid}/commands", json={"type": "step", "n": 5},
                          headers=owner).json()
        assert again["epoch"] == after.epoch + 5
