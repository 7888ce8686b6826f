"""WS /ws/sessions/{id} in-process: frames, every epoch's loss, commands, errors, cleanup.

The tests with a `client` run on both backends (tests/conftest.py BOTH_BACKENDS): `[local]`,
and `[ray]` with the sessions in shard actors of a real Ray cluster (the ray step).
"""

import asyncio
import contextlib
import json
import time
from collections.abc import Iterator
from typing import Any

import anyio
import numpy as np
import pytest
from fastapi.testclient import TestClient
from starlette.testclient import WebSocketTestSession
from starlette.websockets import WebSocketDisconnect

from app.api.routes import stream
from app.sessions.frames import FramePart, decode_frame
from app.sessions.manager import Subscriber
from tests.conftest import make_settings

BOTH_BACKENDS = True
TOKENS: dict[str, str] = {}  # session id -> its owner token


def create(client: TestClient, **config: Any) -> str:
    response = client.post("/api/sessions", json=config)
    assert response.status_code == 201, response.text
    session_id: str = response.json()["id"]
    TOKENS[session_id] = response.json()["owner_token"]
    return session_id


@contextlib.contextmanager
def drive(client: TestClient, session_id: str) -> Iterator[WebSocketTestSession]:
    """A websocket that presented the session's owner token (so its commands are obeyed)."""
    with client.websocket_connect(f"/ws/sessions/{session_id}") as ws:
        ws.send_json({"type": "auth", "token": TOKENS[session_id]})
        yield ws


def receive(ws: WebSocketTestSession) -> tuple[str, Any]:
    """("text", dict) or ("frame", (header, arrays))."""
    message = ws.receive()
    if message.get("bytes") is not None:
        return "frame", decode_frame(message["bytes"])
    return "text", json.loads(message["text"])


def next_text(ws: WebSocketTestSession) -> dict[str, Any]:
    while True:
        kind, body = receive(ws)
        if kind == "text":
            result: dict[str, Any] = body
            return result


def reply_to(
    ws: WebSocketTestSession, request_id: Any, frames: list[Any] | None = None
) -> dict[str, Any]:
    """The next text message answering `request_id` (other replies skipped; the frames that
    came first are appended to `frames`: a fast command's frames may precede its ack)."""
    while True:
        kind, body = receive(ws)
        if kind == "frame":
            if frames is not None:
                frames.append(body)
        elif body.get("id") == request_id:
            result: dict[str, Any] = body
            return result


def frames_until(ws: WebSocketTestSession, done: Any, limit: float = 20.0) -> list[Any]:
    frames = []
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        kind, body = receive(ws)
        if kind == "frame":
            frames.append(body)
            if done(body[0]):
                return frames
    raise AssertionError("condition not reached in time")


def test_hello_then_a_full_frame(client: TestClient) -> None:
    sid = create(client)
    with client.websocket_connect(f"/ws/sessions/{sid}") as ws:
        hello = next_text(ws)
        assert hello["type"] == "hello" and hello["protocol"] == 1
        assert hello["session"]["id"] == sid
        kind, (header, arrays) = receive(ws)
        assert kind == "frame" and header["seq"] == 0 and header["epoch"] == 0
        assert arrays["output"].shape == (100, 100) and arrays["output"].dtype == np.uint8
        assert arrays["neurons"].shape == (6, 16, 16)
        assert [layer["units"] for layer in header["layers"]] == [4, 2, 1]
        assert header["confusion"]["test"] and header["problem"] == "binary"


def test_every_epoch_arrives_once_in_order_while_playing(client: TestClient) -> None:
    sid = create(client, frame_rate=10.0)
    with drive(client, sid) as ws:
        ws.send_json({"type": "play", "id": 1})
        frames = frames_until(ws, lambda h: h["epoch"] >= 300)
        ws.send_json({"type": "pause"})
    epochs: list[int] = []
    rows = []
    for header, arrays in frames:
        count = len(arrays["epochs"])
        epochs += range(header["epochs_first"], header["epochs_first"] + count)
        rows.append(arrays["epochs"])
    assert epochs == list(range(1, len(epochs) + 1))
    # Far more epochs than frames: the rows, not the frames, carry the curve.
    assert len(epochs) > 3 * len(frames)
    history = client.get(f"/api/sessions/{sid}/export").json()["history"]
    columns = frames[-1][0]["sections"]["epochs"]["columns"]
    table = np.concatenate(rows)
    # Read by name: every column of every epoch, losses and gradient norms, as exported.
    assert columns[4:] == ["grad_norm_0", "grad_norm_1", "grad_norm_2"]
    for i, name in enumerate(columns):
        assert np.array_equal(table[:, i], np.float32(history[name][: len(epochs)]))


def test_commands_over_the_socket_are_acknowledged_and_applied(client: TestClient) -> None:
    sid = create(client)
    with drive(client, sid) as ws:
        ws.send_json({"type": "step", "n": 5, "id": "s"})
        early: list[Any] = []
        ack = reply_to(ws, "s", early)
        assert (ack["type"], ack["command"]) == ("ack", "step")

        def stepped(header: dict[str, Any]) -> bool:
            return bool(header["epoch"] == 5 and header["status"] == "paused")

        # The ack says "accepted"; the frames show the epochs, then "paused" - on ray the
        # last frame of a 5-epoch step often comes before the ack (docs/protocol.md; the page
        # lets the frames tell the status then: static/js/session_link.js).
        if not any(stepped(header) for header, _ in early):
            frames_until(ws, stepped)
        ws.send_json(
            {"type": "edit_weight", "layer": 2, "param": "bias", "index": [0], "value": 0.75}
        )
        ((header, _),) = frames_until(ws, lambda h: h["layers"][2]["bias"] == [0.75])[-1:]
        assert header["epoch"] == 5
        ws.send_json({"type": "set", "config": {"learning_rate": 0.5}, "id": 9})
        assert reply_to(ws, 9)["session"]["config"]["learning_rate"] == 0.5
        ws.send_json({"type": "predict", "points": [[0.0, 0.0]], "id": "p"})
        prediction = reply_to(ws, "p")
        assert prediction["type"] == "prediction"
        assert 0.0 < prediction["outputs"][0][0] < 1.0


@pytest.mark.parametrize(
    ("message", "detail"),
    [
        ("not json", "message is not valid JSON: Expecting value: line 1 column 1 (char 0)"),
        (
            '{"type": "jump"}',
            "unknown message type 'jump'; expected one of: auth, play, pause, step, "
            "reset, regenerate, set, edit_weight, predict",
        ),
        (
            '{"type": "step", "n": 0}',
            "invalid step message: n: Input should be greater than or equal to 1",
        ),
        (
            '{"type": "play", "speed": 2}',
            "invalid play message: speed: Extra inputs are not permitted",
        ),
        (
            '{"type": "set", "config": {"learning_rate": -1}}',
            "learning_rate: Input should be greater than 0",
        ),
    ],
)
def test_bad_messages_get_an_error_and_the_session_keeps_running(
    client: TestClient, message: str, detail: str
) -> None:
    sid = create(client)
    with drive(client, sid) as ws:
        ws.send_json({"type": "play"})
        ws.send_text(message)
        reply = next_text(ws)
        while reply["type"] != "error":
            reply = next_text(ws)
        assert reply["detail"].endswith(detail) and reply["id"] is None
        epoch = frames_until(ws, lambda h: h["status"] == "running")[-1][0]["epoch"]
        frames_until(ws, lambda h: h["epoch"] > epoch)


def test_divergence_is_reported_in_frames(client: TestClient) -> None:
    sid = create(
        client,
        dataset="reg-plane",
        learning_rate=10.0,
        features=["x1", "x2", "x1_sq", "x2_sq"],
        layers=[{"units": 8, "activation": "relu"}],
    )
    with drive(client, sid) as ws:
        ws.send_json({"type": "play"})
        header, arrays = frames_until(ws, lambda h: h["status"] == "diverged")[-1]
    assert header["status_reason"].endswith(
        f"at epoch {header['epoch']}; try a smaller learning rate"
    )
    assert not np.isfinite(arrays["epochs"][-1, 0])


def test_lockstep_frames_carry_every_epochs_weights(client: TestClient) -> None:
    sid = create(client, lockstep=True)
    with drive(client, sid) as ws:
        ws.send_json({"type": "step", "n": 30})
        frames = frames_until(ws, lambda h: h["epoch"] == 30 and h["status"] == "paused")
    recorded: dict[int, np.ndarray] = {}
    for header, arrays in frames:
        if "lockstep_weights" in arrays:
            first = header["sections"]["lockstep_weights"]["first_epoch"]
            for i, row in enumerate(arrays["lockstep_weights"]):
                recorded[first + i] = row
    assert sorted(recorded) == list(range(1, 31))
    weights = client.get(f"/api/sessions/{sid}/export").json()["weights"]
    flat = np.concatenate([np.ravel(w) for w in weights])
    assert np.array_equal(recorded[30], flat)


def _task_count(client: TestClient) -> int:
    async def count() -> int:
        return len(asyncio.all_tasks())

    assert client.portal is not None
    return client.portal.call(count)


def test_disconnect_mid_stream_leaves_no_task_or_subscriber(client: TestClient) -> None:
    sid = create(client)
    manager = client.app.state.manager  # type: ignore[attr-defined]
    baseline = _task_count(client)
    with drive(client, sid) as ws:
        ws.send_json({"type": "play"})
        frames_until(ws, lambda h: h["epoch"] > 10)
        assert len(manager.handles[sid].subscribers) == 1
    deadline = time.monotonic() + 5.0
    while manager.handles[sid].subscribers or _task_count(client) > baseline:
        assert time.monotonic() < deadline, "a subscriber or task outlived the socket"
        time.sleep(0.02)
    # The session itself lives on (it belongs to REST too) until deleted or idle.
    assert client.get(f"/api/sessions/{sid}").json()["status"] == "running"


def test_delete_tells_the_client_and_closes(client: TestClient) -> None:
    sid = create(client)
    with client.websocket_connect(f"/ws/sessions/{sid}") as ws:
        next_text(ws)
        client.delete(f"/api/sessions/{sid}")
        assert next_text(ws) == {"type": "removed"}


def test_unknown_session_gets_an_error_and_4404(client: TestClient) -> None:
    with client.websocket_connect("/ws/sessions/nope") as ws:
        assert next_text(ws) == {"type": "error", "id": None, "detail": "session 'nope' not found"}
        with pytest.raises(WebSocketDisconnect) as closed:
            ws.receive_text()
    assert closed.value.code == 4404


def test_foreign_origin_is_refused_and_listed_or_missing_origins_are_allowed(
    client: TestClient,
) -> None:
    sid = create(client)
    with (
        pytest.raises(WebSocketDisconnect) as refused,
        client.websocket_connect(f"/ws/sessions/{sid}", headers={"origin": "http://evil.example"}),
    ):
        pass
    assert refused.value.code == 1008
    with client.websocket_connect(
        f"/ws/sessions/{sid}", headers={"origin": "http://127.0.0.1:8000"}
    ) as ws:
        assert next_text(ws)["type"] == "hello"


def test_a_page_served_on_any_port_may_open_its_own_socket(client: TestClient) -> None:
    sid = create(client)
    same_origin = {"origin": "http://127.0.0.1:41439", "host": "127.0.0.1:41439"}
    with client.websocket_connect(f"/ws/sessions/{sid}", headers=same_origin) as ws:
        assert next_text(ws)["type"] == "hello"
    foreign_with_our_host = {"origin": "http://evil.example:41439", "host": "127.0.0.1:41439"}
    with (
        pytest.raises(WebSocketDisconnect) as refused,
        client.websocket_connect(f"/ws/sessions/{sid}", headers=foreign_with_our_host),
    ):
        pass
    assert refused.value.code == 1008


def test_a_subscriber_that_falls_too_far_behind_is_marked_for_disconnect() -> None:
    subscriber = Subscriber("s", seeded=True)
    rows = np.zeros((60, 4))
    for first in (1, 61):
        subscriber.offer(FramePart({}, {}, 1, first, rows), 100, 10**9)
    assert subscriber.overflow and len(subscriber.part.rows) == 120  # type: ignore[union-attr]
    recorder = Subscriber("s", seeded=True)
    weights = np.zeros((60, 1000))  # 480,000 bytes of lockstep weights
    recorder.offer(FramePart({}, {}, 1, 1, rows, weights, 1), 100, 500_000)
    assert not recorder.overflow
    recorder.offer(FramePart({}, {}, 1, 61, rows, weights, 61), 1000, 500_000)
    assert recorder.overflow


def test_a_send_that_never_completes_ends_the_connection_within_the_timeout() -> None:
    class StalledSocket:
        """A client that never reads: every send waits forever."""

        async def send_bytes(self, data: bytes) -> None:
            await anyio.sleep_forever()

        async def send_text(self, data: str) -> None:
            await anyio.sleep_forever()

    async def scenario() -> Subscriber:
        subscriber = Subscriber("s", seeded=True)
        subscriber.offer(FramePart({"type": "frame"}, {}, 1, 1, np.zeros((3, 4))), 100, 10**6)
        settings = make_settings(send_timeout_seconds=0.05)
        with anyio.fail_after(5):  # the guard under test must fire long before this
            async with anyio.create_task_group() as group:
                stalled: Any = StalledSocket()
                group.start_soon(stream._send, stalled, subscriber, settings, group.cancel_scope)
        return subscriber

    subscriber = anyio.run(scenario)
    assert subscriber.overflow and subscriber.ended_by_server


def test_a_late_client_gets_the_history_then_every_new_epoch_once(client: TestClient) -> None:
    sid = create(client)
    client.post(f"/api/sessions/{sid}/commands", json={"type": "step", "n": 50})  # unwatched
    with drive(client, sid) as ws:
        ws.send_json({"type": "step", "n": 20})
        frames = frames_until(ws, lambda h: h["epoch"] == 70 and h["status"] == "paused")
    epochs: list[int] = []
    for header, arrays in frames:
        epochs += range(header["epochs_first"], header["epochs_first"] + len(arrays["epochs"]))
    assert epochs == list(range(1, 71))
