"""REST for lessons and instruments: status codes, exact details, and the numbers behind them."""

import base64
from collections.abc import Iterator

import httpx
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from app.api.routes import instruments, lessons, races, timetravel
from app.main import create_app
from app.sessions.frames import decode_frame
from tests.conftest import make_settings

MY_ROUTERS = (lessons.router, instruments.router, races.router, timetravel.router)


def with_my_routers(app: FastAPI) -> FastAPI:
    """The app with the lesson and instrument routers, unless app.main already includes them."""
    paths = {getattr(route, "path", None) for route in app.routes}
    for router in MY_ROUTERS:
        if not any(route.path in paths for route in router.routes):  # type: ignore[attr-defined]
            app.include_router(router)
    return app


@pytest.fixture
def client() -> Iterator[TestClient]:
    """A client that keeps the first owner token it is given (one owner for the whole test)."""
    app = with_my_routers(create_app(make_settings(max_sessions=3)))
    with TestClient(app) as test_client:

        def keep_token(response: httpx.Response) -> None:
            if response.status_code == 201 and "authorization" not in test_client.headers:
                response.read()
                body = response.json()
                if isinstance(body, dict) and body.get("owner_token"):
                    test_client.headers["Authorization"] = f"Bearer {body['owner_token']}"

        test_client.event_hooks["response"].append(keep_token)
        yield test_client


# ---- lessons ------------------------------------------------------------------------------------

def test_lessons_menu_and_one_lesson(client: TestClient) -> None:
    menu = client.get("/api/lessons")
    assert menu.status_code == 200
    assert [entry["number"] for entry in menu.json()] == list(range(1, 9))
    lesson = client.get("/api/lessons/xor-hidden-layer").json()
    assert lesson["kind"] == "session"
    assert lesson["demo"]["outputs"] == [0, 1, 1, 0]  # the slide's XOR outputs
    assert lesson["try_this"][1]["command"] == {"type": "step", "n": 500}


def test_unknown_lesson_is_404_naming_the_known_ones(client: TestClient) -> None:
    response = client.get("/api/lessons/dragons")
    assert response.status_code == 404
    assert response.json()["detail"].startswith("lesson 'dragons' not found; expected one of: ")


def test_each_lesson_preset_creates_a_session(client: TestClient) -> None:
    for entry in client.get("/api/lessons").json():
        lesson = client.get(f"/api/lessons/{entry['id']}").json()
        if lesson["kind"] != "session":
            continue
        client.headers.pop("Authorization", None)  # each session its own owner (deleted below)
        created = client.post("/api/sessions", json=lesson["config"])
        assert created.status_code == 201, (entry["id"], created.json())
        assert client.delete(f"/api/sessions/{created.json()['id']}").status_code == 204


# ---- perceptron and backprop --------------------------------------------------------------------

def test_perceptron_run_over_rest(client: TestClient) -> None:
    response = client.post("/api/instruments/perceptron", json={"dataset": "and-table"})
    assert response.status_code == 200
    body = response.json()
    assert body["converged"] is True
    assert body["predictions"] == [0, 0, 0, 1]  # AND


def test_perceptron_bad_dataset_is_422_naming_it(client: TestClient) -> None:
    response = client.post("/api/instruments/perceptron", json={"dataset": "circle"})
    assert response.status_code == 422
    assert response.json()["detail"][0]["msg"] == (
        "dataset='circle' is not a truth table; expected one of and-table, or-table, xor-table"
    )


def test_lecture_backprop_over_rest(client: TestClient) -> None:
    response = client.post("/api/instruments/backprop", json={"preset": "lecture"})
    assert response.status_code == 200
    body = response.json()
    values = {q["symbol"]: q["value"] for p in body["phases"] for q in p["quantities"]}
    assert abs(values["E_total"] - 0.29837) <= 1e-5  # the slide
    assert abs(values["w5'"] - 0.35891) <= 1e-5
    assert body["trace"]["gradient_check"]["passed"] is True
    assert body["example"]["weights"]["w5"] == 0.4  # the slide's starting weights
    assert body["example"]["inputs"] == [0.05, 0.1]


def test_backprop_needs_exactly_one_source(client: TestClient) -> None:
    response = client.post("/api/instruments/backprop", json={})
    assert response.status_code == 422
    assert "give exactly one of preset ('lecture') or config" in response.json()["detail"][0]["msg"]


def test_backprop_of_a_config_traces_its_first_batch(client: TestClient) -> None:
    response = client.post(
        "/api/instruments/backprop",
        json={"config": {"dataset": "xor", "batch_size": 7}, "numeric": True},
    )
    assert response.status_code == 200
    body = response.json()
    assert body["batch_size"] == 7
    assert len(body["trace"]["x"]) == 7
    assert body["trace"]["gradient_check"]["passed"] is True


def test_trace_of_a_live_session_leaves_it_untouched(client: TestClient) -> None:
    session = client.post("/api/sessions", json={"dataset": "xor"}).json()
    stepped = client.post(f"/api/sessions/{session['id']}/commands", json={"type": "step", "n": 3})
    before = stepped.json()["weights_hash"]
    trace = client.get(f"/api/sessions/{session['id']}/trace", params={"batch_size": 5})
    assert trace.status_code == 200
    assert trace.json()["epoch"] == 3
    assert trace.json()["source"] == "session"
    assert client.get(f"/api/sessions/{session['id']}").json()["weights_hash"] == before


def test_a_training_mode_trace_does_not_move_the_sessions_random_streams(
    client: TestClient,
) -> None:
    """The trace runs in the session's worker: with dropout and batch norm in training mode it
    draws noise and moves statistics, yet the traced session continues exactly as its twin."""
    config = {"dataset": "xor", "seed": 3,
              "layers": [{"units": 4, "activation": "relu", "dropout": 0.3, "batch_norm": True}]}
    traced = client.post("/api/sessions", json=config).json()["id"]
    twin = client.post("/api/sessions", json=config).json()["id"]
    for session_id in (traced, twin):
        client.post(f"/api/sessions/{session_id}/commands", json={"type": "step", "n": 2})
    trace = client.get(f"/api/sessions/{traced}/trace", params={"training": True})
    assert trace.status_code == 200
    hashes = [
        client.post(f"/api/sessions/{session_id}/commands", json={"type": "step", "n": 3})
        .json()["weights_hash"]
        for session_id in (traced, twin)
    ]
    assert hashes[0] == hashes[1]


def test_trace_batch_start_past_the_data_is_422(client: TestClient) -> None:
    session = client.post("/api/sessions", json={"dataset": "xor-table"}).json()
    response = client.get(f"/api/sessions/{session['id']}/trace", params={"batch_start": 9})
    assert response.status_code == 422
    assert response.json()["detail"][0]["msg"] == (
        "batch_start = 9 must be below the 4 training points"
    )


def test_trace_of_unknown_session_is_404(client: TestClient) -> None:
    response = client.get("/api/sessions/nope/trace")
    assert response.status_code == 404
    assert response.json()["detail"] == "session 'nope' not found"


# ---- races --------------------------------------------------------------------------------------

RACE = {
    "config": {"dataset": "xor", "n_samples": 40, "layers": [{"units": 3}], "grid_resolution": 6},
    "racers": [{"optimizer": "sgd", "learning_rate": 0.1}, {"optimizer": "adam"}],
}


def test_race_lifecycle(client: TestClient) -> None:
    created = client.post("/api/races", json=RACE)
    assert created.status_code == 201
    race = created.json()
    assert race["epoch"] == 0
    assert len({r["weights_hash"] for r in race["racers"]}) == 1  # identical start
    stepped = client.post(f"/api/races/{race['id']}/step", json={"epochs": 3}).json()
    assert stepped["epoch"] == 3
    assert [len(r["train_loss"]) for r in stepped["racers"]] == [3, 3]
    assert len(base64.b64decode(stepped["grids"][0]["output"])) == 36
    again = client.post(f"/api/races/{race['id']}/step", json={"epochs": 2, "grids": False})
    assert again.json()["first_epoch"] == 4 and again.json()["grids"] is None
    whole = client.get(f"/api/races/{race['id']}").json()
    assert [len(r["train_loss"]) for r in whole["racers"]] == [5, 5]
    assert client.delete(f"/api/races/{race['id']}").status_code == 204
    assert client.get(f"/api/races/{race['id']}").json() == {
        "detail": f"race {race['id']!r} not found"
    }


def test_race_with_a_bad_racer_is_422(client: TestClient) -> None:
    body = {**RACE, "racers": [{"optimizer": "nadam"}]}
    response = client.post("/api/races", json=body)
    assert response.status_code == 422
    assert "unknown optimizer 'nadam'" in response.json()["detail"][0]["msg"]


def test_races_are_bounded_by_max_sessions(client: TestClient) -> None:
    for _ in range(3):
        assert client.post("/api/races", json=RACE).status_code == 201
    response = client.post("/api/races", json=RACE)
    assert response.status_code == 429
    assert response.json()["detail"] == "3 races exist; max_sessions = 3"


# ---- time travel --------------------------------------------------------------------------------

def test_time_travel_and_fork(client: TestClient) -> None:
    session = client.post("/api/sessions", json={"dataset": "xor", "grid_resolution": 10}).json()
    sid = session["id"]
    hashes = {}
    for epoch in range(1, 7):
        reply = client.post(f"/api/sessions/{sid}/commands", json={"type": "step", "n": 1})
        hashes[epoch] = reply.json()["weights_hash"]  # the live run's own record
    summary = client.post(f"/api/sessions/{sid}/timetravel")
    assert summary.status_code == 201
    assert summary.json()["verified"] is True
    assert summary.json()["epochs"] == list(range(7))
    frame = client.get(f"/api/sessions/{sid}/timetravel/4")
    assert frame.headers["content-type"] == "application/octet-stream"
    header, arrays = decode_frame(frame.content)
    assert header["epoch"] == 4 and header["weights_hash"] == hashes[4]
    assert arrays["output"].shape == (10, 10)
    fork = client.post(
        f"/api/sessions/{sid}/timetravel/fork",
        json={"epoch": 2, "config": {"learning_rate": 0.3}},
    )
    assert fork.status_code == 201
    assert fork.json()["epoch"] == 2
    assert fork.json()["weights_hash"] == hashes[2]
    assert fork.json()["config"]["learning_rate"] == 0.3


def test_time_travel_over_rest_after_a_mid_run_change_forks_bit_for_bit(
    client: TestClient,
) -> None:
    """Through the worker: Adam, learning rate changed by PATCH at epoch 10 of 20. Gold: the
    live run's own weights hash after every epoch. Every stop's frame shows that epoch's hash;
    a fork from epoch 8 stepped 2 and one from 12 stepped 5 (after the change: the fork has
    the new rate, as the original had there) give the original's hashes at every epoch."""
    config = {"dataset": "xor", "grid_resolution": 6, "optimizer": "adam",
              "learning_rate": 0.01, "augmentation": True}
    sid = client.post("/api/sessions", json=config).json()["id"]
    hashes = {}

    def step(session_id: str) -> str:
        reply = client.post(f"/api/sessions/{session_id}/commands", json={"type": "step", "n": 1})
        assert reply.status_code == 200, reply.text
        return str(reply.json()["weights_hash"])

    for epoch in range(1, 21):
        if epoch == 11:
            changed = client.patch(f"/api/sessions/{sid}", json={"learning_rate": 0.05})
            assert changed.status_code == 200
        hashes[epoch] = step(sid)
    summary = client.post(f"/api/sessions/{sid}/timetravel").json()
    assert summary["epochs"] == list(range(21))
    for epoch in (3, 10, 11, 20):
        header, _ = decode_frame(client.get(f"/api/sessions/{sid}/timetravel/{epoch}").content)
        assert header["weights_hash"] == hashes[epoch], epoch
    for start, n in ((8, 2), (12, 5)):
        fork = client.post(f"/api/sessions/{sid}/timetravel/fork",
                           json={"epoch": start, "config": {}}).json()
        assert fork["weights_hash"] == hashes[start]
        for k in range(1, n + 1):
            assert step(fork["id"]) == hashes[start + k], (start, k)
        client.delete(f"/api/sessions/{fork['id']}")


def test_time_travel_frame_before_a_replay_is_404(client: TestClient) -> None:
    sid = client.post("/api/sessions", json={}).json()["id"]
    response = client.get(f"/api/sessions/{sid}/timetravel/0")
    assert response.status_code == 404
    assert response.json()["detail"] == (
        f"no replay of session {sid!r}: POST /api/sessions/{sid}/timetravel first"
    )


def test_fork_that_reshapes_is_422(client: TestClient) -> None:
    sid = client.post("/api/sessions", json={}).json()["id"]
    client.post(f"/api/sessions/{sid}/timetravel")
    response = client.post(
        f"/api/sessions/{sid}/timetravel/fork", json={"epoch": 0, "config": {"layers": []}}
    )
    assert response.status_code == 422
    assert response.json()["detail"][0]["msg"].startswith(
        "a fork keeps the weights, so it cannot change layers"
    )
