"""`Recipe`: everything a stand-alone script needs to train a session's network again.

A recipe is computed in the worker that holds the session (`recipe_from_session`), or from a
saved run's export (`recipe_from_export`), and handed to a renderer (`app.codegen.render`).
It is a frozen, picklable dataclass of plain values and float64 numpy arrays; nothing in it
refers back to the engine, so a renderer never imports app.engine.

The field contract (what the playground did, and how a script does the same):

Data
- `x_train`, `x_test`: (n, 2) float64 raw points (x1, x2), in the session's own order.
- `y_train`, `y_test`: (n,) float64 labels: 0/1 (binary), class index (multiclass), value
  (regression). The model's targets are `targets(split)`: (n, 1) for binary and regression,
  (n,) class indices for multiclass (sparse categorical cross-entropy).
- `features`: the input columns in order, names of `FEATURE_FORMULAS`, each a numpy
  expression in the 1-D arrays `x1`, `x2` (e.g. "np.sin(x1)") with the engine's arithmetic;
  `inputs(split)` is the engine's own matrix. Torch/Keras scripts compute features with numpy.
- `dataset`, `dataset_note`: where the points came from, for the script's comment.

Network (`layers`: hidden blocks in order, then the output layer, see `LayerRecipe`)
- each block is Dense(units, kernel (n_in, units), bias (units,)), then, when `batch_norm`
  is set, BatchNormalization(momentum, epsilon) between the Dense and its activation
  (the Dense is then linear), then the activation, then Dropout(dropout) when dropout > 0.
- `activation`: linear, sigmoid, tanh, relu, leaky_relu {alpha}, elu {alpha}, prelu {} (a
  learned slope per unit, the array "alpha" (units,) right after the Dense's bias in the
  weights; forward: z >= 0 ? z : alpha z), rrelu {lower, upper} (training: slope ~
  U[lower, upper] drawn per unit per batch; inference: (lower + upper) / 2), softmax
  (the output of a multiclass net). Formulas as app/engine/activations.py: leaky_relu is
  max(z, alpha z); elu is z >= 0 ? z : alpha expm1(z); sigmoid is exp(-logaddexp(0, -z)).
- `initial_weights`: the session's exact initial weights in Keras order (per Dense: kernel,
  bias, then PReLU's alpha; per BatchNormalization: gamma, beta, moving_mean,
  moving_variance); `weight_names` names each ("dense.kernel", ...). `final_weights`: the
  session's weights now (at `epochs`), the gold a script can compare itself with.

Training
- `loss`: mse, binary_crossentropy, sparse_categorical_crossentropy (means over the batch, as
  Keras). `fused`: the loss is computed from the output's logits (sigmoid + BCE, softmax +
  sparse CCE: dL/dz = (a - y) / n, no clipping); when False (binary with mse) the output's
  probabilities go through the plain formula.
- `optimizer`: registry name (sgd, momentum, adagrad, rmsprop, adam); `optimizer_class`: the
  engine's (Keras's) class name; `optimizer_params`: every hyperparameter in force, e.g.
  {"learning_rate", "momentum", "nesterov"} for SGD, {"learning_rate",
  "initial_accumulator_value", "epsilon"} for Adagrad, {"learning_rate", "rho", "momentum",
  "epsilon"} for RMSprop, {"learning_rate", "beta_1", "beta_2", "epsilon"} for Adam. Update
  formulas: app/engine/optimizers.py (Keras 3's; Adam's epsilon is added to sqrt(v) with the
  bias correction folded into the step size; Adagrad's accumulator starts at
  initial_accumulator_value and eps is inside the sqrt).
- `regularization`: None or {"l1": rate, "l2": rate} (Keras form: l1 sum|w| + l2 sum w^2, no
  1/2), on every Dense kernel (hidden and output), never on biases; `regularization_name` is
  the config's name (l1, l2, l1_l2). Its gradient is added to the kernel's; the losses the
  playground shows (`reported_*`) are data losses without it.
- `max_norm`: None or r: after every update each hidden Dense kernel's columns (a unit's
  incoming weights) with norm > r are scaled to norm r exactly (w * r / norm), the output
  layer is never clipped; `LayerRecipe.max_norm` says per layer.
- `early_stopping_patience`: None or p: after each epoch the test data loss (inference mode)
  is measured; it improves when strictly below the best so far; `wait` counts epochs in a
  row without improvement; training stops once wait >= p.
- `batch_size`, `epochs` (epochs trained; the script trains exactly this many).
- Batch order: before each epoch the playground draws `order = rng.permutation(n_train)`
  from ONE generator `rng = np.random.default_rng(np.random.SeedSequence(order_seed,
  spawn_key=order_spawn_key))` (made once, before epoch 0) and trains on
  x[order[i:i + batch_size]] for i = 0, batch_size, ... (the last batch may be smaller).
  `order_check` holds the first indices of epoch 0's order so a script can assert its numpy
  draws the same; `batch_orders()` gives every epoch's order.
- Training noise (dropout masks, RReLU slopes): drawn from one generator
  `np.random.default_rng(np.random.SeedSequence(order_seed, spawn_key=noise_spawn_key))`, in
  forward order per batch: Dropout draws `rng.random(x.shape) >= rate` (mask = keep /
  (1 - rate)), RReLU draws `rng.uniform(lower, upper, size=(units,))`. A numpy script can
  replay these exactly; Keras and torch draw their own.

Exactness
- `augmentation`: None, or `AugmentationRecipe` (its docstring: how the playground drew the
  augmented copies each epoch, so a numpy script redoes them exactly).
- `randomness`: the kinds of training-time randomness the run has ("dropout", "rrelu",
  "augmentation"), each a sentence; a framework script cannot reproduce these draws.
- `changes`: why this run is not what the recipe's settings give from its initial weights
  (settings or weights changed mid-run, points swapped, history trained elsewhere); each a
  sentence. Empty when the run is one uninterrupted run of the current settings.
- `exact`: no randomness and no changes: the weights at `epochs` follow from the recipe.
- `reported_train_loss`, `reported_test_loss`: what the playground showed at `epochs` (data
  losses, None before the first epoch or when not finite); `status`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import numpy.typing as npt

if TYPE_CHECKING:
    from app.sessions.export import SessionExport
    from app.sessions.session import TrainingSession

Array = npt.NDArray[np.float64]
IndexArray = npt.NDArray[np.intp]
Problem = Literal["binary", "multiclass", "regression"]

# Each feature's column as a numpy expression of x1 = points[:, 0], x2 = points[:, 1]: the
# same arithmetic as app/data/features.py, so a script computes bit-identical inputs.
FEATURE_FORMULAS: dict[str, str] = {
    "x1": "x1",
    "x2": "x2",
    "x1_sq": "x1 ** 2",
    "x2_sq": "x2 ** 2",
    "x1x2": "x1 * x2",
    "sin_x1": "np.sin(x1)",
    "sin_x2": "np.sin(x2)",
}
# Sequential(seed) spawns SeedSequence(seed).spawn(3): 0 initial weights, 1 batch order, 2 noise.
ORDER_SPAWN_KEY = (1,)
NOISE_SPAWN_KEY = (2,)
ORDER_CHECK_LENGTH = 8
PAST_UNKNOWN_PREFIX = "its first"
PAST_UNKNOWN = (
    "its first {elsewhere} epochs were trained before this session was imported, restored or "
    "forked, so they cannot be checked against the settings"
)
# Live settings that change only what is shown or when training ends, never the weights.
DISPLAY_ONLY = frozenset({
    "frame_rate", "speed", "lockstep", "grid_resolution", "neuron_grid_resolution",
    "epoch_budget",
})


@dataclass(frozen=True, eq=False)
class LayerRecipe:
    """One Dense block: Dense(units) [-> BatchNormalization] -> activation [-> Dropout]."""

    name: str  # the engine's layer name, e.g. "dense_1"
    units: int
    activation: str
    activation_params: Mapping[str, float] = field(default_factory=dict)
    dropout: float = 0.0
    batch_norm: bool = False
    bn_momentum: float = 0.99
    bn_epsilon: float = 1e-3
    max_norm: float | None = None  # clip this kernel's columns after every update
    regularized: bool = False  # the kernel carries the recipe's regularization
    is_output: bool = False
    n_in: int = 0
    kernel_initializer: str = "glorot_uniform"  # for the comment: the weights are embedded


@dataclass(frozen=True, eq=False)
class AugmentationRecipe:
    """The playground's augmentation (app/data/augment.py), enough to redo its draws.

    Each epoch, before the batch order is drawn, the training points are replaced by fresh
    copies from `rng = np.random.default_rng(list(seed_entropy))` (made once, before epoch 0):
    built-in data draws `chosen = rng.integers(0, len(matrices), n)`, moves each point to
    M (p - c) + c with M = matrices[chosen] and c = centre, then (any_rotation) turns it by
    `rng.uniform(0, 2 pi, n)` about c, then adds `rng.standard_normal((n, 2)) * jitter`; the
    labels move too: classes[chosen, label] (classification) or label * signs[chosen]
    (regression). User data (matrices None) only gets the jitter.
    """

    seed_entropy: tuple[int, ...]
    jitter: float
    matrices: Array | None = None  # (g, 2, 2)
    classes: npt.NDArray[np.int64] | None = None  # (g, n_classes): where element e sends class c
    signs: Array | None = None  # (g,): regression target factors
    centre: tuple[float, float] = (0.0, 0.0)
    any_rotation: bool = False


@dataclass(frozen=True, eq=False)
class Recipe:
    """Everything a script needs to retrain a session (the module docstring is the contract)."""

    source: Literal["session", "run"]
    session_id: str
    # data
    dataset: str
    dataset_note: str
    x_train: Array
    y_train: Array
    x_test: Array
    y_test: Array
    features: tuple[str, ...]
    # network
    problem: Problem
    n_classes: int
    layers: tuple[LayerRecipe, ...]
    initial_weights: tuple[Array, ...]
    final_weights: tuple[Array, ...]
    weight_names: tuple[str, ...]
    # training
    loss: str
    fused: bool
    optimizer: str
    optimizer_class: str
    optimizer_params: Mapping[str, float | bool]
    regularization_name: str
    regularization: Mapping[str, float] | None
    max_norm: float | None
    early_stopping_patience: int | None
    batch_size: int
    epochs: int
    order_seed: int
    order_spawn_key: tuple[int, ...]
    noise_spawn_key: tuple[int, ...]
    order_check: tuple[int, ...]
    # exactness
    randomness: tuple[str, ...]
    changes: tuple[str, ...]
    # what the playground showed
    reported_train_loss: float | None
    reported_test_loss: float | None
    status: str
    config: Mapping[str, Any] = field(default_factory=dict)  # the session's config, for show
    # Set when the run trains on augmented copies (a numpy script redoes them exactly).
    augmentation: AugmentationRecipe | None = None

    @property
    def exact(self) -> bool:
        """Whether the weights at `epochs` follow from the recipe alone (no draws, no edits)."""
        return not self.randomness and not self.changes

    @property
    def n_train(self) -> int:
        """Training points."""
        return int(self.x_train.shape[0])

    @property
    def n_outputs(self) -> int:
        """Units of the output layer."""
        return self.layers[-1].units

    @property
    def feature_formulas(self) -> dict[str, str]:
        """name -> numpy expression in x1, x2, for this recipe's features in order."""
        return {name: FEATURE_FORMULAS[name] for name in self.features}

    def inputs(self, split: Literal["train", "test"]) -> Array:
        """The network's input matrix (n, len(features)), as the engine computes it."""
        from app.datasets import featurize

        points = self.x_train if split == "train" else self.x_test
        inputs: Array = featurize(points, self.features)
        return inputs

    def targets(self, split: Literal["train", "test"]) -> Array:
        """Labels as the loss takes them: (n,) for multiclass, (n, 1) otherwise."""
        labels = self.y_train if split == "train" else self.y_test
        return labels.copy() if self.problem == "multiclass" else labels.reshape(-1, 1)

    def order_generator(self) -> np.random.Generator:
        """A fresh copy of the generator the playground drew its batch orders from."""
        return np.random.default_rng(
            np.random.SeedSequence(self.order_seed, spawn_key=self.order_spawn_key)
        )

    def batch_orders(self) -> list[IndexArray]:
        """Every epoch's order of the training points (epochs x n_train indices)."""
        rng = self.order_generator()
        return [rng.permutation(self.n_train) for _ in range(self.epochs)]

    @property
    def title(self) -> str:
        """A one-line description: dataset, shape, optimizer, epochs."""
        shape = "-".join(str(n) for n in [len(self.features), *(la.units for la in self.layers)])
        return f"{self.dataset}, {shape} network, {self.optimizer}, {self.epochs} epochs"


# ---- from a live session ---------------------------------------------------------------------


def _activation_of(layer: Any) -> tuple[str, dict[str, float]]:
    """(name, parameters) of a Dense's or an Activation layer's activation, or of a PReLU or
    RReLU layer itself (the activation after a batch norm)."""
    inner = layer if type(layer).__name__ in ("PReLU", "RReLU") else None
    inner = getattr(layer, "activation_layer", inner)
    if inner is not None:
        if type(inner).__name__ == "RReLU":
            return "rrelu", {"lower": float(inner.lower), "upper": float(inner.upper)}
        return "prelu", {}
    function = layer.activation
    return str(function.name), {k: float(v) for k, v in function.get_config().items()}


def _layers(session: TrainingSession) -> tuple[LayerRecipe, ...]:
    """The blocks of the session's model, read from the built model itself."""
    built = session.built
    model = built.model
    config = session.config
    n_dense = len(built.dense_indices)
    result: list[LayerRecipe] = []
    for position, index in enumerate(built.dense_indices):
        dense: Any = model.layers[index]
        block = built.block_of_dense[position]
        bn_index = block["batch_norm"]
        bn: Any = None if bn_index is None else model.layers[bn_index]
        if bn_index is not None:
            activation, params = _activation_of(model.layers[bn_index + 1])
        else:
            activation, params = _activation_of(dense)
        constraint = dense.kernel_constraint
        result.append(LayerRecipe(
            name=str(dense.name),
            units=int(dense.units),
            activation=activation,
            activation_params=params,
            dropout=float(block["dropout"]),
            max_norm=None if constraint is None else float(constraint.max_value),
            regularized=dense.kernel_regularizer is not None,
            is_output=position == n_dense - 1,
            n_in=int(dense.n_in),
            kernel_initializer=config.initializer,
            batch_norm=bn is not None,
            bn_momentum=0.99 if bn is None else float(bn.momentum),
            bn_epsilon=1e-3 if bn is None else float(bn.epsilon),
        ))
    return tuple(result)


def _augmentation(session: TrainingSession) -> AugmentationRecipe | None:
    """How the session augments its training points, or None when it does not."""
    import inspect

    from app.data.augment import _group, augment, resolve_spec
    from app.sessions.session import AUGMENT_STREAM

    if not session.config.augmentation:
        return None
    jitter = float(inspect.signature(augment).parameters["jitter"].default)
    seed = (int(session.config.seed), AUGMENT_STREAM)
    spec = resolve_spec(session.data.dataset.name)
    if spec is None:
        return AugmentationRecipe(seed_entropy=seed, jitter=jitter)
    group = _group(spec)
    classification = spec.kind != "regression"
    return AugmentationRecipe(
        seed_entropy=seed,
        jitter=jitter,
        matrices=np.array(group.matrices, dtype=np.float64),
        classes=np.array(group.classes, dtype=np.int64) if classification else None,
        signs=None if classification else np.array(group.signs, dtype=np.float64),
        centre=(float(spec.centre[0]), float(spec.centre[1])),
        any_rotation=bool(spec.any_rotation),
    )


def _regularization(session: TrainingSession) -> dict[str, float] | None:
    """{"l1": rate, "l2": rate} of the kernels' regularizer in force, or None."""
    for index in session.built.dense_indices:
        layer: Any = session.model.layers[index]
        regularizer = layer.kernel_regularizer
        if regularizer is not None:
            rates = regularizer.get_config()
            return {"l1": float(rates.get("l1", 0.0)), "l2": float(rates.get("l2", 0.0))}
    return None


def _randomness(session: TrainingSession, layers: tuple[LayerRecipe, ...]) -> list[str]:
    """Sentences naming each kind of training-time draw this run makes."""
    found: list[str] = []
    dropped = [la.name for la in layers if la.dropout > 0.0]
    if dropped:
        found.append(
            "dropout: random masks are drawn every batch (after " + ", ".join(dropped) + ")"
        )
    rrelu = [la.name for la in layers if la.activation == "rrelu"]
    if rrelu:
        found.append("rrelu: random slopes are drawn every batch (" + ", ".join(rrelu) + ")")
    if session.config.augmentation:
        found.append(
            "augmentation: every epoch trains on randomly transformed and jittered copies of "
            "the training points"
        )
    return found


def _changes(session: TrainingSession) -> list[str]:
    """Why the session's weights may not follow from its settings and initial weights."""
    found = list(session.code_changes)
    elsewhere = session.epoch - session.epochs_trained_here
    if elsewhere != 0:
        found.insert(0, PAST_UNKNOWN.format(elsewhere=elsewhere))
    return found


def _finite_or_none(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None


def recipe_from_session(
    session: TrainingSession, source: Literal["session", "run"] = "session"
) -> Recipe:
    """The recipe of `session` as it is now (call it in the worker that holds it)."""
    from app.datasets import USER_DATA_NAME

    config = session.config
    model = session.model
    dataset = session.data.dataset
    layers = _layers(session)
    names = [f"{layer.name}.{key}" for layer in model.layers for _, key in layer.weight_slots()]
    initial = session.initial_weights
    optimizer = model.optimizer
    params = {k: v for k, v in optimizer.get_config().items() if k != "name"}
    n = int(session.data.x_train.shape[0])
    seed = int(model.seed)
    rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=ORDER_SPAWN_KEY))
    check = tuple(int(i) for i in rng.permutation(n)[:ORDER_CHECK_LENGTH])
    user = dataset.name == USER_DATA_NAME or config.points is not None
    note = (
        "your own points (uploaded or drawn)" if user else
        f"the built-in {config.dataset!r} dataset: {n + len(dataset.x_test)} points, "
        f"noise {config.noise:g}, train ratio {config.train_ratio:g}, seed {config.seed}"
    )
    metrics = session.metrics()
    return Recipe(
        source=source,
        session_id=str(session.id),
        dataset="user" if user else config.dataset,
        dataset_note=note,
        x_train=np.array(dataset.x_train, dtype=np.float64),
        y_train=np.asarray(dataset.y_train, dtype=np.float64).reshape(-1).copy(),
        x_test=np.array(dataset.x_test, dtype=np.float64),
        y_test=np.asarray(dataset.y_test, dtype=np.float64).reshape(-1).copy(),
        features=tuple(config.features),
        problem=config.resolved_problem(),  # type: ignore[arg-type]
        n_classes=config.n_classes(),
        layers=layers,
        initial_weights=tuple(np.array(w, dtype=np.float64) for w in initial),
        final_weights=tuple(model.get_weights()),
        weight_names=tuple(names),
        loss=config.resolved_loss(),
        fused=bool(session.built.fused),
        optimizer=config.optimizer,
        optimizer_class=type(optimizer).__name__,
        optimizer_params=params,
        regularization_name=config.regularization,
        regularization=_regularization(session),
        max_norm=next((la.max_norm for la in layers if la.max_norm is not None), None),
        early_stopping_patience=config.early_stopping_patience,
        batch_size=int(config.batch_size),
        epochs=int(session.epoch),
        order_seed=seed,
        order_spawn_key=ORDER_SPAWN_KEY,
        noise_spawn_key=NOISE_SPAWN_KEY,
        order_check=check,
        randomness=tuple(_randomness(session, layers)),
        changes=tuple(_changes(session)),
        reported_train_loss=_finite_or_none(metrics["train_loss"]),
        reported_test_loss=_finite_or_none(metrics["test_loss"]),
        status=str(session.status),
        config=config.model_dump(),
        augmentation=_augmentation(session),
    )


def checked(recipe: Recipe, max_steps: int) -> Recipe:
    """The recipe with its unknown past cleared when a replay proves it (see replay_matches).

    A session imported, restored (after idle expiry or a worker's death) or forked does not
    know how its first epochs were trained; a replay of at most `max_steps` sample-steps
    (epochs x training points) from the settings and initial weights that lands on exactly
    its weights shows they were one uninterrupted run after all.
    """
    past = [c for c in recipe.changes if c.startswith(PAST_UNKNOWN_PREFIX)]
    if not past or len(past) != len(recipe.changes):
        return recipe
    if replay_cost(recipe) > max_steps:
        return replace(recipe, changes=(
            f"{past[0]}; a replay to check them would take {replay_cost(recipe)} sample-steps, "
            f"more than code_replay_max_steps = {max_steps}",
        ))
    if replay_matches(recipe):
        return replace(recipe, changes=())
    return replace(recipe, changes=(
        f"{past[0]}; a replay of the settings from the initial weights does not land on "
        "its weights",
    ))


def recipe_from_export(data: SessionExport, run_slug: str, max_steps: int) -> Recipe:
    """The recipe of a saved run (its export), its past checked by a replay when affordable."""
    from app.sessions.export import import_session

    session = import_session(data, run_slug)
    return checked(recipe_from_session(session, source="run"), max_steps)


def replay_cost(recipe: Recipe) -> int:
    """Sample-steps a replay of the recipe takes (epochs x training points)."""
    return recipe.epochs * recipe.n_train


def replay_matches(recipe: Recipe) -> bool:
    """Whether training the recipe's config from its initial weights for `epochs` epochs in a
    fresh session gives its final weights bit for bit (dropout, RReLU and augmentation draws
    are seeded, so a replay makes them again)."""
    from app.sessions.config import SessionConfig
    from app.sessions.session import TrainingSession

    config = SessionConfig.model_validate(
        {**recipe.config, "epoch_budget": None, "early_stopping_patience": None}
    )
    session = TrainingSession(config, "replay")
    session.model.set_weights(list(recipe.initial_weights))
    for _ in range(recipe.epochs):
        session.train_one_epoch()
    return all(
        np.array_equal(a, b, equal_nan=True)
        for a, b in zip(session.model.get_weights(), recipe.final_weights, strict=True)
    )
