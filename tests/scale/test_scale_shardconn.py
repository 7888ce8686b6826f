"""ShardConn, the ray backend's pipe inside a shard actor (app/backends/ray_shard.py), without Ray.

The routing a shard does for many replicas, checked message by message against hand-written
expectations, and the real Worker loop served through it in a thread (the same loop a worker
process runs): what a replica pulls is what a pipe would have carried to it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

from app.backends.ray_directory import Directory
from app.backends.ray_shard import ShardConn
from app.sessions.worker import Worker
from app.storage import SessionCheckpoint


def read_rows(
    batches: Callable[[], Iterable[tuple[str, list[tuple[Any, ...]]]]],
    take: Callable[[list[str]], None],
    replies: dict[str, list[int]],
    epochs: int,
) -> list[int]:
    """What replica B, watching a session that replica A steps, reads from a shard: the epoch
    rows of its hello and frames (B takes every frame: `take`), until there are `epochs` of
    them and A has two replies (a 15 s guard; ~1.5 s here, the kernel loads first). `batches()`
    gives the shard's batches since the last call as (replica, messages); each reply's request
    id is appended to replies[replica]. Shared by the ShardConn and the wire tests."""
    rows: list[int] = []
    deadline = time.monotonic() + 15
    while (len(rows) < epochs or len(replies["A"]) < 2) and time.monotonic() < deadline:
        for replica, messages in batches():
            for message in messages:
                if message[0] == "reply":
                    replies[replica].append(message[1])
                    if replica == "B":
                        part = message[3]["part"]
                        rows += range(part.first_epoch, part.first_epoch + len(part.rows))
                elif message[0] == "frames":
                    assert replica == "B"
                    for _, part in message[1]:
                        rows += range(part.first_epoch, part.first_epoch + len(part.rows))
                    take([session_id for session_id, _ in message[1]])
    return rows


def worker_side(conn: ShardConn) -> list[tuple[Any, ...]]:
    """Everything waiting for the worker, as its loop would read it."""
    received = []
    while conn.poll(0):
        received.append(conn.recv())
    return received


def test_replies_go_to_the_replica_that_asked_with_its_own_id() -> None:
    """Two replicas use the same request id 1; the worker sees two distinct ids and each
    replica gets exactly its own reply back under id 1."""
    conn = ShardConn(replica_timeout=60)
    conn.incoming("A", [("call", 1, "get", "s1", None)])
    conn.incoming("B", [("call", 1, "get", "s2", None)])
    calls = worker_side(conn)
    assert [c[2:4] for c in calls] == [("get", "s1"), ("get", "s2")]
    assert calls[0][1] != calls[1][1]
    conn.send(("reply", calls[1][1], 200, {"id": "s2"}))
    conn.send(("reply", calls[0][1], 404, "nope"))
    assert conn.outgoing("A", 0) == [("reply", 1, 404, "nope")]
    assert conn.outgoing("B", 0) == [("reply", 1, 200, {"id": "s2"})]


def test_frames_go_only_to_replicas_that_watch() -> None:
    """A subscribes to s1: s1's frames go to A only; s2 has no watcher, so the worker is told
    its frame was taken (it may build the next one) and nobody pulls it."""
    conn = ShardConn(replica_timeout=60)
    conn.outgoing("B", 0)  # B is connected but watches nothing
    conn.incoming("A", [("call", 7, "subscribe", "s1", None)])
    (call,) = worker_side(conn)
    conn.send(("reply", call[1], 200, {"session": {}, "part": "hello"}))
    conn.send(("frames", [("s1", "part-1"), ("s2", "part-2")]))
    assert conn.outgoing("A", 0) == [
        ("reply", 7, 200, {"session": {}, "part": "hello"}),
        ("frames", [("s1", "part-1")]),
    ]
    assert conn.outgoing("B", 0) == []
    assert worker_side(conn) == [("taken", ["s2"])]


def test_a_silent_replica_stops_watching() -> None:
    """A replica that stops pulling (it died) has its subscriptions undone in the worker."""
    conn = ShardConn(replica_timeout=0.05)
    conn.incoming("A", [("call", 1, "subscribe", "s1", None)])
    (call,) = worker_side(conn)
    conn.send(("reply", call[1], 200, {}))
    time.sleep(0.1)
    conn.next_check = 0.0
    unsubscribes = worker_side(conn)
    assert [(c[0], c[2], c[3]) for c in unsubscribes] == [("call", "unsubscribe", "s1")]
    assert "A" not in conn.outboxes


def test_checkpoints_carry_the_tracked_owner_and_a_delete_tells_other_watchers() -> None:
    """The create's ("track", ...) names whose checkpoints these are; a delete through A sends
    ("removed", id) to B, which watched it, and hands the id to the database writer."""
    conn = ShardConn(replica_timeout=60)
    stored: list[SessionCheckpoint] = []
    deleted: list[str] = []
    conn.on_checkpoint, conn.on_deleted = stored.append, deleted.append
    conn.incoming("A", [("track", "s1", "owner-hash", "10.0.0.1")])
    conn.send(
        ("checkpoint", SessionCheckpoint("s1", "", "", 3, "paused", 1, b"{}", [], 1, b"", False))
    )
    assert (stored[0].owner_hash, stored[0].address) == ("owner-hash", "10.0.0.1")
    conn.incoming("B", [("call", 1, "subscribe", "s1", None)])
    conn.send(("reply", worker_side(conn)[0][1], 200, {}))
    conn.outgoing("B", 0)
    conn.incoming("A", [("call", 2, "delete", "s1", None)])
    conn.send(("reply", worker_side(conn)[0][1], 200, None))
    assert conn.outgoing("B", 0) == [("removed", "s1")]
    assert conn.outgoing("A", 0) == [("reply", 2, 200, None)]
    assert deleted == ["s1"]


def test_a_second_restore_of_a_live_session_is_a_get() -> None:
    """Two replicas may both ask a restarted shard to restore the same session: the second
    is answered like the first (the session as it is), not with 409."""
    conn = ShardConn(replica_timeout=60)
    conn.inject("restore", "s1", {"snapshot": b""})
    worker_side(conn)
    conn.incoming("B", [("call", 4, "restore", "s1", {})])
    assert [c[2] for c in worker_side(conn)] == ["get"]


def test_directory_places_on_the_least_loaded_shard_and_applies_quotas() -> None:
    """Placement alternates over two shards; the owner's fourth session is refused naming
    max_sessions_per_owner; a release frees the slot."""
    directory = Directory()
    limits = {"max_sessions": 10, "max_sessions_per_owner": 3, "max_sessions_per_address": 10}
    places = [directory.place(f"s{i}", "o", "a", [0, 1], limits) for i in range(3)]
    assert places == [(0, None), (1, None), (0, None)]
    shard, why = directory.place("s3", "o", "a", [0, 1], limits)
    assert shard is None and why is not None and "max_sessions_per_owner = 3" in why
    directory.release("s0")
    assert directory.place("s3", "o", "a", [0, 1], limits) == (0, None)
    assert directory.sessions_on(0) == ["s2", "s3"]
    assert directory.owners_since(0) == (["o"], 1)


def test_the_worker_loop_served_through_the_shard_conn() -> None:
    """The real Worker loop in a thread behind a ShardConn: replica A creates and steps a
    session, replica B watches it; B's frames carry every epoch row 1..20 exactly once."""
    conn = ShardConn(replica_timeout=60)
    worker = Worker(conn, None)  # type: ignore[arg-type]
    thread = threading.Thread(target=worker.serve_forever, daemon=True)
    thread.start()
    try:
        conn.incoming("A", [("call", 1, "create", "s1", {"dataset": "xor"})])
        conn.incoming("B", [("call", 1, "subscribe", "s1", None)])
        conn.incoming("A", [("call", 2, "command", "s1", {"type": "step", "n": 20})])
        replies: dict[str, list[int]] = {"A": [], "B": []}
        rows = read_rows(
            lambda: [(replica, conn.outgoing(replica, 0.05)) for replica in ("A", "B")],
            lambda taken: conn.incoming("B", [("taken", taken)]),
            replies,
            20,
        )
        assert replies == {"A": [1, 2], "B": [1]}
        assert sorted(rows) == list(range(1, 21))
    finally:
        conn.incoming("A", [("stop",)])
        thread.join(5)


def test_idle_rules_count_every_replicas_watchers() -> None:
    """The local backend's idle rules inside the shard: a running session watched through B
    is never paused; once B's connection closes and nobody calls it for `unwatched` s it is
    paused (once), B's next subscribe is told so (its manager plays it again); unwatched and
    uncalled for `idle` s it is evicted (replicas told), and A's next call restores it from the
    database first (the directory told).
    Gold: the exact calls the worker receives, in order."""
    conn = ShardConn(replica_timeout=60)
    conn.load = lambda session_id: {"stored": session_id}
    told: list[tuple[list[str], bool]] = []
    conn.on_stored = lambda ids, stored: told.append((ids, stored))
    conn.incoming("A", [("call", 1, "create", "s1", {})])
    conn.send(("reply", worker_side(conn)[0][1], 200, {}))
    conn.incoming("B", [("call", 1, "subscribe", "s1", None)])
    conn.send(("reply", worker_side(conn)[0][1], 200, {"session": {"id": "s1"}}))
    rules = {"idle": 50.0, "unwatched": 10.0, "running": lambda s: True, "busy": lambda s: False}
    assert conn.sweep(time.monotonic() + 100, **rules) == ([], [])  # watched
    conn.detach("B")
    assert [c[2] for c in worker_side(conn)] == ["unsubscribe"]
    left = conn.touched["s1"]
    assert conn.sweep(left + 5, **rules) == ([], [])
    busy = {**rules, "busy": lambda s: s == "s1"}
    assert conn.sweep(left + 11, **busy) == ([], [])  # a job runs on it: not unwatched
    assert conn.sweep(left + 11, **rules) == ([], ["s1"])
    assert [c[2:] for c in worker_side(conn)] == [("command", "s1", {"type": "pause"})]
    assert conn.sweep(left + 12, **rules) == ([], [])  # paused once
    conn.incoming("B", [("call", 2, "subscribe", "s1", None)])
    conn.send(("reply", worker_side(conn)[0][1], 200, {"session": {"id": "s1"}}))
    assert conn.outgoing("B", 0) == [
        ("reply", 2, 200, {"session": {"id": "s1"}, "paused_unwatched": True})
    ]
    conn.incoming("B", [("call", 3, "unsubscribe", "s1", None)])
    worker_side(conn)
    left = conn.touched["s1"]
    assert conn.sweep(left + 49, **rules) == ([], ["s1"])  # B's resume never came: paused
    worker_side(conn)
    assert conn.sweep(left + 51, **rules) == (["s1"], [])
    assert [c[2:4] for c in worker_side(conn)] == [("evict", "s1")]
    assert "s1" not in conn.live and conn.evicted == {"s1"}
    assert conn.outgoing("A", 0)[-1] == ("evicted", "s1")  # replicas drop their handles
    conn.incoming("A", [("call", 4, "get", "s1", None)])
    calls = worker_side(conn)
    assert [c[2:] for c in calls] == [("restore", "s1", {"stored": "s1"}), ("get", "s1", None)]
    assert "s1" in conn.live and not conn.evicted
    assert told == [(["s1"], False)]  # the directory hears it is back in memory
