"""Issue 10: "restart the server and everything is gone". A real `nn-playground` process is
stopped (SIGTERM) and a new one started on the same data directory: every session that was
alive must come back, paused, with the same weights and history, and its owner token must
still drive it."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import httpx

from bench.abuse_lib import Server


def server_on(data_dir: str) -> Server:
    """A real server process keeping its database in `data_dir` (its worker is a thread: a
    worker process's start would double the test's time; kill -9 of worker processes is
    tests/persistence/test_persist_worker_kill.py)."""
    return Server(workers=0, env={
        "NN_PLAYGROUND_DATA_DIR": data_dir,
        "NN_PLAYGROUND_CHECKPOINT_SECONDS": "0.2",
        "NN_PLAYGROUND_STANDBY_WORKER": "false",
    })


def test_a_restarted_server_brings_back_every_session_paused_with_its_owner() -> None:
    """Before the stop: a paused session stepped 30 epochs (gold: its full export) and a
    running one (gold: the epoch last seen, and its history up to there). After a new
    process starts on the same data directory: both are listed for their owner token,
    paused; the paused one's export is identical; the running one is at or past the epoch
    seen and its history starts with the rows seen; the token still steps it (a stranger
    gets 403)."""
    with tempfile.TemporaryDirectory(prefix="nn-restart-") as data_dir:
        with server_on(data_dir) as first, httpx.Client(base_url=first.base, timeout=30) as http:
            one = http.post("/api/sessions", json={"dataset": "xor"}).json()
            owner = {"authorization": f"Bearer {one['owner_token']}"}
            http.post(f"/api/sessions/{one['id']}/commands", json={"type": "step", "n": 30},
                      headers=owner).raise_for_status()
            gold = http.get(f"/api/sessions/{one['id']}/export", headers=owner).json()
            two = http.post("/api/sessions", json={"speed": 200}, headers=owner).json()
            http.post(f"/api/sessions/{two['id']}/commands", json={"type": "play"},
                      headers=owner).raise_for_status()
            time.sleep(0.5)
            seen = http.get(f"/api/sessions/{two['id']}/export", headers=owner).json()
            assert seen["status"] == "running" and seen["epoch"] > 0
        assert (Path(data_dir) / "playground.db").is_file()
        with server_on(data_dir) as second, httpx.Client(
            base_url=second.base, timeout=30
        ) as http:
            listed = {s["id"]: s for s in http.get("/api/sessions", headers=owner).json()}
            assert set(listed) == {one["id"], two["id"]}
            assert {s["status"] for s in listed.values()} == {"paused"}
            assert http.get(f"/api/sessions/{one['id']}/export", headers=owner).json() == gold
            back = http.get(f"/api/sessions/{two['id']}/export", headers=owner).json()
            assert back["epoch"] >= seen["epoch"] and back["status"] == "paused"
            for column, values in seen["history"].items():
                assert back["history"][column][:len(values)] == values
                assert len(back["history"][column]) == back["epoch"]
            stepped = http.post(f"/api/sessions/{one['id']}/commands",
                                json={"type": "step", "n": 2}, headers=owner)
            assert stepped.status_code == 200 and stepped.json()["epoch"] == 32
            stranger = http.post("/api/sessions", json={}).json()["owner_token"]
            refused = http.post(f"/api/sessions/{one['id']}/commands", json={"type": "play"},
                                headers={"authorization": f"Bearer {stranger}"})
            assert refused.status_code == 403
