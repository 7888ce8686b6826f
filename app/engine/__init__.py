"""The numpy engine: Keras names, signatures and shapes, so the lecture's code reads the same."""

from app.engine import (
    activations,
    callbacks,
    constraints,
    initializers,
    losses,
    optimizers,
    regularizers,
)
from app.engine.layers import Activation, Dense, Dropout, Input, Layer, PReLU, RReLU
from app.engine.layers_norm import BatchNormalization
from app.engine.model import Sequential
from app.engine.perceptron import Perceptron
from app.engine.tracing import LayerTrace, Trace

__all__ = [
    "Activation",
    "BatchNormalization",
    "Dense",
    "Dropout",
    "Input",
    "Layer",
    "LayerTrace",
    "PReLU",
    "Perceptron",
    "RReLU",
    "Sequential",
    "Trace",
    "activations",
    "callbacks",
    "constraints",
    "initializers",
    "losses",
    "optimizers",
    "regularizers",
]
