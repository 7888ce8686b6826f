"""GET /api/sessions lists the caller's stored (idle-evicted) sessions too, on SQLite and on
PostgreSQL.

Gold: what the session itself answered (GET /api/sessions/{id}) just before it was evicted:
id, epoch, status, config and metrics must be the same in the stored entry; another owner's
list and an anonymous list stay empty.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from app.main import create_app
from app.storage import Storage
from app.storage.tables import metadata


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def client(storage: Storage) -> Iterator[TestClient]:
    """An app on the storage fixture's database (SQLite file or PostgreSQL, emptied)."""
    with storage.engine.begin() as conn:
        for table in reversed(metadata.sorted_tables):
            conn.execute(table.delete())
    settings = storage.settings.model_copy(update={"session_idle_seconds": 3600.0})
    with TestClient(create_app(settings)) as test_client:
        yield test_client


def evict(client: TestClient, session_id: str) -> None:
    """Idle expiry of one session, now (Persistence.evict, on the app's loop)."""
    manager = client.app.state.manager  # type: ignore[attr-defined]
    assert client.portal is not None
    client.portal.call(manager.persistence.evict, manager.get(session_id))


def test_stored_sessions_are_listed_with_their_state(client: TestClient) -> None:
    """Two sessions of one owner, one trained 6 epochs then evicted: the list has the live one
    (state "live") and the stored one (state "stored", the epoch, status, config and metrics it
    had), read in a database thread, not on the event loop. Another owner sees neither. A
    request restores the stored one: then both are live."""
    first = client.post("/api/sessions", json={"dataset": "xor", "seed": 3}).json()
    owner = bearer(first["owner_token"])
    second = client.post("/api/sessions", json={"dataset": "reg-plane"},
                         headers=owner).json()
    stepped = client.post(f"/api/sessions/{first['id']}/commands",
                          json={"type": "step", "n": 6}, headers=owner)
    assert stepped.status_code == 200, stepped.text
    before: dict[str, Any] = client.get(f"/api/sessions/{first['id']}").json()
    assert before["epoch"] == 6
    evict(client, first["id"])
    assert client.get("/health").json()["sessions"] == 1

    storage = client.app.state.storage  # type: ignore[attr-defined]
    threads: list[str] = []
    read = storage.stored_sessions

    def recording(*args: Any) -> Any:
        try:
            asyncio.get_running_loop()
            threads.append("event loop")
        except RuntimeError:
            threads.append(threading.current_thread().name)
        return read(*args)

    storage.stored_sessions = recording
    listed = client.get("/api/sessions", headers=owner).json()
    assert [(s["id"], s["state"]) for s in listed] == [
        (second["id"], "live"), (first["id"], "stored")]
    assert threads and threads[0].startswith("database")
    stored = listed[1]
    for key in ("epoch", "status", "status_reason", "config", "metrics", "ws_url"):
        assert stored[key] == before[key], key
    assert stored["metrics"]["test_loss"] is not None and stored["updated_at"] > 0
    assert listed[0]["metrics"]["train_accuracy"] is None  # regression: no accuracy

    other = client.post("/api/sessions", json={}).json()
    assert [s["id"] for s in client.get("/api/sessions", headers=bearer(
        other["owner_token"])).json()] == [other["id"]]
    assert client.get("/api/sessions").json() == []

    assert client.get(f"/api/sessions/{first['id']}").json()["epoch"] == 6  # restored
    listed = client.get("/api/sessions", headers=owner).json()
    assert sorted((s["id"], s["state"]) for s in listed) == sorted(
        [(first["id"], "live"), (second["id"], "live")])


def test_a_running_session_is_listed_as_it_comes_back(client: TestClient) -> None:
    """A session evicted while it trained is listed "paused" (it comes back paused) at the
    epoch it was stored at (gold: the stored row's epoch)."""
    made = client.post("/api/sessions", json={"speed": 30}).json()
    owner = bearer(made["owner_token"])
    client.post(f"/api/sessions/{made['id']}/commands", json={"type": "play"}, headers=owner)
    evict(client, made["id"])
    row = client.app.state.storage.load_session(made["id"])  # type: ignore[attr-defined]
    (entry,) = client.get("/api/sessions", headers=owner).json()
    assert (entry["state"], entry["status"], entry["epoch"]) == ("stored", "paused", row.epoch)
