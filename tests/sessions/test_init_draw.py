"""init_draw: which initial weights a seed gives; reset re-rolls them, same_start restarts."""

import json
import math

import numpy as np
import pytest
from pydantic import ValidationError

from app.sessions.config import MAX_SEED, SessionConfig
from app.sessions.export import SessionExport, export_session, import_session
from tests.sessions.test_session import run, session


def glorot_gold(stream: np.random.SeedSequence) -> list[np.ndarray]:
    """The default net's initial weights drawn by hand: 2 -> 4 -> 2 -> 1, Glorot uniform kernels
    (limit sqrt(6 / (fan_in + fan_out))) in layer order, zero biases (which draw nothing)."""
    rng = np.random.default_rng(stream)
    weights = []
    for fan_in, fan_out in ((2, 4), (4, 2), (2, 1)):
        limit = math.sqrt(6.0 / (fan_in + fan_out))
        weights += [rng.uniform(-limit, limit, (fan_in, fan_out)), np.zeros(fan_out)]
    return weights


@pytest.mark.parametrize(("seed", "draw"), [(0, 0), (7, 0), (0, 1), (0, 2), (7, 5)])
def test_init_draw_k_is_the_init_streams_kth_child(seed: int, draw: int) -> None:
    # Draw 0: the model's own init stream, SeedSequence(seed).spawn(3)[0] (today's weights);
    # draw k >= 1: that stream's k-th child, init_stream.spawn(k)[k - 1].
    init_stream = np.random.SeedSequence(seed).spawn(3)[0]
    stream = init_stream if draw == 0 else init_stream.spawn(draw)[draw - 1]
    weights = session(seed=seed, init_draw=draw).model.get_weights()
    gold = glorot_gold(stream)
    assert len(weights) == len(gold)
    for got, expected in zip(weights, gold, strict=True):
        assert np.array_equal(got, expected), (got, expected)


def test_reset_rerolls_the_weights_on_the_same_data() -> None:
    s = session(dataset="spiral", noise=0.1)
    points, labels = s.data.x_train.copy(), s.data.y_train.copy()
    test_points = s.data.x_test.copy()
    hashes = [s.weights_hash()]
    for expected_draw in (1, 2, 3):
        run(s, 3)
        s.reset()
        assert s.config.init_draw == expected_draw
        assert (s.epoch, len(s.history), s.status) == (0, 0, "paused")
        hashes.append(s.weights_hash())
        assert np.array_equal(s.data.x_train, points) and np.array_equal(s.data.y_train, labels)
        assert np.array_equal(s.data.x_test, test_points)
    assert len(set(hashes)) == 4  # every reset a new start
    # Each re-rolled start is the one a fresh session with that init_draw gets.
    assert hashes[2] == session(dataset="spiral", noise=0.1, init_draw=2).weights_hash()


def test_reset_same_start_gives_the_runs_own_start_again() -> None:
    s = session(init_draw=4)
    start = [w.copy() for w in s.model.get_weights()]
    run(s, 5)
    s.reset(same_start=True)
    assert s.config.init_draw == 4 and s.epoch == 0
    for got, expected in zip(s.model.get_weights(), start, strict=True):
        assert np.array_equal(got, expected)
    # After a re-roll, same_start restarts from the re-rolled start, not the first one.
    s.reset()
    rerolled = s.weights_hash()
    run(s, 2)
    s.reset(same_start=True)
    assert s.weights_hash() == rerolled and s.config.init_draw == 5


def test_same_config_and_init_draw_train_bit_identically() -> None:
    config = {"dataset": "xor", "init_draw": 3, "optimizer": "adam",
              "layers": [{"units": 5, "activation": "relu", "dropout": 0.2}]}
    a, b = session(**config), session(**config)
    run(a, 6)
    run(b, 6)
    assert a.weights_hash() == b.weights_hash()
    assert np.array_equal(a.history.rows(), b.history.rows())


def test_init_draw_leaves_the_batch_order_and_noise_streams_alone() -> None:
    # The order and noise generators come from the seed alone, whatever the draw.
    a, b = session(seed=3), session(seed=3, init_draw=9)
    for name in ("order_rng", "noise_rng"):
        first = getattr(a.model, name).bit_generator.state
        assert getattr(b.model, name).bit_generator.state == first


def test_init_draw_survives_export_and_import_bit_identically() -> None:
    original = session(init_draw=2, dataset="circle", noise=0.2)
    run(original, 4)
    original.reset()  # init_draw 3
    run(original, 3)
    exported = json.loads(json.dumps(export_session(original)))
    assert exported["config"]["init_draw"] == 3
    copy = import_session(SessionExport.model_validate(exported), "copy")
    run(original, 4)
    run(copy, 4)
    assert copy.weights_hash() == original.weights_hash()
    copy.reset(same_start=True)
    assert copy.weights_hash() == session(init_draw=3, noise=0.2).weights_hash()


@pytest.mark.parametrize("value", [-1, MAX_SEED, 1.5, True, "2"])
def test_init_draw_is_a_whole_number_in_range(value: object) -> None:
    with pytest.raises(ValidationError, match="init_draw"):
        SessionConfig.model_validate({"init_draw": value})


def test_the_last_draw_cannot_roll_over() -> None:
    s = session(init_draw=MAX_SEED - 1)
    start = s.weights_hash()
    with pytest.raises(ValidationError, match="init_draw"):
        s.reset()
    assert s.config.init_draw == MAX_SEED - 1 and s.weights_hash() == start
