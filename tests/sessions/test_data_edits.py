"""Data edits: new points keep the model (weights, optimizer, epoch, history); test_points."""

import json
from typing import Any

import numpy as np
import pytest
from pydantic import ValidationError

from app.sessions.config import SessionConfig
from app.sessions.export import SessionExport, export_session, import_session
from app.sessions.session import TrainingSession
from app.settings import get_settings
from tests.sessions.test_session import run, session


def rows(points: np.ndarray, labels: np.ndarray) -> list[list[float]]:
    return [[*p, float(y)] for p, y in zip(points.tolist(), np.ravel(labels).tolist(), strict=True)]


def click_add(s: TrainingSession, point: list[float]) -> dict[str, Any]:
    """What the page sends for a click: every training point plus the new one, the test set."""
    data = s.data.dataset
    return {"points": [*rows(data.x_train, data.y_train), point],
            "test_points": rows(data.x_test, data.y_test)}


def bce(s: TrainingSession, x: np.ndarray, y: np.ndarray) -> float:
    """Binary cross-entropy of the model on (x, y) by a textbook tanh/sigmoid forward."""
    weights = s.model.get_weights()
    a = x
    for i in range(0, len(weights) - 2, 2):
        a = np.tanh(a @ weights[i] + weights[i + 1])
    p = 1.0 / (1.0 + np.exp(-(a @ weights[-2] + weights[-1])))[:, 0]
    return float(np.mean(-(y * np.log(p) + (1 - y) * np.log(1 - p))))


def test_adding_a_point_keeps_the_model_and_trains_on_the_point() -> None:
    s = session(optimizer="adam")
    run(s, 5)
    trained, iterations = s.weights_hash(), s.model.optimizer.iterations
    moments = {key: slots["m"].copy() for key, slots in s.model.optimizer.state.items()}
    history_id, history = s.history_id, s.history.rows()
    assert s.update(click_add(s, [0.5, -0.25, 1.0])) is False
    # The model is untouched: same weights, optimizer state, epoch and history.
    assert s.weights_hash() == trained and s.epoch == 5 and s.history_id == history_id
    assert s.model.optimizer.iterations == iterations
    for key, slots in s.model.optimizer.state.items():
        assert np.array_equal(slots["m"], moments[key])
    assert np.array_equal(s.history.rows(), history)
    # The point is the last training point; the test set is as it was.
    public = s.public()
    assert (public["n_train"], public["n_test"]) == (251, 250)
    assert s.data.x_train[-1].tolist() == [0.5, -0.25] and s.data.y_train[-1, 0] == 1.0
    run(s, 1)
    assert s.epoch == 6 and len(s.history) == 6
    # The new epoch's train loss is over the 251 points, the added one included.
    x, y = s.data.dataset.x_train, s.data.dataset.y_train
    assert len(x) == 251
    assert s.history.rows()[-1][0] == pytest.approx(bce(s, x, y), rel=1e-9)


def test_training_after_an_edit_matches_a_session_imported_with_the_new_data() -> None:
    # Gold for "the kept model trains on the new data" (both engine paths get x per epoch):
    # an export of the same state whose config carries the new points, imported, then trained.
    s = session(dataset="xor", noise=0.1, optimizer="momentum")
    run(s, 4)
    exported = json.loads(json.dumps(export_session(s)))
    unedited = import_session(SessionExport.model_validate(exported), "unedited")
    edit = click_add(s, [-3.0, 3.0, 0.0])
    s.update(edit)
    exported["config"].update(edit)
    twin = import_session(SessionExport.model_validate(exported), "twin")
    run(s, 3)
    run(twin, 3)
    run(unedited, 3)
    assert s.weights_hash() == twin.weights_hash()
    assert s.weights_hash() != unedited.weights_hash()  # the point made a difference


def test_points_from_a_csv_keep_the_model_when_the_problem_stays() -> None:
    s = session()
    run(s, 3)
    trained = s.weights_hash()
    data = s.data.dataset
    points = rows(np.concatenate([data.x_train, data.x_test]),
                  np.concatenate([data.y_train, data.y_test]))[:100]
    assert s.update({"points": points}) is False
    assert s.weights_hash() == trained and s.epoch == 3
    # Without test_points, train_ratio splits them (shuffled by the seed): 50 and 50.
    assert (len(s.data.x_train), len(s.data.x_test)) == (50, 50)


def test_a_label_that_changes_the_classes_rebuilds() -> None:
    s = session()
    run(s, 3)
    assert s.update(click_add(s, [1.0, 1.0, 2.0])) is True  # 0/1 labels plus a 2: 3 classes
    assert s.epoch == 0 and len(s.history) == 0
    assert s.config.resolved_problem() == "multiclass" and s.config.n_classes() == 3
    assert s.model.get_weights()[-1].shape == (3,)


def test_an_edit_with_a_new_learning_rate_keeps_the_model_too() -> None:
    s = session()
    run(s, 2)
    trained = s.weights_hash()
    assert s.update({**click_add(s, [0.0, 0.0, 1.0]), "learning_rate": 0.1}) is False
    assert s.weights_hash() == trained and s.model.optimizer.learning_rate == 0.1


def test_an_edit_together_with_an_architecture_change_rebuilds() -> None:
    s = session()
    run(s, 2)
    assert s.update({**click_add(s, [0.0, 0.0, 1.0]), "layers": [{"units": 3}]}) is True
    assert s.epoch == 0 and len(s.data.x_train) == 251


def test_test_points_are_the_test_set_as_given() -> None:
    train = [[0.0, 0.0, 0.0], [1.0, 1.0, 1.0], [2.0, 0.0, 0.0], [0.0, 2.0, 1.0], [3.0, 3.0, 1.0]]
    test = [[-1.0, -1.0, 1.0], [-2.0, 2.0, 0.0]]
    s = session(points=train, test_points=test, train_ratio=0.9)
    assert s.data.x_train.tolist() == [row[:2] for row in train]
    assert s.data.y_train[:, 0].tolist() == [row[2] for row in train]
    assert s.data.x_test.tolist() == [row[:2] for row in test]
    assert s.data.y_test[:, 0].tolist() == [1.0, 0.0]


def test_test_labels_count_towards_the_problem_and_classes() -> None:
    train = [[0.0, 0.0, 0.0], [1.0, 1.0, 1.0], [2.0, 0.0, 0.0], [0.0, 2.0, 1.0]]
    config = SessionConfig.model_validate({"points": train, "test_points": [[5.0, 5.0, 3.0]]})
    assert (config.resolved_problem(), config.n_classes()) == ("multiclass", 4)


@pytest.mark.parametrize(("config", "message"), [
    ({"test_points": [[0.0, 0.0, 1.0]]}, "test_points needs points"),
    ({"points": [[0.0, 0.0, 1.0]] * 4, "test_points": []}, "test_points has 0 rows; expected"),
    ({"points": [[0.0, 0.0, 1.0]] * 4, "test_points": [[0.0, 1.0]]},
     r"test_points\[0\] has 2 values; expected \[x1, x2, label\]"),
    ({"points": [[0.0, 0.0, 1.0]] * 4, "test_points": [[0.0, 1.0, 0.5]], "problem": "binary"},
     r"test_points\[0\] label 0.5 is not 0 or 1"),
])
def test_bad_test_points_are_refused_naming_the_field(config: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        SessionConfig.model_validate(config)


def test_points_and_test_points_together_are_bounded_by_max_samples() -> None:
    limit = get_settings().max_samples
    half = limit // 2 + 1
    config = {"points": [[0.0, 0.0, 1.0]] * half, "test_points": [[1.0, 0.0, 0.0]] * half}
    with pytest.raises(ValidationError) as caught:
        SessionConfig.model_validate(config)
    assert f"len(points) + len(test_points) = {2 * half} exceeds max_samples = {limit}" in str(
        caught.value
    )
    config["test_points"] = config["test_points"][: limit - half]
    assert SessionConfig.model_validate(config).test_points is not None
