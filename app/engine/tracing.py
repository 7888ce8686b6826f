"""Sequential.trace: the forward and backward pass of one batch, every unit's z, a and delta.

A function taking the model first; model.py binds it as Sequential's `trace` method.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy.typing as npt

from app.engine.layers import Array

if TYPE_CHECKING:
    from app.engine.model import Sequential


@dataclass(frozen=True)
class LayerTrace:
    """One layer's view of one batch: z and a per unit (n, units), delta = dL/dz."""

    index: int
    name: str
    kind: str
    z: Array
    a: Array
    delta: Array


@dataclass(frozen=True)
class Trace:
    """Forward and backward pass of one batch, without any update.

    `loss` is the data loss and `penalty` the regularization terms; `gradients` (keyed like
    `Sequential.parameters()`) are those of loss + penalty, i.e. what a step would apply.
    """

    x: Array
    y: Array
    output: Array
    loss: float
    penalty: float
    layers: list[LayerTrace]
    gradients: dict[str, Array]


def trace(model: Sequential, x: npt.ArrayLike, y: npt.ArrayLike, training: bool = False) -> Trace:
    """Forward and backward of one batch with no update and no lasting side effect.

    training=True traces the training-mode pass (dropout, batch statistics); the noise
    generator and BN moving averages are restored afterwards, so a trace never changes
    what training does next.
    """
    loss = model._require_loss("trace")
    x_array, y_array = model._check_xy(x, y)
    noise_state = model.noise_rng.bit_generator.state
    saved_state = [{k: v.copy() for k, v in layer.state.items()} for layer in model.layers]
    try:
        output = model._forward(x_array, training=training)
        value = model._data_loss(loss, y_array, output)
        model._backward(loss, y_array, output)
    finally:
        model.noise_rng.bit_generator.state = noise_state
        for layer, state in zip(model.layers, saved_state, strict=True):
            for key, array in state.items():
                layer.state[key][...] = array
    layer_traces = []
    for i, layer in enumerate(model.layers):
        assert layer.z is not None and layer.a is not None and layer.delta is not None
        layer_traces.append(
            LayerTrace(
                i,
                layer.name,
                layer.describe(),
                layer.z.copy(),
                layer.a.copy(),
                layer.delta.copy(),
            )
        )
    return Trace(
        x=x_array.copy(),
        y=y_array.copy(),
        output=output.copy(),
        loss=value,
        penalty=model.penalty(),
        layers=layer_traces,
        gradients={key: grad.copy() for key, grad in model._gradients().items()},
    )
