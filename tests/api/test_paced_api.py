"""`speed` over REST and the websocket: validation, paced REST steps, paced frames."""

import time

from fastapi.testclient import TestClient

from tests.api.test_stream import create, frames_until, next_text


def test_speed_is_validated_against_max_speed_and_listed_in_the_registry(
    client: TestClient,
) -> None:
    too_fast = client.post("/api/sessions", json={"speed": 5000})
    assert too_fast.status_code == 422
    assert "speed = 5000.0 exceeds max_speed = 1000.0" in too_fast.text
    assert client.post("/api/sessions", json={"speed": 0}).status_code == 422
    assert client.post("/api/sessions", json={"speed": "fast"}).status_code == 422
    registry = client.get("/api/registry").json()
    assert registry["limits"]["max_speed"] == 1000.0
    assert registry["defaults"]["speed"] is None  # scripts stay at max unless they ask


def test_a_rest_step_waits_for_its_epochs_at_the_pace(client: TestClient) -> None:
    sid = create(client, speed=20.0)
    began = time.monotonic()
    response = client.post(f"/api/sessions/{sid}/commands", json={"type": "step", "n": 20})
    elapsed = time.monotonic() - began
    assert response.status_code == 200, response.text
    assert (response.json()["epoch"], response.json()["status"]) == (20, "paused")
    # 20 epochs at 20/s: the 20th is due 0.95 s after the first (flat out: a few ms).
    assert elapsed >= 0.9, elapsed


def test_a_rest_step_its_pace_makes_outlast_the_timeout_is_refused(client: TestClient) -> None:
    sid = create(client, speed=10.0)
    response = client.post(f"/api/sessions/{sid}/commands", json={"type": "step", "n": 1000})
    assert response.status_code == 422
    detail = response.json()["detail"][0]["msg"]
    assert "n = 1000 at speed = 10 epochs/s takes 100 s" in detail
    assert "command_timeout_seconds = 60" in detail and "at most 600 epochs" in detail
    assert client.get(f"/api/sessions/{sid}").json()["epoch"] == 0  # nothing started


def test_a_live_speed_change_over_rest_keeps_the_model(client: TestClient) -> None:
    sid = create(client, speed=200.0)
    client.post(f"/api/sessions/{sid}/commands", json={"type": "step", "n": 5})
    before = client.get(f"/api/sessions/{sid}").json()
    after = client.patch(f"/api/sessions/{sid}", json={"speed": 3.0}).json()
    assert after["config"]["speed"] == 3.0
    assert (after["epoch"], after["weights_hash"]) == (5, before["weights_hash"])


def test_a_watched_session_at_speed_2_sends_a_frame_per_epoch_not_per_frame_interval(
    client: TestClient,
) -> None:
    sid = create(client, speed=2.0, frame_rate=30.0)
    with client.websocket_connect(f"/ws/sessions/{sid}") as ws:
        next_text(ws)  # hello
        frames_until(ws, lambda header: True)  # the first frame: epoch 0
        began = time.monotonic()
        ws.send_json({"type": "play", "id": 1})
        frames = frames_until(ws, lambda header: header["epoch"] >= 4, limit=10.0)
        elapsed = time.monotonic() - began
        ws.send_json({"type": "pause", "id": 2})
    epochs = [header["epoch"] for header, _ in frames]
    # Epochs 1..4 are due at 0, 0.5, 1.0 and 1.5 s: ~1.5 s, one frame each, no empty frames
    # (at 30 frames/s flat out, 1.5 s would be ~45 frames).
    assert 1.3 <= elapsed <= 3.0, elapsed
    assert len(frames) <= 5 and epochs[-1] == 4, epochs
    assert all(len(arrays["epochs"]) >= 1 for _, arrays in frames), epochs
