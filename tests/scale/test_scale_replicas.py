"""Sessions in Ray shard actors, served by any of two real web replicas (issue 12).

Against a real local Ray cluster and two `nn-playground` processes on it (conftest.py). The
gold each time is the session's own state read through the *other* replica: the same epoch,
the same weights, the same owner.
"""

from __future__ import annotations

import json
import os
import signal
import time
from typing import Any

import httpx
import pytest
from websockets.sync.client import ClientConnection, connect

from tests.scale.conftest import Cluster, create, frame_header, ws_url

pytestmark = pytest.mark.ray


def receive_until(ws: ClientConnection, wanted: str, timeout: float = 10.0) -> dict[str, Any]:
    """Read messages until a text message of type `wanted` (frames are skipped)."""
    deadline = time.monotonic() + timeout
    while True:
        message = ws.recv(timeout=max(0.01, deadline - time.monotonic()))
        if isinstance(message, str):
            decoded: dict[str, Any] = json.loads(message)
            if decoded["type"] == wanted:
                return decoded


def frame_epochs(ws: ClientConnection, count: int, timeout: float = 10.0) -> list[int]:
    """The epochs of the next `count` full frames."""
    epochs: list[int] = []
    deadline = time.monotonic() + timeout
    while len(epochs) < count:
        message = ws.recv(timeout=max(0.01, deadline - time.monotonic()))
        if isinstance(message, bytes):
            header = frame_header(message)
            if not header.get("rows_only"):
                epochs.append(int(header["epoch"]))
    return epochs


def get(base: str, session_id: str, token: str | None = None) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.get(f"{base}/api/sessions/{session_id}", headers=headers, timeout=30)


def test_create_on_a_watch_and_command_on_b(ray_cluster: Cluster) -> None:
    """A session created through replica A is watched and driven through replica B: B's frames
    advance, B's pause is what A then reports (same epoch), and A's step shows up in B's stream.
    Gold: the epoch each replica reads equals the epoch the other one drove it to."""
    a, b = (r.url for r in ray_cluster.replicas)
    created = create(a, dataset="xor", speed=200)
    sid, token = created["id"], created["owner_token"]
    with connect(ws_url(b, sid), compression=None, max_size=None) as ws:
        hello = receive_until(ws, "hello")
        assert hello["session"]["id"] == sid and hello["session"]["epoch"] == 0
        ws.send(json.dumps({"type": "auth", "token": token}))
        assert receive_until(ws, "auth")["owner"] is True
        ws.send(json.dumps({"type": "play", "id": 1}))
        epochs = frame_epochs(ws, 10)
        assert epochs == sorted(epochs) and epochs[-1] > epochs[0]
        ws.send(json.dumps({"type": "pause", "id": 2}))
        paused = receive_until(ws, "ack")["session"]
        while paused["status"] != "paused":  # the play's ack may come first
            paused = receive_until(ws, "ack")["session"]
        on_a = get(a, sid).json()
        assert on_a["status"] == "paused" and on_a["epoch"] == paused["epoch"] > 0
        # A command through A: B's watcher sees its epochs.
        stepped = httpx.post(
            f"{a}/api/sessions/{sid}/commands",
            json={"type": "step", "n": 7},
            headers={"Authorization": f"Bearer {token}"},
            timeout=30,
        )
        assert stepped.status_code == 200, stepped.text
        assert stepped.json()["epoch"] == paused["epoch"] + 7
        seen = 0
        while seen < paused["epoch"] + 7:
            seen = max(seen, *frame_epochs(ws, 1))
        assert seen == paused["epoch"] + 7
    # Anyone may watch, only the owner may drive, on every replica.
    refused = httpx.post(f"{b}/api/sessions/{sid}/commands", json={"type": "play"}, timeout=30)
    assert refused.status_code == 401


def test_owner_quota_holds_across_replicas(ray_cluster: Cluster) -> None:
    """max_sessions_per_owner = 3 (conftest) counts the owner's sessions on every replica: two
    made through A and one through B, the fourth is refused with 429 on either replica, naming
    the setting. Gold: a replica-local count would see at most 2 on either replica."""
    a, b = (r.url for r in ray_cluster.replicas)
    first = create(a)
    token = first["owner_token"]
    create(a, token)
    deadline = time.monotonic() + 5  # the token reaches B's owner registry within ~0.5 s
    while True:
        reply = httpx.post(
            b + "/api/sessions", json={}, timeout=30, headers={"Authorization": f"Bearer {token}"}
        )
        if reply.status_code != 401 or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert reply.status_code == 201, reply.text
    for base in (a, b):
        refused = httpx.post(
            base + "/api/sessions",
            json={},
            timeout=30,
            headers={"Authorization": f"Bearer {token}"},
        )
        assert refused.status_code == 429, refused.text
        assert "max_sessions_per_owner = 3" in refused.json()["detail"]
        assert "Retry-After" in refused.headers
    # A delete through B frees a slot for A.
    deleted = httpx.delete(
        f"{b}/api/sessions/{first['id']}", timeout=30, headers={"Authorization": f"Bearer {token}"}
    )
    assert deleted.status_code == 204
    assert get(a, first["id"]).status_code == 404
    create(a, token)


def test_running_quota_holds_across_replicas(ray_cluster: Cluster) -> None:
    """max_running_per_owner = 2 (conftest) counts what trains in every shard: one session
    played through A and one through B, the owner's third play (through A) is refused with 429
    naming the setting; after a pause through B it plays. Gold: each replica alone saw one."""
    a, b = (r.url for r in ray_cluster.replicas)
    first = create(a, dataset="xor", speed=5)
    token = first["owner_token"]
    auth = {"Authorization": f"Bearer {token}"}
    deadline = time.monotonic() + 5  # the token reaches B's owner registry within ~0.5 s
    while True:
        reply = httpx.post(b + "/api/sessions", json={"speed": 5}, headers=auth, timeout=30)
        if reply.status_code != 401 or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert reply.status_code == 201, reply.text
    second = reply.json()
    third = create(a, token, speed=5)

    def play(base: str, sid: str, kind: str = "play") -> httpx.Response:
        return httpx.post(
            f"{base}/api/sessions/{sid}/commands", json={"type": kind}, headers=auth, timeout=30
        )

    assert play(a, first["id"]).json()["status"] == "running"
    assert play(b, second["id"]).json()["status"] == "running"
    refused = play(a, third["id"])
    assert refused.status_code == 429, refused.text
    assert "max_running_per_owner = 2" in refused.json()["detail"]
    assert play(b, first["id"], "pause").json()["status"] == "paused"
    assert play(a, third["id"]).json()["status"] == "running"
    for session in (first, second, third):
        httpx.delete(f"{a}/api/sessions/{session['id']}", headers=auth, timeout=30)


def test_killed_shard_comes_back_from_its_checkpoint(ray_cluster: Cluster) -> None:
    """kill -9 of the process hosting a session's shard actor: Ray restarts the actor, which
    restores the session from its database checkpoint; B's watcher gets "restored" and a new
    hello at the same epoch, and the weights are those from before the kill.
    Gold: the export (weights, epoch) read before the kill."""
    a, b = (r.url for r in ray_cluster.replicas)
    created = create(a, dataset="circle")
    sid, token = created["id"], created["owner_token"]
    auth = {"Authorization": f"Bearer {token}"}
    stepped = httpx.post(
        f"{a}/api/sessions/{sid}/commands", json={"type": "step", "n": 50}, headers=auth, timeout=30
    )
    assert stepped.status_code == 200 and stepped.json()["epoch"] == 50
    before = httpx.get(f"{a}/api/sessions/{sid}/export", headers=auth, timeout=30).json()
    ray = ray_cluster.ray()
    shard = ray_cluster.shard_of(sid)
    assert ray.get(shard.flush.remote(5.0)) is True  # the step's checkpoint is written
    pid = ray.get(shard.stats.remote())["pid"]
    with connect(ws_url(b, sid), compression=None, max_size=None) as ws:
        receive_until(ws, "hello")
        os.kill(pid, signal.SIGKILL)
        restored = receive_until(ws, "restored", timeout=14)
        assert restored["epoch"] == 50
        hello = receive_until(ws, "hello")
        assert hello["session"]["epoch"] == 50 and hello["session"]["status"] == "paused"
    assert ray.get(shard.stats.remote())["pid"] != pid
    deadline = time.monotonic() + 10
    while True:  # A may not have seen the restart yet: 503 "restarting; try again" until then
        reply = httpx.get(f"{a}/api/sessions/{sid}/export", headers=auth, timeout=30)
        if reply.status_code != 503 or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert reply.status_code == 200, reply.text
    after = reply.json()
    assert after["weights"] == before["weights"]
    assert after["history"] == before["history"]


def test_unwatched_pause_and_idle_expiry_in_the_shard(ray_cluster: Cluster) -> None:
    """The local backend's idle rules on the ray backend, in the shard (which knows every
    replica's watchers): a session played through A and watched by nobody is paused once
    unwatched_pause_seconds pass (the janitor's pass is run ahead of the clock); a watcher
    through B plays it again; unwatched and uncalled past session_idle_seconds it leaves the
    shard's memory, and the next GET through A brings it back from its checkpoint.
    Gold: the session's own status and epoch as each replica reads it, and the shard's list."""
    a, b = (r.url for r in ray_cluster.replicas)
    created = create(a, dataset="xor", speed=20)
    sid, token = created["id"], created["owner_token"]
    auth = {"Authorization": f"Bearer {token}"}
    played = httpx.post(
        f"{a}/api/sessions/{sid}/commands", json={"type": "play"}, headers=auth, timeout=30
    )
    assert played.json()["status"] == "running"
    ray = ray_cluster.ray()
    shard = ray_cluster.shard_of(sid)
    # (Other tests' sessions on this shard may be paused or evicted too: only ours is checked.)
    assert sid not in ray.get(shard.sweep.remote(5.0))[1]  # not yet 30 s unwatched
    assert sid in ray.get(shard.sweep.remote(31.0))[1]
    deadline = time.monotonic() + 5
    while get(b, sid).json()["status"] != "paused" and time.monotonic() < deadline:
        time.sleep(0.05)
    assert get(b, sid).json()["status"] == "paused"
    with connect(ws_url(b, sid), compression=None, max_size=None) as ws:
        receive_until(ws, "hello")
        while get(a, sid).json()["status"] != "running" and time.monotonic() < deadline + 5:
            time.sleep(0.05)
        assert get(a, sid).json()["status"] == "running"  # B's manager played it again
        evicted, paused = ray.get(shard.sweep.remote(700.0))
        assert sid not in evicted and sid not in paused  # watched: never idle
    pause = httpx.post(
        f"{a}/api/sessions/{sid}/commands", json={"type": "pause"}, headers=auth, timeout=30
    )
    epoch = pause.json()["epoch"]
    deadline = time.monotonic() + 5  # B's unsubscribe reaches the shard
    while sid not in ray.get(shard.sweep.remote(601.0))[0] and time.monotonic() < deadline:
        time.sleep(0.05)
    assert sid in ray.get(shard.stats.remote())["evicted"]
    assert ray.get(shard.flush.remote(5.0)) is True
    back = get(a, sid)
    assert back.status_code == 200, back.text
    assert back.json()["epoch"] == epoch and back.json()["status"] == "paused"
    assert sid not in ray.get(shard.stats.remote())["evicted"]
    httpx.delete(f"{a}/api/sessions/{sid}", headers=auth, timeout=30)


def test_dropped_connections_reconnect_and_watchers_go_on(ray_cluster: Cluster) -> None:
    """The shard cuts every replica's connection (as a network failure would; the shard itself
    lives on): B's watcher gets a fresh hello (no "restored": nothing was lost) and frames with
    advancing epochs again, and commands through A work on the new connection.
    Gold: the epochs before and after, and the absence of "restored"."""
    a, b = (r.url for r in ray_cluster.replicas)
    created = create(a, dataset="xor", speed=100)
    sid, token = created["id"], created["owner_token"]
    auth = {"Authorization": f"Bearer {token}"}
    ray = ray_cluster.ray()
    shard = ray_cluster.shard_of(sid)
    with connect(ws_url(b, sid), compression=None, max_size=None) as ws:
        receive_until(ws, "hello")
        ws.send(json.dumps({"type": "auth", "token": token}))
        ws.send(json.dumps({"type": "play"}))
        before = frame_epochs(ws, 3)
        assert ray.get(shard.drop_connections.remote()) >= 2  # A's and B's at least
        texts: list[str] = []
        deadline = time.monotonic() + 10
        while "hello" not in texts:
            message = ws.recv(timeout=max(0.01, deadline - time.monotonic()))
            if isinstance(message, str):
                texts.append(json.loads(message)["type"])
        assert "restored" not in texts, texts
        after = frame_epochs(ws, 5)
        assert after[-1] > before[-1]
    deadline = time.monotonic() + 10
    while True:  # A may still be reconnecting: 503 "not reachable; try again" until then
        paused = httpx.post(
            f"{a}/api/sessions/{sid}/commands", json={"type": "pause"}, headers=auth, timeout=30
        )
        if paused.status_code != 503 or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert paused.status_code == 200 and paused.json()["status"] == "paused", paused.text
    httpx.delete(f"{a}/api/sessions/{sid}", headers=auth, timeout=30)


def test_replica_killed_the_other_goes_on(ray_cluster: Cluster) -> None:
    """kill -9 replica A while a client of B watches a session made through A: the shards drop
    A's connections within 2 s, B's stream goes on, B still commands it, and a client that
    reconnects to B gets the whole curve (the hello frame's rows continue where its last frame
    ended). Gold: epochs strictly advance across the
    kill and the reconnect's history covers every epoch up to the new hello."""
    replica_a, replica_b = ray_cluster.replicas
    a, b = replica_a.url, replica_b.url
    ray = ray_cluster.ray()
    shards = [ray.get_actor(f"nnpg-shard-{i}") for i in range(2)]

    def connected() -> list[str]:
        """The replica connections every shard serves (name#n)."""
        return [n for shard in shards for n in ray.get(shard.stats.remote())["replicas"]]

    created = create(a, dataset="xor", speed=100)
    sid, token = created["id"], created["owner_token"]
    with connect(ws_url(b, sid), compression=None, max_size=None) as ws:
        receive_until(ws, "hello")
        ws.send(json.dumps({"type": "auth", "token": token}))
        ws.send(json.dumps({"type": "play"}))
        before = frame_epochs(ws, 5)
        assert replica_a.process is not None
        mark = f"-{replica_a.process.pid}-"  # in A's replica name (app/backends/ray_backend.py)
        assert any(mark in name for name in connected()), connected()
        replica_a.kill()
        # A's connections closed: every shard dropped A's watchers at once, well before the
        # replica timeout (3 s in conftest.py) that a silent, still-connected replica gets.
        deadline = time.monotonic() + 2
        while any(mark in name for name in connected()) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not any(mark in name for name in connected()), connected()
        after = frame_epochs(ws, 20)
        assert after[0] >= before[-1] and after[-1] > before[-1]
        ws.send(json.dumps({"type": "pause", "id": 9}))
        ack = receive_until(ws, "ack")
        assert ack["id"] == 9 or ack["session"]["status"] == "paused"
    reply = get(b, sid)
    assert reply.status_code == 200
    epoch = reply.json()["epoch"]
    assert epoch >= after[-1]
    exported = httpx.get(
        f"{b}/api/sessions/{sid}/export", timeout=30, headers={"Authorization": f"Bearer {token}"}
    ).json()
    assert len(exported["history"]["train_loss"]) == epoch
