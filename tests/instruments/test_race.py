"""Optimizer race: identical start, identical batches, independent optimizers."""

import base64
from typing import Any

import numpy as np
import pytest

from app.engine.model import Sequential
from app.instruments.race import max_racers, start_race
from app.sessions.build import make_model
from app.sessions.config import SessionConfig

BASE = SessionConfig.model_validate({
    "dataset": "xor", "n_samples": 60, "layers": [{"units": 3}], "grid_resolution": 8,
})
ALL_FIVE: list[dict[str, Any]] = [
    {"optimizer": "sgd", "learning_rate": 0.1},
    {"optimizer": "momentum", "learning_rate": 0.1},
    {"optimizer": "adagrad", "learning_rate": 0.1},
    {"optimizer": "rmsprop", "learning_rate": 0.01},
    {"optimizer": "adam", "learning_rate": 0.01},
]


def test_the_engine_alone_gives_identical_initial_weights_across_optimizers() -> None:
    # The seed fixes the weights whatever the optimizer: checked on the engine itself.
    weights = [
        make_model(BASE.model_copy(update={"optimizer": name})).model.get_weights()
        for name in ("sgd", "momentum", "adagrad", "rmsprop", "adam")
    ]
    for other in weights[1:]:
        assert all(np.array_equal(a, b) for a, b in zip(weights[0], other, strict=True))


def test_racers_start_from_identical_weights() -> None:
    race = start_race(BASE, ALL_FIVE)
    first = race.sessions[0].model.get_weights()
    for session in race.sessions[1:]:
        assert all(
            np.array_equal(a, b) for a, b in zip(first, session.model.get_weights(), strict=True)
        )
    assert len({s.weights_hash() for s in race.sessions}) == 1


def test_racers_see_identical_data_and_batch_order(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[tuple[int, Any, bytes]] = []
    original = Sequential.train_epoch

    def recording(self: Sequential, x: Any, y: Any, batch_size: int, shuffle: bool = True) -> float:
        # The generator's state before the epoch fixes the permutation it draws.
        state = self.order_rng.bit_generator.state
        seen.append((id(self), repr(state), np.asarray(x).tobytes() + np.asarray(y).tobytes()))
        return original(self, x, y, batch_size, shuffle)

    monkeypatch.setattr(Sequential, "train_epoch", recording)
    race = start_race(BASE, ALL_FIVE)
    race.step(3)
    assert len(seen) == 3 * len(ALL_FIVE)
    for epoch in range(3):
        rows = seen[epoch * 5 : (epoch + 1) * 5]
        assert len({model for model, _, _ in rows}) == 5  # five different models ...
        assert len({state for _, state, _ in rows}) == 1  # ... one batch order ...
        assert len({data for _, _, data in rows}) == 1  # ... and the same points.
    assert seen[0][1] != seen[5][1]  # and a fresh order each epoch


def test_same_settings_race_identically_and_different_ones_do_not() -> None:
    race = start_race(BASE, [ALL_FIVE[4], ALL_FIVE[4], ALL_FIVE[0]])
    race.step(5)
    hashes = [s.weights_hash() for s in race.sessions]
    assert hashes[0] == hashes[1]
    assert hashes[0] != hashes[2]
    curves = race.curves()
    assert [c["label"] for c in curves] == ["adam lr=0.01", "adam lr=0.01 (2)", "sgd lr=0.1"]
    assert curves[0]["train_loss"] == curves[1]["train_loss"]
    assert len(curves[2]["train_loss"]) == 5


def test_curves_since_an_epoch_and_grids_decode() -> None:
    race = start_race(BASE, ALL_FIVE[:2])
    assert race.step(4) == 1
    assert race.step(2) == 5
    since = race.curves(since=5)
    assert since[0]["first_epoch"] == 5
    assert len(since[0]["test_loss"]) == 2
    for grid in race.grids():
        raw = base64.b64decode(grid["output"])
        assert len(raw) == 8 * 8
        assert 0.0 <= grid["min"] <= grid["max"] <= 1.0  # sigmoid probabilities


def test_a_diverging_racer_stops_alone() -> None:
    race = start_race(BASE, [{"optimizer": "sgd", "learning_rate": 10.0,
                              "label": "reckless"}, ALL_FIVE[0]])
    race.sessions[0].model.parameters()["layers.0.kernel"][...] = np.inf  # a non-finite weight
    race.step(2)
    curves = race.curves()
    assert curves[0]["status"] == "diverged"
    assert curves[1]["status"] == "paused"
    assert len(curves[1]["train_loss"]) == 2


@pytest.mark.parametrize(
    ("racers", "message"),
    [
        ([], "racers has 0 entries; expected 1..max_racers = "),
        ([{"optimizer": "sgd", "batch_size": 3}], "racers[0] has unknown field(s) batch_size"),
        ([{"optimizer": "nadam"}], "racers[0]: "),
        ([{"optimizer": "sgd", "learning_rate": -1.0}], "racers[0]: "),
    ],
)
def test_bad_racers_are_refused_by_name(racers: list[dict[str, Any]], message: str) -> None:
    with pytest.raises(ValueError) as error:
        start_race(BASE, racers)
    assert message in str(error.value)


def test_too_many_racers_name_the_limit() -> None:
    limit = max_racers()
    with pytest.raises(ValueError, match=f"expected 1..max_racers = {limit}"):
        start_race(BASE, [ALL_FIVE[0]] * (limit + 1))


def test_step_refuses_a_bad_epoch_count() -> None:
    race = start_race(BASE, ALL_FIVE[:1])
    with pytest.raises(ValueError, match=r"epochs = 0 must be an integer in 1\.\.max_race_step"):
        race.step(0)
