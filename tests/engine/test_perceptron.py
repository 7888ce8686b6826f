"""Perceptron: the rule worked by hand, convergence on AND and OR, endless cycling on XOR."""

from __future__ import annotations

import numpy as np
import pytest

from app.engine import Perceptron

X = np.array([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]])
AND = np.array([0.0, 0.0, 0.0, 1.0])
OR = np.array([0.0, 1.0, 1.0, 1.0])
XOR = np.array([0.0, 1.0, 1.0, 0.0])


def test_one_pass_of_the_rule_worked_by_hand() -> None:
    # Weights (bias, w1, w2) start at 0; step(0) = 1 (the LTU fires at z >= 0); eta = 1.
    # (0,0): z=0 -> 1, y=0: w -= (1,0,0) -> (-1,0,0). (0,1): z=-1 -> 0, right.
    # (1,0): z=-1 -> 0, right. (1,1): z=-1 -> 0, y=1: w += (1,1,1) -> (0,1,1). Two errors.
    perceptron = Perceptron(2)
    assert perceptron.partial_fit(X, AND) == 2
    np.testing.assert_array_equal(perceptron.weights.ravel(), [0.0, 1.0, 1.0])
    np.testing.assert_array_equal(perceptron.bias, [0.0])
    np.testing.assert_array_equal(perceptron.kernel.ravel(), [1.0, 1.0])


def test_the_learning_rate_scales_each_update() -> None:
    perceptron = Perceptron(2, learning_rate=0.5)
    perceptron.partial_fit(X, AND)
    np.testing.assert_array_equal(perceptron.weights.ravel(), [0.0, 0.5, 0.5])


@pytest.mark.parametrize("labels", [AND, OR], ids=["and", "or"])
@pytest.mark.parametrize("shuffle", [False, True])
def test_converges_on_linearly_separable_tables(labels: np.ndarray, shuffle: bool) -> None:
    perceptron = Perceptron(2, seed=3)
    errors = perceptron.fit(X, labels, epochs=50, shuffle=shuffle)
    assert errors[-1] == 0 and len(errors) < 50
    np.testing.assert_array_equal(perceptron.predict(X).ravel(), labels)


def test_never_settles_on_xor_and_its_weights_cycle() -> None:
    perceptron = Perceptron(2)
    seen: dict[tuple[float, ...], int] = {}
    cycle_start = None
    for epoch in range(100):
        assert perceptron.partial_fit(X, XOR) > 0
        state = tuple(perceptron.weights.ravel())
        if state in seen and cycle_start is None:
            cycle_start = seen[state]
        seen.setdefault(state, epoch)
    assert cycle_start is not None  # the same weights came back: the rule goes round forever
    assert 0 not in perceptron.fit(X, XOR, epochs=100)
    # No line separates XOR, so at least one of the 4 points is always wrong.
    assert np.sum(perceptron.predict(X).ravel() != XOR) >= 1


def test_several_outputs_learn_independently() -> None:
    perceptron = Perceptron(2, n_outputs=2)
    errors = perceptron.fit(X, np.column_stack([AND, OR]), epochs=50)
    assert errors[-1] == 0
    np.testing.assert_array_equal(perceptron.predict(X), np.column_stack([AND, OR]))


@pytest.mark.parametrize(
    "x, y, message",
    [
        (np.ones((4, 3)), AND, r"x must have shape \(n, 2\)"),
        (X, np.array([0.0, 0.5, 1.0, 1.0]), "0/1 labels"),
        (X, np.ones(3), r"y must have shape \(4, 1\)"),
        (np.full((4, 2), np.nan), AND, "NaN"),
    ],
)
def test_bad_input_raises_value_error(x: np.ndarray, y: np.ndarray, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Perceptron(2).fit(x, y, epochs=1)


def test_bad_construction_raises_value_error() -> None:
    with pytest.raises(ValueError, match="n_inputs"):
        Perceptron(0)
    with pytest.raises(ValueError, match="learning_rate"):
        Perceptron(2, learning_rate=-1.0)
