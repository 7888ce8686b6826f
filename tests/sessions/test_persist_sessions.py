"""Issue 10, web side of sessions that last (app/sessions/restore.py), in-process and fast:
the database after a pause, idle eviction and restore on request (REST and websocket), delete,
checkpoints off, and an app restarted on the same data directory."""

from __future__ import annotations

import json
import time
from typing import Any

from fastapi.testclient import TestClient

from app.main import create_app
from tests.conftest import fresh_data_dir, make_settings


def owner_of(created: dict[str, Any]) -> dict[str, str]:
    return {"authorization": f"Bearer {created['owner_token']}"}


def flushed(client: TestClient) -> Any:
    """The app's storage once its checkpoint writer wrote everything handed to it."""
    client.app.state.manager.persistence.writer.flush(5)  # type: ignore[attr-defined]
    return client.app.state.storage  # type: ignore[attr-defined]


def test_a_pause_is_stored_before_its_reply() -> None:
    """Gold: the pause's own reply. Its checkpoint goes out before the reply (pipe order), so
    once the writer is flushed the row holds exactly the paused epoch and status, although
    checkpoint_seconds (60) is far off."""
    with TestClient(create_app(make_settings(checkpoint_seconds=60))) as client:
        created = client.post("/api/sessions", json={"speed": 400}).json()
        sid, owner = created["id"], owner_of(created)
        client.post(f"/api/sessions/{sid}/commands", json={"type": "play"}, headers=owner)
        time.sleep(0.3)
        paused = client.post(f"/api/sessions/{sid}/commands", json={"type": "pause"},
                             headers=owner).json()
        stored = flushed(client).load_session(sid)
        assert paused["epoch"] > 0
        assert (stored.epoch, stored.status) == (paused["epoch"], "paused")
        assert stored.history.shape[0] == paused["epoch"]


def test_an_evicted_session_comes_back_on_its_websocket_and_delete_removes_its_row() -> None:
    """Idle expiry (0.3 s) takes the session out of memory: the row says "stored" and /health
    counts 0 sessions. Opening its websocket restores it (hello at the stored epoch and
    weights hash, gold: the step's reply); DELETE then removes the row (load_session None)."""
    settings = make_settings(session_idle_seconds=0.3, unwatched_pause_seconds=0)
    with TestClient(create_app(settings)) as client:
        created = client.post("/api/sessions", json={}).json()
        sid, owner = created["id"], owner_of(created)
        stepped = client.post(f"/api/sessions/{sid}/commands", json={"type": "step", "n": 7},
                              headers=owner).json()
        deadline = time.monotonic() + 5
        while client.get("/health").json()["sessions"]:
            assert time.monotonic() < deadline, "the idle session stayed in memory"
            time.sleep(0.05)
        storage = flushed(client)
        assert storage.load_session(sid).state == "stored"
        with client.websocket_connect(f"/ws/sessions/{sid}") as ws:
            hello = json.loads(ws.receive_text())
        assert hello["type"] == "hello"
        assert (hello["session"]["epoch"], hello["session"]["weights_hash"]) == (
            7, stepped["weights_hash"])
        assert storage.load_session(sid).state == "live"
        assert client.delete(f"/api/sessions/{sid}", headers=owner).status_code == 204
        assert flushed(client).load_session(sid) is None
        assert client.get(f"/api/sessions/{sid}").status_code == 404


def test_checkpoint_seconds_0_keeps_sessions_in_memory_only() -> None:
    """checkpoint_seconds <= 0 turns it off: no persistence, no row for a new session."""
    with TestClient(create_app(make_settings(checkpoint_seconds=0))) as client:
        sid = client.post("/api/sessions", json={}).json()["id"]
        assert client.app.state.manager.persistence is None  # type: ignore[attr-defined]
        assert client.app.state.storage.load_session(sid) is None  # type: ignore[attr-defined]


def test_an_app_started_on_the_same_data_dir_brings_sessions_back_with_their_owner() -> None:
    """Gold: the first app's export. A second app on the same data directory restores the
    session paused at start (listed for its token, same export but the status), and the token
    is known again: a create with it is accepted (201, not 401) and joins that owner."""
    data_dir = fresh_data_dir()
    with TestClient(create_app(make_settings(data_dir=data_dir))) as client:
        created = client.post("/api/sessions", json={"speed": 300}).json()
        sid, owner = created["id"], owner_of(created)
        client.post(f"/api/sessions/{sid}/commands", json={"type": "step", "n": 5},
                    headers=owner)
        client.post(f"/api/sessions/{sid}/commands", json={"type": "play"}, headers=owner)
        time.sleep(0.2)
    # The first app stopped: its worker sent the last checkpoint, the writer wrote it.
    with TestClient(create_app(make_settings(data_dir=data_dir))) as client:
        stored = client.app.state.storage.load_session(sid)  # type: ignore[attr-defined]
        listed = client.get("/api/sessions", headers=owner).json()
        assert [(s["id"], s["status"]) for s in listed] == [(sid, "paused")]
        export = client.get(f"/api/sessions/{sid}/export", headers=owner).json()
        assert export["epoch"] == stored.epoch >= 5
        assert client.post("/api/sessions", json={}, headers=owner).status_code == 201
