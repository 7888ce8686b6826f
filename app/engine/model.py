"""Sequential: a stack of layers trained by minibatch gradient descent, with Keras's surface.

This module holds the model itself: its structure, compile, the checks of its data, one
training step (forward, loss, backward, penalties, update, constraints, grad norms) and its
weights. The rest of Keras's surface is written as functions that take the model first and
are bound below as its methods, one module per job: training.py (train_epoch, fit),
inference.py (predict, loss_value, evaluate) and tracing.py (trace).

The model owns its randomness: one `np.random.SeedSequence(seed)` spawns three independent
generators, for initial weights, for the minibatch order, and for training noise (dropout
masks, RReLU slopes). Two models with the same seed therefore start from identical weights
and see identical minibatch orders whatever their optimizer or their dropout.

Losses: `fit`'s "loss" and `evaluate` include the regularization penalties (as Keras);
`loss_value` is the data loss alone (what TensorFlow Playground plots), `penalty()` the rest.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from app.engine import checks, inference, losses, optimizers, tracing, training
from app.engine.callbacks import History
from app.engine.layers import Activation, Array, Dense, Input, Layer
from app.engine.metrics import check_metric_names
from app.engine.tracing import LayerTrace, Trace

__all__ = ["LayerTrace", "Sequential", "Trace"]


class Sequential:
    """A linear stack of layers, Keras-style: add, compile, fit, evaluate, predict."""

    def __init__(
        self,
        layers: Sequence[Layer | Input] | None = None,
        seed: int = 0,
        name: str | None = None,
    ) -> None:
        self.seed = checks.whole_number("seed", seed, 0)
        self.name = name or "sequential"
        init_seq, order_seq, noise_seq = np.random.SeedSequence(self.seed).spawn(3)
        self.init_rng = np.random.default_rng(init_seq)
        self.order_rng = np.random.default_rng(order_seq)
        self.noise_rng = np.random.default_rng(noise_seq)
        self.layers: list[Layer] = []
        self.input_dim: int | None = None
        self.optimizer: optimizers.Optimizer | None = None
        self.loss: losses.Loss | None = None
        self.metrics: list[str] = []
        self.stop_training = False
        self.grad_norms: dict[str, float] = {}
        self.history = History()
        self._params: dict[str, Array] = {}
        self._slots: list[tuple[str, Layer, str]] = []
        self._name_counts: dict[str, int] = {}
        for layer in layers or []:
            self.add(layer)

    # ---- structure -------------------------------------------------------------------------

    def add(self, layer: Layer | Input) -> None:
        """Append a layer (an Input first fixes the number of input features)."""
        if isinstance(layer, Input):
            if self.layers or self.input_dim is not None:
                raise ValueError("Input must be the first entry of a Sequential, and only once")
            self.input_dim = layer.shape[0]
            return
        if not isinstance(layer, Layer):
            raise ValueError(f"expected a Layer or Input, got {type(layer).__name__}")
        if not layer.name:
            count = self._name_counts.get(layer.default_name, 0)
            self._name_counts[layer.default_name] = count + 1
            layer.name = layer.default_name if count == 0 else f"{layer.default_name}_{count}"
        layer.bind_noise(self.noise_rng)
        was_built = self.built
        self.layers.append(layer)
        if was_built:
            self.build(self._require_input_dim())

    @property
    def built(self) -> bool:
        """Whether every layer has its parameters."""
        return (
            bool(self.layers)
            and self.input_dim is not None
            and all(layer.built for layer in self.layers)
        )

    def build(self, input_dim: int) -> None:
        """Create every layer's parameters for `input_dim` input features."""
        checks.whole_number("input_dim", input_dim, 1)
        if self.input_dim is not None and self.input_dim != input_dim:
            raise ValueError(f"the model expects {self.input_dim} input features, got {input_dim}")
        if not self.layers:
            raise ValueError("the model has no layers: add a Dense layer before building")
        self.input_dim = int(input_dim)
        width = self.input_dim
        for layer in self.layers:
            width = layer.n_out if layer.built else layer.build(width, self.init_rng)
        self._slots = [
            (f"layers.{i}.{key}", layer, key)
            for i, layer in enumerate(self.layers)
            for key in layer.params
        ]
        self._params = {key: layer.params[name] for key, layer, name in self._slots}

    def _require_input_dim(self) -> int:
        """The number of input features; ValueError while it is unknown."""
        if self.input_dim is None:
            raise ValueError(
                "the model is not built: start it with Input(shape=(n,)) or call build(n)"
            )
        return self.input_dim

    def _ensure_built(self) -> None:
        """Build the layers that have no parameters yet; the input width must be known."""
        if not self.built:
            self.build(self._require_input_dim())

    @property
    def output_dim(self) -> int:
        """Units of the last layer."""
        self._ensure_built()
        return self.layers[-1].n_out

    def _output_activation(self) -> str | None:
        """The name of the last layer's activation function, if it is a Dense or Activation."""
        last = self.layers[-1]
        activation = last.activation if isinstance(last, Dense | Activation) else None
        return None if activation is None else activation.name

    # ---- compile ---------------------------------------------------------------------------

    def compile(
        self,
        optimizer: str | optimizers.Optimizer = "rmsprop",
        loss: str | losses.Loss | None = None,
        metrics: Sequence[str] | None = None,
    ) -> None:
        """Choose the optimizer, the loss and the metrics reported by fit and evaluate."""
        self.optimizer = optimizers.get(optimizer)
        self.loss = None if loss is None else losses.get(loss)
        self.metrics = check_metric_names(metrics)

    def _require_loss(self, before: str) -> losses.Loss:
        """The compiled loss; ValueError naming what needs it (`before`) when there is none."""
        if self.loss is None:
            raise ValueError(f"the model needs compile(loss=...) before {before}")
        return self.loss

    def _require_training_setup(self) -> tuple[optimizers.Optimizer, losses.Loss]:
        """The optimizer and loss; ValueError before compile or with a step activation."""
        if self.optimizer is None or self.loss is None:
            raise ValueError("the model needs compile(optimizer=..., loss=...) before training")
        for layer in self.layers:
            if layer.uses_step():
                raise ValueError(
                    f"layer {layer.name!r} uses the step activation, which has no useful "
                    "gradient: backpropagation through it cannot learn; use Perceptron for "
                    "step units, or sigmoid/tanh/relu to train with gradients"
                )
        return self.optimizer, self.loss

    def _sparse_labels(self) -> bool:
        """Whether targets are class labels (n,), as the sparse loss takes them."""
        return self.loss is not None and self.loss.name == "sparse_categorical_crossentropy"

    # ---- data checks -----------------------------------------------------------------------

    def _check_x(self, x: npt.ArrayLike) -> Array:
        """x as a finite (n, input_dim) float64 array, building the model if needed."""
        array = np.asarray(x, dtype=np.float64)
        if array.ndim != 2 or array.shape[0] == 0:
            raise ValueError(f"x must have shape (n, n_features) with n >= 1, got {array.shape}")
        if self.input_dim is None:
            self.build(array.shape[1])
        self._ensure_built()
        if array.shape[1] != self.input_dim:
            raise ValueError(
                f"x has {array.shape[1]} features per row; the model expects {self.input_dim}"
            )
        if not np.all(np.isfinite(array)):
            raise ValueError("x contains NaN or inf; expected finite numbers")
        return array

    def _check_xy(self, x: npt.ArrayLike, y: npt.ArrayLike) -> tuple[Array, Array]:
        """x as _check_x gives it, and y matching it and the output (see checks.as_targets)."""
        x_array = self._check_x(x)
        n = x_array.shape[0]
        return x_array, checks.as_targets(y, n, self.output_dim, self._sparse_labels())

    # ---- one step: forward, loss, backward, penalties, update, constraints, report ----------

    def _forward(self, x: Array, training: bool) -> Array:
        """X: (n, input_dim) -> Y: (n, units) through every layer; each keeps its z and a."""
        for layer in self.layers:
            x = layer.forward(x, training)
        return x

    def _fused(self, loss: losses.Loss) -> bool:
        """Whether the output activation is the one the loss differentiates through (a - y)/n."""
        fused = loss.fused_activation
        return fused is not None and self._output_activation() == fused

    def _data_loss(self, loss: losses.Loss, y: Array, y_pred: Array) -> float:
        """The loss of the last forward, from the logits when fused (no log of a saturated a)."""
        if self._fused(loss):
            z = self.layers[-1].z
            assert z is not None
            return loss.fn_from_logits(y, z)
        return loss.fn(y, y_pred)

    def _backward(self, loss: losses.Loss, y: Array, y_pred: Array) -> None:
        """dL/dY back through every layer, which fills its grads and delta."""
        last = self.layers[-1]
        if self._fused(loss):
            assert isinstance(last, Dense | Activation)
            d_x = last.backward_logits(loss.grad_logits(y, y_pred))
        else:
            d_x = last.backward(loss.grad(y, y_pred))
        for layer in reversed(self.layers[:-1]):
            d_x = layer.backward(d_x)

    def penalty(self) -> float:
        """Sum of every layer's regularization terms."""
        return sum((layer.penalty() for layer in self.layers), 0.0)

    def _gradients(self) -> dict[str, Array]:
        """The last backward's gradients, keyed like parameters()."""
        return {key: layer.grads[name] for key, layer, name in self._slots}

    def _record_grad_norms(self) -> None:
        """grad_norms["layers.{i}"]: the L2 norm of all of layer i's parameter gradients."""
        norms: dict[str, float] = {}
        for i, layer in enumerate(self.layers):
            if layer.params:
                squares = 0.0
                for key in layer.params:
                    grad = layer.grads[key]
                    squares += float(np.vdot(grad, grad))
                norms[f"layers.{i}"] = math.sqrt(squares)
        self.grad_norms = norms

    def _train_step(self, x: Array, y: Array) -> float:
        """One gradient step on one checked batch; returns its loss, penalties included."""
        optimizer, loss = self.optimizer, self.loss
        assert optimizer is not None and loss is not None, "checked by the caller"
        y_pred = self._forward(x, training=True)
        value = self._data_loss(loss, y, y_pred)
        self._backward(loss, y, y_pred)  # each layer adds its penalty's gradient here
        value += self.penalty()
        optimizer.apply_gradients(self._params, self._gradients())
        for layer in self.layers:
            layer.apply_constraints()
        self._record_grad_norms()
        return value

    def train_on_batch(self, x: npt.ArrayLike, y: npt.ArrayLike) -> float:
        """One gradient step on exactly this batch; returns its loss (penalties included)."""
        x_array, y_array = self._check_xy(x, y)
        self._require_training_setup()
        return self._train_step(x_array, y_array)

    # ---- epochs, inference and traces: functions of their own modules, bound as methods -----

    train_epoch = training.train_epoch
    fit = training.fit
    predict = inference.predict
    loss_value = inference.loss_value
    evaluate = inference.evaluate
    trace = tracing.trace

    # ---- weights ---------------------------------------------------------------------------

    def parameters(self) -> dict[str, Array]:
        """Trainable arrays keyed "layers.{i}.{param}": the live arrays, not copies."""
        self._ensure_built()
        return dict(self._params)

    def get_weights(self) -> list[Array]:
        """Copies of all weights in Keras order (BN: gamma, beta, moving mean, moving var)."""
        self._ensure_built()
        return [w for layer in self.layers for w in layer.get_weights()]

    def set_weights(self, weights: Sequence[npt.ArrayLike]) -> None:
        """Load weights given in get_weights' order and shapes (copied in place)."""
        self._ensure_built()
        expected = sum(len(layer.weight_slots()) for layer in self.layers)
        if len(weights) != expected:
            raise ValueError(f"set_weights expects {expected} arrays, got {len(weights)}")
        start = 0
        for layer in self.layers:
            count = len(layer.weight_slots())
            layer.set_weights(weights[start : start + count])
            start += count

    def summary(self) -> str:
        """A Keras-like table: layer, output shape, parameter count."""
        self._ensure_built()
        rows = [f'Model: "{self.name}"', f"{'Layer (type)':<40}{'Output Shape':<16}{'Param #':>9}"]
        trainable = non_trainable = 0
        for layer in self.layers:
            n_train = sum(int(w.size) for w in layer.params.values())
            n_state = sum(int(w.size) for w in layer.state.values())
            trainable, non_trainable = trainable + n_train, non_trainable + n_state
            label = f"{layer.name} ({layer.describe()})"
            rows.append(f"{label:<40}{f'(None, {layer.n_out})':<16}{n_train + n_state:>9}")
        rows += [
            f"Total params: {trainable + non_trainable}",
            f"Trainable params: {trainable}",
            f"Non-trainable params: {non_trainable}",
        ]
        return "\n".join(rows)
