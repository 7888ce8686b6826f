"""REST: sessions CRUD, commands, predict, export/import, CSV, registry, limits as 4xx.

Every test that makes an app runs on both backends (tests/conftest.py BOTH_BACKENDS): `[local]`
with worker threads of the test process, `[ray]` with the sessions in shard actors of a real Ray
cluster (scripts/test.sh's ray step).
"""

import time
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from app.main import create_app
from tests.conftest import RAY_SHARDS, make_settings

BOTH_BACKENDS = True


def create(client: TestClient, **config: Any) -> dict[str, Any]:
    response = client.post("/api/sessions", json=config)
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


def forward(weights: list[Any], x: np.ndarray) -> np.ndarray:
    """Textbook tanh layers and a sigmoid output from exported weights."""
    a = x
    for i in range(0, len(weights) - 2, 2):
        a = np.tanh(a @ np.array(weights[i]) + np.array(weights[i + 1]))
    z = a @ np.array(weights[-2]) + np.array(weights[-1])
    result: np.ndarray = 1.0 / (1.0 + np.exp(-z))
    return result


def test_health(client: TestClient, backend: str) -> None:
    # "workers" counts the session hosts this process talks to: its one worker thread on
    # local, the shard actors of the cluster on ray.
    workers = 1 if backend == "local" else RAY_SHARDS
    assert client.get("/health").json() == {"status": "ok", "sessions": 0, "workers": workers}


def test_create_read_list_delete(client: TestClient) -> None:
    session = create(client)
    assert session["status"] == "paused" and session["epoch"] == 0
    assert session["ws_url"] == f"/ws/sessions/{session['id']}"
    token = session.pop("owner_token")
    assert isinstance(token, str) and len(token) >= 43  # 256 bits, url-safe base64
    assert client.get(f"/api/sessions/{session['id']}").json() == session
    assert [s["id"] for s in client.get("/api/sessions").json()] == [session["id"]]
    assert client.delete(f"/api/sessions/{session['id']}").status_code == 204
    missing = client.get(f"/api/sessions/{session['id']}")
    assert missing.status_code == 404
    assert missing.json() == {"detail": f"session '{session['id']}' not found"}


def test_step_answers_after_its_epochs(client: TestClient) -> None:
    session = create(client)
    reply = client.post(f"/api/sessions/{session['id']}/commands", json={"type": "step", "n": 7})
    assert reply.status_code == 200
    body = reply.json()
    assert (body["epoch"], body["status"]) == (7, "paused")
    assert 0.0 <= body["metrics"]["test_accuracy"] <= 1.0


def test_predict_matches_a_textbook_forward_of_the_exported_weights(client: TestClient) -> None:
    session = create(client)
    sid = session["id"]
    client.post(f"/api/sessions/{sid}/commands", json={"type": "step", "n": 3})
    points = [[0.5, -1.0], [4.0, 4.0]]
    outputs = client.post(f"/api/sessions/{sid}/predict", json={"points": points}).json()
    weights = client.get(f"/api/sessions/{sid}/export").json()["weights"]
    assert np.allclose(outputs["outputs"], forward(weights, np.array(points)), rtol=1e-12)
    via_command = client.post(
        f"/api/sessions/{sid}/commands", json={"type": "predict", "points": points}
    ).json()
    assert via_command == outputs


def test_patch_keeps_weights_for_hyper_parameters_and_rebuilds_for_layers(
    client: TestClient,
) -> None:
    sid = create(client)["id"]
    trained = client.post(f"/api/sessions/{sid}/commands", json={"type": "step", "n": 2}).json()
    patched = client.patch(f"/api/sessions/{sid}", json={"learning_rate": 0.3}).json()
    assert patched["weights_hash"] == trained["weights_hash"] and patched["epoch"] == 2
    assert patched["config"]["learning_rate"] == 0.3
    rebuilt = client.patch(f"/api/sessions/{sid}", json={"layers": [{"units": 1}]}).json()
    assert rebuilt["epoch"] == 0 and rebuilt["config"]["layers"][0]["units"] == 1


def test_export_import_round_trip_continues_bit_identically(client: TestClient) -> None:
    sid = create(client, optimizer="adam", layers=[{"units": 3, "dropout": 0.2}])["id"]
    client.post(f"/api/sessions/{sid}/commands", json={"type": "step", "n": 5})
    exported = client.get(f"/api/sessions/{sid}/export").json()
    copy = client.post("/api/sessions/import", json=exported)
    assert copy.status_code == 201
    copy_id = copy.json()["id"]
    for session_id in (sid, copy_id):
        client.post(f"/api/sessions/{session_id}/commands", json={"type": "step", "n": 5})
    a = client.get(f"/api/sessions/{sid}").json()
    b = client.get(f"/api/sessions/{copy_id}").json()
    assert a["weights_hash"] == b["weights_hash"] and a["epoch"] == b["epoch"] == 10


def test_data_csv_holds_every_point_of_the_session(client: TestClient) -> None:
    session = create(client, dataset="xor", n_samples=40)
    response = client.get(f"/api/sessions/{session['id']}/data.csv")
    assert response.headers["content-type"].startswith("text/csv")
    lines = response.text.strip().splitlines()
    assert lines[0] == "x1,x2,label" and len(lines) == 41
    # XOR's rule (TFP): label 1 where x1 * x2 >= 0.
    for line in lines[1:]:
        x1, x2, label = (float(v) for v in line.split(","))
        assert label == (1.0 if x1 * x2 >= 0 else 0.0)


def test_user_points_from_csv_make_a_session(client: TestClient) -> None:
    text = "x1,x2,label\n1,1,1\n-1,-1,1\n1,-1,0\n-1,1,0\n2,2,1\n-2,2,0\n"
    parsed = client.post("/api/datasets/parse-csv", json={"text": text}).json()
    assert parsed["n_points"] == 6 and parsed["kind"] == "binary"
    assert parsed["points"][4] == [2.0, 2.0, 1.0]
    session = create(client, points=parsed["points"])
    assert session["n_train"] + session["n_test"] == 6


def test_csv_errors_name_the_line(client: TestClient) -> None:
    response = client.post("/api/datasets/parse-csv", json={"text": "1,2,0\n3,oops,1\n"})
    assert response.status_code == 422
    assert "line 2" in response.json()["detail"][0]["msg"]


def test_registry_lists_every_menu_with_limits_and_defaults(client: TestClient) -> None:
    registry = client.get("/api/registry").json()
    assert {"circle", "xor", "gauss", "spiral"} <= set(registry["datasets"])
    assert {"sigmoid", "tanh", "relu", "leaky_relu", "elu"} <= set(registry["activations"])
    assert {"sgd", "momentum", "adagrad", "rmsprop", "adam"} <= set(registry["optimizers"])
    assert registry["limits"]["max_units_per_layer"] == 16
    assert registry["defaults"]["learning_rate"] == 0.03
    alpha = registry["activations"]["leaky_relu"]["params"][0]
    assert (alpha["name"], alpha["default"]) == ("alpha", 0.01)


def test_dataset_preview_splits_by_the_ratio(client: TestClient) -> None:
    preview = client.get(
        "/api/datasets/gauss/preview", params={"n_samples": 100, "train_ratio": 0.3}
    ).json()
    assert (len(preview["train"]), len(preview["test"])) == (30, 70)
    assert client.get("/api/datasets/nope/preview").status_code == 404


@pytest.mark.parametrize(
    ("config", "loc", "msg"),
    [
        (
            {"layers": [{"units": 100}]},
            ["body", "layers", 0, "units"],
            "Value error, units = 100 exceeds max_units_per_layer = 16",
        ),
        (
            {"layers": [{"units": 2}] * 9},
            ["body", "layers"],
            "Value error, len(layers) = 9 exceeds max_hidden_layers = 8",
        ),
        (
            {"n_samples": 10_000},
            ["body", "n_samples"],
            "Value error, n_samples = 10000 exceeds max_samples = 5000",
        ),
        (
            {"batch_size": 5000},
            ["body", "batch_size"],
            "Value error, batch_size = 5000 exceeds max_batch_size = 1000",
        ),
        (
            {"grid_resolution": 500},
            ["body", "grid_resolution"],
            "Value error, grid_resolution = 500 exceeds max_grid_resolution = 200",
        ),
        (
            {"batch_size": True},
            ["body", "batch_size"],
            "Value error, expected an integer, got True",
        ),
        (
            {"learning_rate": "0.1"},
            ["body", "learning_rate"],
            "Value error, expected a number, got '0.1'",
        ),
        ({"init_scale": 1000}, ["body", "init_scale"], "Input should be less than or equal to 100"),
        ({"init_scale": 0}, ["body", "init_scale"], "Input should be greater than 0"),
    ],
)
def test_limits_give_422_naming_field_value_and_limit(
    client: TestClient, config: dict[str, Any], loc: list[Any], msg: str
) -> None:
    response = client.post("/api/sessions", json=config)
    assert response.status_code == 422
    errors = response.json()["detail"]
    assert [(e["loc"], e["msg"]) for e in errors] == [(loc, msg)]


def test_unknown_activation_lists_the_known_ones(client: TestClient) -> None:
    response = client.post("/api/sessions", json={"layers": [{"activation": "swish"}]})
    assert response.status_code == 422
    message = response.json()["detail"][0]["msg"]
    assert message.startswith("Value error, unknown activation 'swish'; expected one of: ")
    assert "tanh" in message and "step" not in message.split("expected one of: ")[1]


def test_nan_and_negative_rates_and_extra_fields_are_refused(client: TestClient) -> None:
    nan = client.post(
        "/api/sessions",
        content=b'{"learning_rate": NaN}',
        headers={"content-type": "application/json"},
    )
    assert nan.status_code == 422
    assert client.post("/api/sessions", json={"learning_rate": -1}).status_code == 422
    extra = client.post("/api/sessions", json={"colour": "red"})
    assert extra.status_code == 422 and extra.json()["detail"][0]["type"] == "extra_forbidden"


def test_malformed_json_is_a_4xx(client: TestClient) -> None:
    response = client.post(
        "/api/sessions", content=b"{", headers={"content-type": "application/json"}
    )
    assert 400 <= response.status_code < 500


def test_refused_command_is_409(client: TestClient) -> None:
    sid = create(client, epoch_budget=1)["id"]
    client.post(f"/api/sessions/{sid}/commands", json={"type": "step", "n": 1})
    refused = client.post(f"/api/sessions/{sid}/commands", json={"type": "play"})
    assert refused.status_code == 409
    assert "finished (epoch budget of 1 reached)" in refused.json()["detail"]


def test_capacity_gives_429(new_app: Callable[..., FastAPI]) -> None:
    with TestClient(new_app(max_sessions=2)) as client:
        create(client)
        create(client)
        response = client.post("/api/sessions", json={})
        assert response.status_code == 429
        assert response.json() == {"detail": "2 sessions exist; max_sessions = 2"}


def test_body_over_the_limit_is_413() -> None:
    with TestClient(create_app(make_settings(max_upload_bytes=100))) as client:
        response = client.post("/api/datasets/parse-csv", json={"text": "1,1,1\n" * 200})
        assert response.status_code == 413


def test_idle_sessions_leave_memory_and_come_back_on_request(
    new_app: Callable[..., FastAPI], backend: str, request: pytest.FixtureRequest
) -> None:
    """Issue 10: idle expiry deleted a session. Now it leaves memory (stored in the database)
    and its next request restores it, same epoch and weights; only a DELETE removes it."""
    with TestClient(new_app(session_idle_seconds=0.2)) as client:
        created = create(client)
        sid = created["id"]
        if backend == "local":
            deadline = time.monotonic() + 5.0
            # /health does not touch a session, so it does not keep it alive.
            while client.get("/health").json()["sessions"] == 1:
                assert time.monotonic() < deadline, "idle session was not evicted"
                time.sleep(0.1)
        else:
            # On ray the sessions' memory is the shards' (/health counts this replica's
            # handles, which hold no session state), and so is the idle janitor, which reads
            # the shards' own settings: its pass runs now, as if 700 s (> the default
            # session_idle_seconds, 600) had passed.
            space = request.getfixturevalue("ray_space")
            assert space.sweep(700.0) == ([sid], 0)
        back = client.get(f"/api/sessions/{sid}")
        assert back.status_code == 200
        assert (back.json()["epoch"], back.json()["weights_hash"]) == (
            created["epoch"],
            created["weights_hash"],
        )
        owner = {"authorization": f"Bearer {created['owner_token']}"}
        assert client.delete(f"/api/sessions/{sid}", headers=owner).status_code == 204
        assert client.get(f"/api/sessions/{sid}").status_code == 404


def test_import_is_validated_in_the_worker_with_field_errors(client: TestClient) -> None:
    sid = create(client)["id"]
    exported = client.get(f"/api/sessions/{sid}/export").json()
    exported["optimizer"]["iterations"] = True
    response = client.post("/api/sessions/import", json=exported)
    assert response.status_code == 422
    assert [(e["loc"], e["msg"]) for e in response.json()["detail"]] == [
        (["optimizer", "iterations"], "Value error, expected an integer, got True")
    ]
    broken = client.post(
        "/api/sessions/import", content=b"{", headers={"content-type": "application/json"}
    )
    assert broken.status_code == 400 and broken.json()["detail"].startswith("malformed JSON")
    # A refused import leaves no session behind.
    assert [s["id"] for s in client.get("/api/sessions").json()] == [sid]


def test_a_problem_that_does_not_fit_the_dataset_is_refused(client: TestClient) -> None:
    response = client.post("/api/sessions", json={"dataset": "reg-plane", "problem": "binary"})
    assert response.status_code == 422
    assert response.json()["detail"][0]["msg"] == (
        "Value error, problem 'binary' does not fit dataset 'reg-plane' (regression); "
        "expected one of: regression"
    )
