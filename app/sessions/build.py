"""From a SessionConfig to the arrays and the compiled Sequential a session trains."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from app.datasets import USER_DATA_NAME, Dataset, dataset_from_points, featurize, make_dataset
from app.engine import constraints, optimizers, regularizers
from app.engine.layers import Activation, Dense, Dropout, Input, Layer, PReLU, RReLU
from app.engine.layers_norm import BatchNormalization
from app.engine.model import Sequential
from app.sessions.config import OUTPUT_ACTIVATION, SessionConfig

Array = np.ndarray[Any, np.dtype[np.float64]]
# Sequential(seed) spawns its generators from SeedSequence(seed): child 0 draws the initial
# weights. init_draw k >= 1 draws them from that stream's k-th child instead (spawn_key (0, k-1)),
# so every draw is fixed by (seed, k) alone and the batch-order and noise streams never move.
INIT_STREAM = 0


@dataclass(frozen=True)
class SessionData:
    """The split points and labels, their features, and the targets in the model's shape."""

    dataset: Dataset
    x_train: Array  # (n_train, n_features)
    x_test: Array
    y_train: Array  # (n, 1) for binary/regression, (n,) class indices for multiclass
    y_test: Array


@dataclass(frozen=True)
class BuiltModel:
    """The compiled model plus where its parts are (Dense blocks, neuron outputs)."""

    model: Sequential
    dense_indices: list[int]  # model.layers index of every Dense (hidden then output)
    neuron_indices: list[int]  # model.layers index whose output is a hidden block's activation
    block_of_dense: list[dict[str, Any]]  # per Dense: dropout rate and BN layer index (or None)
    fused: bool  # sigmoid+BCE or softmax+sparse CCE: loss from logits
    parameters: list[Array]  # the live trainable arrays (updated in place by the optimizer)


def make_data(config: SessionConfig) -> SessionData:
    """Generate (or take the user's) points, split them, featurize them."""
    if config.points is not None and config.test_points is not None:
        dataset = explicit_split(config, config.points, config.test_points)
    elif config.points is not None:
        table = np.asarray(config.points, dtype=np.float64)
        dataset = dataset_from_points(
            table[:, :2], table[:, 2], config.train_ratio, config.seed,
            kind=config.resolved_problem(),  # type: ignore[arg-type]
        )
    else:
        dataset = make_dataset(
            config.dataset, config.n_samples, config.noise, config.train_ratio, config.seed
        )
    return SessionData(
        dataset,
        featurize(dataset.x_train, config.features),
        featurize(dataset.x_test, config.features),
        targets(config, dataset.y_train),
        targets(config, dataset.y_test),
    )


def explicit_split(
    config: SessionConfig, train: list[list[float]], test: list[list[float]]
) -> Dataset:
    """The user's training and test points as given (no shuffle, no train_ratio)."""
    classes = config.resolved_problem() != "regression"

    def part(rows: list[list[float]]) -> tuple[Array, Any]:
        table = np.asarray(rows, dtype=np.float64)
        points, labels = table[:, :2].copy(), table[:, 2].copy()
        typed = labels.astype(np.int64) if classes else labels
        points.flags.writeable = typed.flags.writeable = False  # shared, as make_dataset's
        return points, typed

    (x_train, y_train), (x_test, y_test) = part(train), part(test)
    kind: Any = config.resolved_problem()
    return Dataset(USER_DATA_NAME, kind, config.n_classes(), x_train, y_train, x_test, y_test)


def targets(config: SessionConfig, labels: Any) -> Array:
    """Labels in the shape the loss wants: (n,) class indices for sparse CCE, else (n, 1)."""
    values = np.asarray(labels, dtype=np.float64).reshape(-1)
    if config.resolved_problem() == "multiclass":
        return values
    return values.reshape(-1, 1)


def make_regularizer(config: SessionConfig) -> regularizers.Regularizer | None:
    """The kernel regularizer of every Dense, or None."""
    rate = config.regularization_rate
    if config.regularization == "none" or rate == 0.0:
        return None
    if config.regularization == "l1_l2":
        return regularizers.get("l1_l2", l1=rate, l2=rate)
    return regularizers.get(config.regularization, **{config.regularization: rate})


def make_constraint(config: SessionConfig) -> constraints.Constraint | None:
    """Max-norm on the hidden kernels, or None."""
    if config.max_norm is None:
        return None
    return constraints.get("max_norm", max_value=config.max_norm)


def optimizer_params(config: SessionConfig) -> dict[str, Any]:
    """The config's values for exactly the parameters the chosen optimizer declares."""
    spec = optimizers.OPTIMIZERS[config.optimizer]
    return {
        p.name: getattr(config, p.name)
        for p in spec.params
        if p.name in SessionConfig.model_fields and getattr(config, p.name) is not None
    }


def make_model(config: SessionConfig) -> BuiltModel:
    """Input -> [Dense (-> BN -> Activation) (-> Dropout)] * hidden -> Dense output, compiled."""
    problem = config.resolved_problem()
    loss = config.resolved_loss()
    n_out = config.n_classes() if problem == "multiclass" else 1
    regularizer = make_regularizer(config)
    constraint = make_constraint(config)
    layers: list[Layer] = []
    dense_indices: list[int] = []
    neuron_indices: list[int] = []
    blocks: list[dict[str, Any]] = []
    for spec in config.layers:
        dense_indices.append(len(layers))
        block: dict[str, Any] = {"dropout": spec.dropout, "batch_norm": None}
        layers.append(Dense(
            spec.units,
            activation=None if spec.batch_norm else spec.activation,
            kernel_initializer=config.initializer,
            kernel_regularizer=regularizer,
            kernel_constraint=constraint,
        ))
        if spec.batch_norm:
            block["batch_norm"] = len(layers)
            layers.append(BatchNormalization())
            layers.append(activation_after_norm(spec.activation))
        neuron_indices.append(len(layers) - 1)
        if spec.dropout > 0.0:
            layers.append(Dropout(spec.dropout))
        blocks.append(block)
    dense_indices.append(len(layers))
    blocks.append({"dropout": 0.0, "batch_norm": None})
    layers.append(Dense(
        n_out,
        activation=OUTPUT_ACTIVATION[problem],
        kernel_initializer=config.initializer,
        kernel_regularizer=regularizer,
    ))
    model = Sequential(seed=config.seed)
    if config.init_draw:
        model.init_rng = init_generator(config.seed, config.init_draw)
    model.add(Input(shape=(len(config.features),)))
    for layer in layers:
        model.add(layer)
    model.build(len(config.features))
    if config.init_scale != 1.0:  # the same draws, scaled: scale 1 stays bit-identical
        for index in dense_indices:
            model.layers[index].params["kernel"] *= config.init_scale
    model.compile(optimizer=optimizers.get(config.optimizer, **optimizer_params(config)), loss=loss)
    fused = (problem, loss) in (
        ("binary", "binary_crossentropy"),
        ("multiclass", "sparse_categorical_crossentropy"),
    )
    parameters = list(model.parameters().values())
    return BuiltModel(model, dense_indices, neuron_indices, blocks, fused, parameters)


def activation_after_norm(activation: str) -> Layer:
    """The activation that follows a batch norm: its own layer (PReLU's slope and RReLU's
    generator are state, so they are layers rather than functions, as in Keras)."""
    if activation == "prelu":
        return PReLU()
    if activation == "rrelu":
        return RReLU()
    return Activation(activation)


def init_generator(seed: int, init_draw: int) -> np.random.Generator:
    """The generator of initial weights for init_draw >= 1 (0 is the model's own init_rng)."""
    stream = np.random.SeedSequence(seed, spawn_key=(INIT_STREAM, init_draw - 1))
    return np.random.default_rng(stream)


def apply_live_changes(built: BuiltModel, config: SessionConfig) -> None:
    """Push hyper-parameters that keep the weights into the model and its optimizer."""
    model = built.model
    optimizer = model.optimizer
    assert optimizer is not None
    # Build (and so validate) everything first: a refused value must leave the model unchanged.
    regularizer = make_regularizer(config)
    constraint = make_constraint(config)
    spec = optimizers.OPTIMIZERS[config.optimizer]
    params = optimizer_params(config)
    spec.check_params("optimizer", params)
    for name, value in params.items():
        setattr(optimizer, name, value)
    # A slot the old settings did not need (SGD's velocity once momentum > 0) starts fresh.
    parameters = model.parameters()
    for key, slots in optimizer.state.items():
        for slot, value in optimizer.build_state(parameters[key]).items():
            slots.setdefault(slot, value)
    for position, index in enumerate(built.dense_indices):
        dense = model.layers[index]
        assert isinstance(dense, Dense)
        dense.kernel_regularizer = regularizer
        if position < len(built.dense_indices) - 1:
            dense.kernel_constraint = constraint


def grid_points(resolution: int, extent: float) -> Array:
    """Cell centres of an r x r grid over [-extent, extent]^2, row 0 at the top: (r*r, 2)."""
    step = 2.0 * extent / resolution
    centres = -extent + (np.arange(resolution) + 0.5) * step
    x1, x2 = np.meshgrid(centres, centres[::-1])
    return np.column_stack([x1.ravel(), x2.ravel()])
