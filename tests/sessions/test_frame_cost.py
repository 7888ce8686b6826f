"""The cheaper frame path (issue 8's capacity work) draws the same pictures as the exact one."""

from dataclasses import replace
from typing import Any

import numpy as np
import pytest

from app.engine import fast
from app.engine.layers import Dense, Dropout, Input
from app.engine.model import Sequential
from app.sessions.config import SessionConfig
from app.sessions.frame_builder import build_part
from app.sessions.frames import (
    decode_frame,
    frame_bytes,
    merge_parts,
    preencode,
    quantize,
    quantize_columns,
    split_rows,
)
from app.sessions.session import TrainingSession


@pytest.mark.parametrize("output", ["sigmoid", "tanh", "linear", "softmax"])
def test_forward_all_in_float32_matches_float64_to_float32_rounding(output: str) -> None:
    hidden = [Dense(5, "relu"), Dropout(0.5), Dense(4, "elu"), Dense(3, "sigmoid"),
              Dense(4, "tanh")]
    model = Sequential([Input((2,)), *hidden, Dense(3 if output == "softmax" else 1, output)])
    model.build(2)
    points = np.random.default_rng(1).uniform(-6.0, 6.0, size=(500, 2))
    exact = [a.copy() for a in fast.forward_all(model, points)]
    single = fast.forward_all(model, points, np.float32)
    for want, got in zip(exact, single, strict=True):
        assert got.shape == want.shape
        # float32 keeps ~7 digits; a 256-level picture needs ~3.
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    # The float64 buffers are separate: the float32 call did not overwrite them.
    np.testing.assert_array_equal(fast.forward_all(model, points)[-1], exact[-1])


def test_quantize_columns_is_quantize_of_each_column() -> None:
    rng = np.random.default_rng(2)
    columns = rng.normal(size=(256, 5)).astype(np.float32)
    columns[:, 3] = 0.25  # a constant picture: all zero, equal range
    codes, lows, highs = quantize_columns(columns)
    assert codes.shape == (5, 256) and codes.dtype == np.uint8
    for j in range(5):
        want, low, high = quantize(columns[:, j])
        np.testing.assert_array_equal(codes[j], want)
        assert (lows[j], highs[j]) == (low, high)
    assert not codes[3].any() and lows[3] == highs[3] == 0.25


def test_quantize_columns_with_non_finite_values_takes_quantizes_own_path() -> None:
    columns = np.array([[0.0, 1.0], [np.inf, 2.0], [1.0, np.nan], [0.5, 3.0]])
    codes, lows, highs = quantize_columns(columns)
    # Hand-computed: column 0 spans the finite 0..1 (inf -> 255); column 1 spans 1..3 (nan -> 0).
    assert codes.tolist() == [[0, 255, 255, 128], [0, 128, 0, 255]]
    assert (lows, highs) == ([0.0, 1.0], [1.0, 3.0])


@pytest.mark.parametrize("config", [
    {},
    {"dataset": "blobs-3", "lockstep": True},
    {"learning_rate": 10.0, "dataset": "xor"},
])
def test_a_frame_encoded_in_the_worker_is_byte_for_byte_the_plain_one(
    config: dict[str, Any],
) -> None:
    s = TrainingSession(SessionConfig.model_validate(config))
    s.step(30)
    while s.is_training:
        s.train_one_epoch()
    weights = np.stack([np.arange(5.0), np.arange(5.0) + 1])
    lockstep = (29, weights) if config.get("lockstep") else None
    plain = build_part(s, 3, lockstep)
    encoded = preencode(plain)
    assert encoded.sections == {} and "layers" not in encoded.header
    assert encoded.header["epoch"] == 30 and encoded.header["status"] == plain.header["status"]
    for seq in (0, 7):
        assert frame_bytes(encoded, seq) == frame_bytes(plain, seq)
    # Merged with a later part and split for the row cap, as the web process does.
    later_plain = build_part(s, 31)
    merged = merge_parts(encoded, preencode(later_plain))
    older, newer = split_rows(merged, 8)
    assert older is not None and older.header["rows_only"] is True
    assert frame_bytes(newer, 1) == frame_bytes(
        replace(newer, header=later_plain.header, sections=later_plain.sections, encoded=None), 1
    )
    header, arrays = decode_frame(frame_bytes(newer, 1))
    assert header["layers"] == plain.header["layers"] and arrays["output"].shape == (100, 100)


def test_shared_grid_buffers_give_each_models_own_outputs() -> None:
    models = []
    for seed in (1, 2):
        model = Sequential([Input((2,)), Dense(4, "tanh"), Dense(1, "sigmoid")], seed=seed)
        model.build(2)
        models.append(model)
    points = np.random.default_rng(3).uniform(-6.0, 6.0, size=(200, 2))
    own = [fast.forward_all(m, points, np.float32)[-1].copy() for m in models]
    first = fast.forward_all(models[0], points, np.float32, shared=True)[-1]
    np.testing.assert_array_equal(first, own[0])
    second = fast.forward_all(models[1], points, np.float32, shared=True)[-1]
    np.testing.assert_array_equal(second, own[1])
    # Documented: one set of buffers for both models (same widths), so the first is overwritten.
    assert np.shares_memory(first, second)
    assert not np.array_equal(own[0], own[1])
