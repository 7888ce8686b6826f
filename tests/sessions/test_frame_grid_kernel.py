"""The compiled float32 grid forward (app/engine/fast_grid_kernel.py) draws what float64 draws.

A frame's pictures are quantized to 256 levels between each picture's min and max, so the
tolerance that matters for display is a fraction of one level: every value of every layer
within 1/16 of a level (span / 255 / 16) of the float64 forward, every quantized code within
one of float64's codes, and small values (a saturated sigmoid's 1e-20) to float32's relative
precision, as the numpy float32 path kept them.
"""

from typing import Any

import numpy as np
import pytest

from app.engine import activations, fast, fast_grid
from app.engine import fast_grid_kernel as kernel
from app.engine.layers import Dense, Input
from app.engine.model import Sequential
from app.sessions.config import SessionConfig
from app.sessions.frame_builder import _grid_features, build_part
from app.sessions.frames import quantize
from app.sessions.session import TrainingSession

F32_EPS = float(np.finfo(np.float32).eps)


def _model(layers: list[Dense], seed: int, scale: float) -> Sequential:
    model = Sequential([Input((2,)), *layers], seed=seed)
    model.build(2)
    rng = np.random.default_rng(seed)
    for layer in model.layers:  # larger weights than an initializer's: saturated units too
        for value in layer.params.values():
            value[...] = rng.normal(scale=scale, size=value.shape)
    return model


NETS: dict[str, Any] = {
    "tanh-sigmoid": lambda: [Dense(4, "tanh"), Dense(2, "tanh"), Dense(1, "sigmoid")],
    "relu-leaky-elu-linear": lambda: [
        Dense(5, "relu"),
        Dense(4, activations.LeakyReLU(0.2)),
        Dense(3, activations.ELU(1.5)),
        Dense(1, "linear"),
    ],
    "softmax": lambda: [Dense(6, "tanh", use_bias=False), Dense(4, "softmax")],
    "sigmoid-tanh": lambda: [Dense(3, "sigmoid"), Dense(1, "tanh")],
}


@pytest.mark.parametrize("scale", [0.5, 4.0])
@pytest.mark.parametrize("net", sorted(NETS))
def test_compiled_float32_forward_is_within_a_sixteenth_of_a_display_level(
    net: str,
    scale: float,
) -> None:
    model = _model(NETS[net](), seed=len(net), scale=scale)
    assert fast_grid._kernel_table(model) is not None  # the compiled path, not the fallback
    points = np.random.default_rng(7).uniform(-6.0, 6.0, size=(3000, 2))
    exact = [a.copy() for a in fast.forward_all(model, points)]
    fast_grid_used = fast_grid._kernel_ok
    single = fast.forward_all(model, points, np.float32)
    assert fast_grid_used and fast_grid._kernel_ok
    for want, got in zip(exact, single, strict=True):
        assert got.shape == want.shape and got.dtype == np.float32
        for unit in range(want.shape[1]):
            w, g = want[:, unit], got[:, unit].astype(np.float64)
            level = (w.max() - w.min()) / 255.0
            assert np.all(np.abs(g - w) <= level / 16 + 4 * F32_EPS * np.abs(w) + 1e-30)
            if level > 0:
                codes_w, _, _ = quantize(w)
                codes_g, _, _ = quantize(got[:, unit])
                assert np.abs(codes_w.astype(int) - codes_g.astype(int)).max() <= 1


def test_approximations_keep_float32_relative_precision_over_their_whole_range() -> None:
    z = np.concatenate(
        [
            np.linspace(-100.0, 100.0, 20001),
            np.geomspace(1e-30, 1.0, 301),
            -np.geomspace(1e-30, 1.0, 301),
            [0.0],
        ]
    ).astype(np.float32)
    row = z.copy()
    kernel._tanh_row(row)
    want = np.tanh(z.astype(np.float64))
    assert np.all(np.abs(row - want) <= 4 * F32_EPS * np.abs(want) + 1e-45)
    inside = z[(z > -87.0) & (z < 88.0)]
    row = inside.copy()
    bits = np.empty(len(row), np.int32)
    kernel._exp_row(row, bits, bits.view(np.float32))
    want = np.exp(inside.astype(np.float64))
    assert np.all(np.abs(row - want) <= 4 * F32_EPS * want)


def test_a_saturated_sigmoid_keeps_its_tiny_values_and_nan_stays_nan() -> None:
    model = _model([Dense(1, "sigmoid")], seed=1, scale=1.0)
    model.layers[0].params["kernel"][...] = [[8.0], [0.0]]
    model.layers[0].params["bias"][...] = [-10.0]
    points = np.stack([np.linspace(-6.0, -1.0, 200), np.zeros(200)], axis=1)
    want = fast.forward_all(model, points)[-1][:, 0].copy()  # 1e-25 .. 1e-8
    got = fast.forward_all(model, points, np.float32)[-1][:, 0].astype(np.float64)
    np.testing.assert_allclose(got, want, rtol=1e-5)
    model.layers[0].params["kernel"][0, 0] = np.nan
    got = fast.forward_all(model, points, np.float32)[-1][:, 0]
    assert np.isnan(got).all()


def test_a_frames_pictures_match_the_float64_forwards_pictures() -> None:
    session = TrainingSession(SessionConfig(dataset="spiral", seed=3))
    session.step(20)
    while session.is_training:
        session.train_one_epoch()
    part = build_part(session, 1)
    r = session.config.grid_resolution
    extent = float(part.header["grid"]["extent"][1])
    features = np.asarray(_grid_features(session, r, extent), dtype=np.float64)
    exact = fast.forward_all(session.model, features)[-1][: r * r, 0]
    want, low, high = quantize(exact.reshape(r, r))
    got = part.sections["output"]
    assert abs(got.extra["min"] - low) <= (high - low) / 255 / 16
    assert abs(got.extra["max"] - high) <= (high - low) / 255 / 16
    assert np.abs(got.data.astype(int) - want.astype(int)).max() <= 1


def test_compiled_quantizing_gives_quantizes_and_quantize_columns_codes() -> None:
    from app.sessions.frame_builder import _quantize_neurons, _quantize_picture
    from app.sessions.frames import quantize_columns

    rng = np.random.default_rng(5)
    values = rng.normal(scale=3.0, size=10000).astype(np.float32)
    codes, low, high = _quantize_picture(values, 100)
    want, want_low, want_high = quantize(values.reshape(100, 100))
    np.testing.assert_array_equal(codes, want)
    assert (low, high) == (want_low, want_high)
    flat = np.full(16, 0.25, np.float32)  # a constant picture: all zero
    assert _quantize_picture(flat, 4)[0].tolist() == [[0] * 4] * 4
    # Hidden layers as the forward leaves them: (g*g, units) transposed views of unit rows.
    block = rng.normal(size=(7, 300)).astype(np.float32)
    block[5, 44:] = -1.5  # a constant picture among them
    hidden = [block[:4, 44:].T, block[4:7, 44:].T]
    planes, lows, highs = _quantize_neurons(hidden)
    want_planes, want_lows, want_highs = quantize_columns(np.concatenate(hidden, axis=1))
    np.testing.assert_array_equal(planes, want_planes)
    assert (lows, highs) == (want_lows, want_highs)
    # NaN and inf take numpy's own paths, with their results.
    block[2, 50], values[7] = np.nan, np.inf
    planes, lows, highs = _quantize_neurons(hidden)
    want_planes, want_lows, want_highs = quantize_columns(np.concatenate(hidden, axis=1))
    np.testing.assert_array_equal(planes, want_planes)
    codes, low, high = _quantize_picture(values, 100)
    want, want_low, want_high = quantize(values.reshape(100, 100))
    np.testing.assert_array_equal(codes, want)
    assert (low, high) == (want_low, want_high)
