"""Lesson 2's demo: the lecture's hand-set XOR network of step units, run on the truth table."""

from typing import Any

import numpy as np

from app.engine import Dense, Input, Sequential

# The slide "XOR with Feedforward Neural Network": hidden h1 = step(x1 + x2 - 1.5) (an AND),
# h2 = step(x1 + x2 - 0.5) (an OR), output step(-h1 + h2 - 0.5): OR but not AND.
XOR_HAND_WEIGHTS: dict[str, list[Any]] = {
    "hidden_kernel": [[1.0, 1.0], [1.0, 1.0]],
    "hidden_bias": [-1.5, -0.5],
    "output_kernel": [[-1.0], [1.0]],
    "output_bias": [-0.5],
}
TRUTH_TABLE_INPUTS = [[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]]


def hand_set_xor() -> Sequential:
    """The slide's 2-2-1 network of step units with its hand-chosen weights (no training)."""
    model = Sequential([Input(shape=(2,)), Dense(2, "step"), Dense(1, "step")])
    w = XOR_HAND_WEIGHTS
    model.set_weights([w["hidden_kernel"], w["hidden_bias"], w["output_kernel"], w["output_bias"]])
    return model


def hand_set_xor_demo() -> dict[str, Any]:
    """The hand-set net on the truth table: hidden values and outputs, for lesson 2's page."""
    model = hand_set_xor()
    x = np.array(TRUTH_TABLE_INPUTS)
    output = model.predict(x)
    hidden = model.layers[0].a
    assert hidden is not None
    return {
        "weights": XOR_HAND_WEIGHTS,
        "inputs": TRUTH_TABLE_INPUTS,
        "hidden_net": np.asarray(model.layers[0].z).tolist(),
        "hidden": hidden.tolist(),
        "output_net": np.asarray(model.layers[1].z).tolist(),
        "outputs": output[:, 0].tolist(),
    }
