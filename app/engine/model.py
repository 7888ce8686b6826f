"""Sequential: a stack of layers trained by minibatch gradient descent, with Keras's surface.

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
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from app.engine import fast, losses, optimizers
from app.engine.callbacks import Callback, History, Logs
from app.engine.layers import Activation, Array, Dense, Input, Layer

IndexArray = npt.NDArray[np.intp]

METRICS = ("accuracy", "mae", "mse")


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


class Sequential:
    """A linear stack of layers, Keras-style: add, compile, fit, evaluate, predict."""

    def __init__(
        self,
        layers: Sequence[Layer | Input] | None = None,
        seed: int = 0,
        name: str | None = None,
    ) -> None:
        if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
            raise ValueError(f"seed must be an integer >= 0, got {seed!r}")
        self.seed = int(seed)
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
        if isinstance(input_dim, bool) or not isinstance(input_dim, int | np.integer):
            raise ValueError(f"input_dim must be a positive integer, got {input_dim!r}")
        if input_dim < 1:
            raise ValueError(f"input_dim must be a positive integer, got {input_dim!r}")
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
        if self.input_dim is None:
            raise ValueError(
                "the model is not built: start it with Input(shape=(n,)) or call build(n)"
            )
        return self.input_dim

    def _ensure_built(self) -> None:
        if not self.built:
            self.build(self._require_input_dim())

    @property
    def output_dim(self) -> int:
        """Units of the last layer."""
        self._ensure_built()
        return self.layers[-1].n_out

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
        names = [metrics] if isinstance(metrics, str) else list(metrics or [])
        for metric in names:
            if metric not in METRICS:
                raise ValueError(
                    f"unknown metric {metric!r}; expected one of: {', '.join(METRICS)}"
                )
        self.metrics = names

    def _require_training_setup(self) -> tuple[optimizers.Optimizer, losses.Loss]:
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

    def _check_y(self, y: npt.ArrayLike, n: int) -> Array:
        """y as a finite array: (n, units), or (n,) labels for the sparse loss."""
        array = np.asarray(y, dtype=np.float64)
        if not np.all(np.isfinite(array)):
            raise ValueError("y contains NaN or inf; expected finite numbers")
        units = self.output_dim
        sparse = self.loss is not None and self.loss.name == "sparse_categorical_crossentropy"
        if sparse:
            if array.ndim == 2 and array.shape[1] == 1:
                array = array[:, 0]
            if array.shape != (n,):
                raise ValueError(f"y must hold {n} integer labels, shape ({n},), got {array.shape}")
            return array
        if array.ndim == 1 and units == 1:
            array = array.reshape(-1, 1)
        if array.shape != (n, units):
            raise ValueError(
                f"y must have shape ({n}, {units}) to match the output, got {array.shape}"
            )
        return array

    def _check_xy(self, x: npt.ArrayLike, y: npt.ArrayLike) -> tuple[Array, Array]:
        x_array = self._check_x(x)
        return x_array, self._check_y(y, x_array.shape[0])

    # ---- one step: forward, loss, backward, penalties, update, constraints, report ----------

    def _forward(self, x: Array, training: bool) -> Array:
        for layer in self.layers:
            x = layer.forward(x, training)
        return x

    def _fused(self, loss: losses.Loss) -> bool:
        """Whether the output activation is the one the loss differentiates through (a - y)/n."""
        last = self.layers[-1]
        activation = last.activation if isinstance(last, Dense | Activation) else None
        return (
            activation is not None
            and loss.fused_activation is not None
            and activation.name == loss.fused_activation
        )

    def _data_loss(self, loss: losses.Loss, y: Array, y_pred: Array) -> float:
        if self._fused(loss):
            z = self.layers[-1].z
            assert z is not None
            return loss.fn_from_logits(y, z)
        return loss.fn(y, y_pred)

    def _backward(self, loss: losses.Loss, y: Array, y_pred: Array) -> None:
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
        return {key: layer.grads[name] for key, layer, name in self._slots}

    def _record_grad_norms(self) -> None:
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

    # ---- epochs ----------------------------------------------------------------------------

    def _run_epoch(
        self,
        x: Array,
        y: Array,
        batch_size: int,
        shuffle: bool,
        callbacks: Sequence[Callback] = (),
    ) -> float:
        """One pass over the data in minibatches; returns the size-weighted mean batch loss."""
        self._require_training_setup()
        n = x.shape[0]
        order: IndexArray = self.order_rng.permutation(n) if shuffle else np.arange(n)
        starts = range(0, n, batch_size)
        if fast.enabled and fast.supports(self):
            batch_losses = fast.train_epoch(self, x, y, batch_size, order)
        else:
            batch_losses = []
            for start in starts:
                batch = order[start : start + batch_size]
                batch_losses.append(self._train_step(x[batch], y[batch]))
        sizes = [min(batch_size, n - start) for start in starts]
        for index, value in enumerate(batch_losses):
            for callback in callbacks:
                callback.on_batch_end(index, {"loss": value})
        return float(np.dot(batch_losses, sizes) / n)

    @staticmethod
    def _check_batch_size(batch_size: int) -> int:
        if isinstance(batch_size, bool) or not isinstance(batch_size, int | np.integer):
            raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
        return int(batch_size)

    def train_epoch(
        self, x: npt.ArrayLike, y: npt.ArrayLike, batch_size: int, shuffle: bool = True
    ) -> float:
        """Train one epoch (the live sessions' unit of work); returns its mean loss."""
        x_array, y_array = self._check_xy(x, y)
        return self._run_epoch(x_array, y_array, self._check_batch_size(batch_size), shuffle)

    def train_on_batch(self, x: npt.ArrayLike, y: npt.ArrayLike) -> float:
        """One gradient step on exactly this batch; returns its loss (penalties included)."""
        x_array, y_array = self._check_xy(x, y)
        self._require_training_setup()
        return self._train_step(x_array, y_array)

    def fit(
        self,
        x: npt.ArrayLike,
        y: npt.ArrayLike,
        epochs: int = 1,
        batch_size: int = 32,
        shuffle: bool = True,
        validation_data: tuple[npt.ArrayLike, npt.ArrayLike] | None = None,
        validation_split: float = 0.0,
        callbacks: Sequence[Callback] | None = None,
        verbose: int = 0,
    ) -> History:
        """Train for `epochs`; History holds loss, val_loss and metrics per epoch.

        validation_split takes the LAST fraction of x, y before any shuffling (Keras).
        Training metrics are measured at the end of each epoch in inference mode, so the
        compiled fast path and the numpy path report the same numbers.
        """
        x_array, y_array = self._check_xy(x, y)
        if isinstance(epochs, bool) or not isinstance(epochs, int | np.integer) or epochs < 0:
            raise ValueError(f"epochs must be an integer >= 0, got {epochs!r}")
        batch_size = self._check_batch_size(batch_size)
        if not 0.0 <= validation_split < 1.0:
            raise ValueError(f"validation_split must be in [0, 1), got {validation_split!r}")
        val: tuple[Array, Array] | None = None
        if validation_data is not None:
            val = self._check_xy(*validation_data)
        elif validation_split > 0.0:
            n = x_array.shape[0]
            split_at = math.floor(n * (1.0 - validation_split))
            if split_at in (0, n):
                raise ValueError(
                    f"validation_split={validation_split} of {n} samples leaves an empty "
                    "training or validation set"
                )
            val = (x_array[split_at:], y_array[split_at:])
            x_array, y_array = x_array[:split_at], y_array[:split_at]
        self._require_training_setup()
        history = History()
        all_callbacks: list[Callback] = [history, *(callbacks or [])]
        for callback in all_callbacks:
            callback.set_model(self)
        self.stop_training = False
        for callback in all_callbacks:
            callback.on_train_begin()
        for epoch in range(int(epochs)):
            for callback in all_callbacks:
                callback.on_epoch_begin(epoch)
            logs: Logs = {
                "loss": self._run_epoch(x_array, y_array, batch_size, shuffle, all_callbacks)
            }
            if self.metrics:
                logs.update(self._metric_logs(x_array, y_array, prefix=""))
            if val is not None:
                logs["val_loss"] = self.loss_value(*val) + self.penalty()
                logs.update(self._metric_logs(*val, prefix="val_"))
            for callback in all_callbacks:
                callback.on_epoch_end(epoch, logs)
            if self.stop_training:
                break
        for callback in all_callbacks:
            callback.on_train_end()
        self.history = history
        return history

    # ---- inference -------------------------------------------------------------------------

    def predict(self, x: npt.ArrayLike, batch_size: int | None = None) -> Array:
        """Outputs in inference mode (n, units); batch_size bounds memory, None = one pass."""
        x_array = self._check_x(x)
        if batch_size is None:
            return self._forward(x_array, training=False)
        size = self._check_batch_size(batch_size)
        parts = [
            self._forward(x_array[start : start + size], training=False)
            for start in range(0, x_array.shape[0], size)
        ]
        return np.concatenate(parts, axis=0)

    def loss_value(self, x: npt.ArrayLike, y: npt.ArrayLike) -> float:
        """The data loss in inference mode, no update; penalties NOT included (see penalty())."""
        if self.loss is None:
            raise ValueError("the model needs compile(loss=...) before computing a loss")
        x_array, y_array = self._check_xy(x, y)
        y_pred = self._forward(x_array, training=False)
        return self._data_loss(self.loss, y_array, y_pred)

    def _metric(self, metric: str, y: Array, y_pred: Array) -> float:
        sparse = self.loss is not None and self.loss.name == "sparse_categorical_crossentropy"
        if metric == "accuracy":
            if sparse:
                return float(np.mean(np.argmax(y_pred, axis=1) == y.astype(np.intp)))
            if y_pred.shape[1] == 1:
                # A tanh output separates labels -1/1 at 0; probabilities separate at 0.5.
                last = self.layers[-1]
                tanh = isinstance(last, Dense | Activation) and (
                    last.activation is not None and last.activation.name == "tanh"
                )
                threshold = 0.0 if tanh else 0.5
                return float(np.mean((y_pred > threshold) == (y > threshold)))
            return float(np.mean(np.argmax(y_pred, axis=1) == np.argmax(y, axis=1)))
        if sparse:
            raise ValueError(f"metric {metric!r} needs one-hot or numeric targets, not labels")
        if metric == "mae":
            return float(np.mean(np.abs(y_pred - y)))
        return float(np.mean((y_pred - y) ** 2))

    def _metric_logs(self, x: Array, y: Array, prefix: str) -> Logs:
        if not self.metrics:
            return {}
        y_pred = self._forward(x, training=False)
        return {prefix + metric: self._metric(metric, y, y_pred) for metric in self.metrics}

    def evaluate(self, x: npt.ArrayLike, y: npt.ArrayLike) -> float | list[float]:
        """Loss (penalties included, as Keras) in inference mode; [loss, *metrics] with metrics."""
        if self.loss is None:
            raise ValueError("the model needs compile(loss=...) before evaluate")
        x_array, y_array = self._check_xy(x, y)
        y_pred = self._forward(x_array, training=False)
        value = self._data_loss(self.loss, y_array, y_pred) + self.penalty()
        if not self.metrics:
            return value
        return [value, *(self._metric(m, y_array, y_pred) for m in self.metrics)]

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

    # ---- traces ----------------------------------------------------------------------------

    def trace(self, x: npt.ArrayLike, y: npt.ArrayLike, training: bool = False) -> Trace:
        """Forward and backward of one batch with no update and no lasting side effect.

        training=True traces the training-mode pass (dropout, batch statistics); the noise
        generator and BN moving averages are restored afterwards, so a trace never changes
        what training does next.
        """
        if self.loss is None:
            raise ValueError("the model needs compile(loss=...) before trace")
        loss = self.loss
        x_array, y_array = self._check_xy(x, y)
        noise_state = self.noise_rng.bit_generator.state
        saved_state = [{k: v.copy() for k, v in layer.state.items()} for layer in self.layers]
        try:
            output = self._forward(x_array, training=training)
            value = self._data_loss(loss, y_array, output)
            self._backward(loss, y_array, output)
        finally:
            self.noise_rng.bit_generator.state = noise_state
            for layer, state in zip(self.layers, saved_state, strict=True):
                for key, array in state.items():
                    layer.state[key][...] = array
        layer_traces = []
        for i, layer in enumerate(self.layers):
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
            penalty=self.penalty(),
            layers=layer_traces,
            gradients={key: grad.copy() for key, grad in self._gradients().items()},
        )
