"""The class dashboard across replicas (issue 12): the teacher on replica B, the learners'
sessions created and joined through replica A.

Against the real Ray cluster and two replicas of conftest.py. Gold: the learners' own sessions
(id, status) as replica A, which created them, reads them.
"""

from __future__ import annotations

import json
import time
from typing import Any

import httpx
import pytest
from websockets.sync.client import ClientConnection, connect

from tests.scale.conftest import Cluster, create, ws_url

pytestmark = pytest.mark.ray


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def dashboard_until(
    ws: ClientConnection, done: Any, timeout: float = 20.0
) -> tuple[list[str], dict[str, dict[str, Any]]]:
    """Read the dashboard until done(roster, tiles); the last roster (session ids) and tiles."""
    roster: list[str] = []
    tiles: dict[str, dict[str, Any]] = {}
    deadline = time.monotonic() + timeout
    while not done(roster, tiles):
        left = deadline - time.monotonic()
        assert left > 0, f"dashboard: roster {roster}, tiles {list(tiles.values())}"
        try:
            message = json.loads(ws.recv(timeout=left))
        except TimeoutError:
            raise AssertionError(f"dashboard: roster {roster}, tiles {tiles}") from None
        if message["type"] in ("hello", "learners"):
            roster = [learner["session"] for learner in message["learners"]]
        elif message["type"] == "tiles":
            tiles.update({tile["session"]: tile for tile in message["tiles"]})
    return roster, tiles


def notice(ws: ClientConnection, event: str, timeout: float = 20.0) -> dict[str, Any]:
    """Read a learner's page until the class notice `event`; that message."""
    deadline = time.monotonic() + timeout
    while (left := deadline - time.monotonic()) > 0:
        try:
            message = ws.recv(timeout=left)
        except TimeoutError:
            break
        if isinstance(message, str):
            parsed = json.loads(message)
            if parsed["type"] == "class" and parsed["event"] == event:
                return dict(parsed)
    raise AssertionError(f"no class notice {event!r} within {timeout} s")


def test_teacher_on_b_sees_and_pauses_learners_of_a(ray_cluster: Cluster) -> None:
    """A class made through B; two learners create sessions through A, one joins before the
    teacher opens the dashboard on B and one after. The dashboard lists both with live tiles
    (not "offline"), GET /api/classes/{code} through B says both are live, and the teacher's
    pause through B pauses both sessions (read through A)."""
    a, b = (r.url for r in ray_cluster.replicas)
    made = httpx.post(b + "/api/classes", json={"title": "Period 5"}, timeout=30)
    assert made.status_code == 201, made.text
    code, teacher = made.json()["code"], made.json()["teacher_token"]
    learners = [create(a, dataset="xor", speed=5) for _ in range(2)]

    def join(learner: dict[str, Any], name: str) -> None:
        joined = httpx.post(
            f"{a}/api/classes/{code}/join",
            json={"session_id": learner["id"], "name": name},
            headers=bearer(learner["owner_token"]),
            timeout=30,
        )
        assert joined.status_code == 200, joined.text
        played = httpx.post(
            f"{a}/api/sessions/{learner['id']}/commands",
            json={"type": "play"},
            headers=bearer(learner["owner_token"]),
            timeout=30,
        )
        assert played.json()["status"] == "running"

    ids = [learner["id"] for learner in learners]
    join(learners[0], "Ada")
    time.sleep(2)  # its first checkpoint (checkpoint_seconds = 1) stores its class
    url = b.replace("http://", "ws://") + f"/ws/classes/{code}"
    with connect(url, compression=None, max_size=None) as ws:
        ws.send(json.dumps({"type": "auth", "token": teacher}))
        join(learners[1], "Grace")
        dashboard_until(
            ws,
            lambda roster, tiles: (
                sorted(roster) == sorted(ids)
                and all(tiles.get(s, {}).get("status") == "running" for s in ids)
            ),
        )
    read = httpx.get(f"{b}/api/classes/{code}", headers=bearer(teacher), timeout=30).json()
    assert {(x["session_id"], x["live"]) for x in read["learners"]} == {(s, True) for s in ids}
    # Ada's page is on A: the teacher's pause and the class's end, made through B, reach it.
    with connect(ws_url(a, ids[0]), compression=None, max_size=None) as page:
        page.send(json.dumps({"type": "auth", "token": learners[0]["owner_token"]}))
        time.sleep(0.5)  # the page's subscription reaches the shard
        paused = httpx.post(
            f"{b}/api/classes/{code}/pause", headers=bearer(teacher), timeout=30
        )
        assert paused.status_code == 200, paused.text
        assert sorted(paused.json()["done"]) == sorted(ids)
        told = notice(page, "pause")
        assert (told["class"], told["session"]["status"]) == (code, "paused")
        for sid in ids:
            assert httpx.get(f"{a}/api/sessions/{sid}", timeout=30).json()["status"] == "paused"
        httpx.delete(f"{b}/api/classes/{code}", headers=bearer(teacher), timeout=30)
        assert notice(page, "left")["class"] == code
    for learner in learners:
        httpx.delete(
            f"{a}/api/sessions/{learner['id']}", headers=bearer(learner["owner_token"]), timeout=30
        )
