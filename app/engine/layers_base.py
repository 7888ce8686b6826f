"""The layer base class and the Input marker shared by every layer module.

Every layer maps X: (n, n_in) -> Y: (n, n_out), keeps `z` and `a` of its last forward (for traces
and neuron heatmaps), and on `backward(dY)` fills `grads` (same keys as `params`), stores
`delta` = dL/dz and returns dX. Randomness (dropout masks, RReLU slopes) comes from `noise_rng`,
the generator the owning model hands down; initial values from the generator given to `build`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

Array = npt.NDArray[np.float64]
Generator = np.random.Generator


class Layer:
    """Base layer: identity map with no parameters; subclasses override forward/backward."""

    default_name = "layer"

    def __init__(self, name: str | None = None) -> None:
        self.name = name or ""
        self.params: dict[str, Array] = {}
        self.grads: dict[str, Array] = {}
        self.state: dict[str, Array] = {}
        self.n_in = 0
        self.n_out = 0
        self.built = False
        self.noise_rng: Generator | None = None
        self.z: Array | None = None
        self.a: Array | None = None
        self.delta: Array | None = None

    def build(self, n_in: int, rng: Generator) -> int:
        """Create parameters for `n_in` inputs; returns the number of outputs."""
        self.n_in = self.n_out = n_in
        self.built = True
        return self.n_out

    def bind_noise(self, rng: Generator) -> None:
        """Hand down the model's generator for training-time noise."""
        self.noise_rng = rng

    def forward(self, x: Array, training: bool) -> Array:
        """X: (n, n_in) -> Y: (n, n_out)."""
        self.z = self.a = x
        return x

    def backward(self, dy: Array) -> Array:
        """dY: (n, n_out) -> dX: (n, n_in); fills `grads`."""
        self.delta = dy
        return dy

    def penalty(self) -> float:
        """Regularization terms of this layer (their gradients are added in backward)."""
        return 0.0

    def apply_constraints(self) -> None:
        """Project the parameters back onto their constraints after an update."""

    def uses_step(self) -> bool:
        """Whether this layer applies the step function (which has no useful gradient)."""
        return False

    def weight_slots(self) -> list[tuple[dict[str, Array], str]]:
        """The (dict, key) of every weight in Keras's get_weights order."""
        return [(self.params, key) for key in self.params]

    def get_weights(self) -> list[Array]:
        """Copies of the weights in Keras order."""
        return [store[key].copy() for store, key in self.weight_slots()]

    def set_weights(self, weights: Sequence[npt.ArrayLike]) -> None:
        """Copy `weights` (Keras order and shapes) into the existing arrays, in place."""
        slots = self.weight_slots()
        if len(weights) != len(slots):
            raise ValueError(
                f"layer {self.name!r} expects {len(slots)} weight arrays "
                f"({', '.join(key for _, key in slots)}), got {len(weights)}"
            )
        for (store, key), value in zip(slots, weights, strict=True):
            array = np.asarray(value, dtype=np.float64)
            if array.shape != store[key].shape:
                raise ValueError(
                    f"layer {self.name!r} weight {key!r} expects shape {store[key].shape}, "
                    f"got {array.shape}"
                )
            if not np.all(np.isfinite(array)):
                raise ValueError(f"layer {self.name!r} weight {key!r} contains NaN or inf")
            # In place: the optimizer and the fast path hold references to these arrays.
            store[key][...] = array

    def describe(self) -> str:
        """A short description for summary()."""
        return type(self).__name__


class Input:
    """The input shape marker, Keras's `Input(shape=(n,))`."""

    def __init__(self, shape: tuple[int, ...]) -> None:
        if len(shape) != 1 or int(shape[0]) < 1:
            raise ValueError(f"Input shape must be (n_features,) with n_features >= 1, got {shape}")
        self.shape = (int(shape[0]),)
