"""TrainingSession: one model, its data, config and history, driven by commands; pure, synchronous.

Nothing here knows about threads, processes or sockets: the worker (app/sessions/worker.py)
calls `train_one_epoch` in slices and builds frames between them. The same config and the same
command sequence always give bit-identical weights (every draw comes from seeded generators).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import numpy.typing as npt

from app.datasets import augment, featurize
from app.engine.layers import Dense
from app.sessions.build import (
    BuiltModel,
    SessionData,
    apply_live_changes,
    make_data,
    make_model,
    targets,
)
from app.sessions.config import DATA_FIELDS, LIVE_FIELDS, SessionConfig, merge_config
from app.sessions.frames import weights_hash
from app.sessions.history import History
from app.sessions.stability import StabilityDetector, explain
from app.settings import get_settings

if TYPE_CHECKING:
    from app.instruments.checkpoints import CheckpointStore

Array = npt.NDArray[np.float64]
Status = Literal["paused", "running", "finished", "diverged"]
# A separate stream for augmentation so turning it on never shifts the model's own draws.
AUGMENT_STREAM = 0xA06
# Live fields that change only what is shown or when training stops: the loss curve goes on as
# the same run, so they keep the instability detector's state (any other change restarts it).
DISPLAY_FIELDS = frozenset({
    "frame_rate", "speed", "lockstep", "grid_resolution", "neuron_grid_resolution",
    "epoch_budget", "early_stopping_patience",
})
# Live fields whose change mid-run leaves a script of the final settings exact (app/codegen).
CODE_NEUTRAL_FIELDS = DISPLAY_FIELDS - {"early_stopping_patience"}


class CommandRefused(ValueError):
    """A command that is valid but not allowed in the session's current state (HTTP 409)."""


class TrainingSession:
    """The state of one live training session and the commands that change it."""

    def __init__(self, config: SessionConfig, session_id: str = "local") -> None:
        self.id = session_id
        self.config = config
        self.history_id = 0
        # Time travel's recording (app/instruments/checkpoints.py): a live session in a worker
        # keeps its past states there; None (races, traces, scratch sessions) records nothing.
        self.timetravel: CheckpointStore | None = None
        self.status: Status = "paused"
        self.status_reason: str | None = None
        self.steps_remaining = 0
        self.data: SessionData = make_data(config)
        self._x_all: Array | None = None
        self._y_all: Array | None = None
        self.last_prediction: Array | None = None
        self._rebuild_model()

    # ---- construction ----------------------------------------------------------------------

    def _rebuild_model(self, built: BuiltModel | None = None) -> None:
        """Fresh weights from seed and init_draw (or the model just built), epoch 0, no history."""
        self.built: BuiltModel = built or make_model(self.config)
        if self.timetravel is not None:
            self.timetravel.clear()  # another run: its past is not this one's
        self._problem = self.config.resolved_problem()
        self.last_prediction = None
        self.epoch = 0
        # Read once per epoch from the model's grad_norms: one per Dense layer, frame order.
        self._norm_keys = [f"layers.{i}" for i in self.built.dense_indices]
        self.history = History(len(self._norm_keys))
        self.history_id += 1
        self.best_test_loss = math.inf
        self.wait = 0
        self.status, self.status_reason, self.steps_remaining = "paused", None, 0
        self.augment_rng = np.random.default_rng([self.config.seed, AUGMENT_STREAM])
        # For "Export code" (app/codegen): this run's initial weights, the epochs of its history
        # accounted for (trained here or vouched for by a replay; not an import's) and what
        # changed it mid-run.
        self.initial_weights: list[Array] = self.model.get_weights()
        self.epochs_trained_here = 0
        self.code_changes: list[str] = []
        self._restart_stability()

    def _restart_stability(self) -> None:
        """A fresh instability detector (no warning), for the current data and loss."""
        self.stability = StabilityDetector(self.constant_guess_loss())

    def constant_guess_loss(self) -> float:
        """The train loss of the best constant prediction: class shares, or the mean target."""
        y = self.data.y_train
        if self._problem == "multiclass":
            shares = np.bincount(y.astype(np.intp), minlength=self.config.n_classes()) / len(y)
            guess: Array = np.tile(shares, (len(y), 1))
        else:
            guess = np.full_like(y, y.mean())
        return float(self.model.loss.fn(y, guess))

    @property
    def model(self) -> Any:
        """The compiled Sequential (typed loosely: the engine is its own package)."""
        return self.built.model

    # ---- commands --------------------------------------------------------------------------

    def play(self) -> None:
        """Train until paused, finished or diverged."""
        self._require_trainable("play")
        self.status, self.steps_remaining = "running", 0

    def pause(self) -> None:
        """Stop training after the current epoch (also ends a step early)."""
        if self.status == "running":
            self.status = "paused"
        self.steps_remaining = 0

    def step(self, n: int = 1) -> None:
        """Train exactly n more epochs, then pause."""
        limit = get_settings().max_step_epochs
        if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= limit:
            raise ValueError(f"step n = {n!r} must be an integer in 1..max_step_epochs = {limit}")
        self._require_trainable("step")
        self.status, self.steps_remaining = "running", n

    def reset(self, same_start: bool = False) -> None:
        """New initial weights (the next init_draw), same data, epoch 0.

        same_start: the same initial weights as the current run started with instead.
        """
        config = self.config
        if not same_start:
            config = merge_config(config, {"init_draw": config.init_draw + 1})
        built = make_model(config)  # before anything changes: a refusal leaves the session
        self.config = config
        self._rebuild_model(built)

    def regenerate(self, seed: int | None = None) -> None:
        """New data from `seed` (default: the next seed) and a model rebuilt from it."""
        new_seed = self.config.seed + 1 if seed is None else seed
        self._rebuild_from(merge_config(self.config, {"seed": new_seed}))

    def update(self, changes: dict[str, Any]) -> bool:
        """Apply config changes; returns True when they rebuilt the model (weights reset)."""
        new = merge_config(self.config, changes)
        changed = {name for name in changes if getattr(new, name) != getattr(self.config, name)}
        if changed <= LIVE_FIELDS or (changed <= LIVE_FIELDS | DATA_FIELDS
                                      and self._same_outputs(new)):
            data = make_data(new) if changed & DATA_FIELDS else self.data
            apply_live_changes(self.built, new)  # raises before it changes anything
            old, self.config = self.config, new
            self._note_change(changed - CODE_NEUTRAL_FIELDS)
            if data is not self.data:
                self._swap_data(data)
            elif not changed <= DISPLAY_FIELDS:
                self._restart_stability()  # a new learning rate (etc.) is a new curve
            self._reopen_if_budget_raised(old)
            return False
        self._rebuild_from(new)
        return True

    def _same_outputs(self, new: SessionConfig) -> bool:
        """Whether `new` keeps the output layer and loss (so new points can keep the model)."""
        old = self.config
        return (
            new.resolved_problem() == old.resolved_problem()
            and new.resolved_loss() == old.resolved_loss()
            and new.n_classes() == old.n_classes()
        )

    def _swap_data(self, data: SessionData) -> None:
        """Train on `data` from the next epoch on: weights, optimizer, epoch and history stay.

        The test loss is now measured on other points, so early stopping's best starts again;
        so does the instability detector (its constant-guess level depends on the labels).
        """
        self.data, self._x_all, self.last_prediction = data, None, None
        self.best_test_loss, self.wait = math.inf, 0
        self._restart_stability()

    def _rebuild_from(self, config: SessionConfig) -> None:
        """New data and model for `config`; on any error the session is left as it was."""
        data, built = make_data(config), make_model(config)
        self.config, self.data, self._x_all = config, data, None
        self._rebuild_model(built)

    def edit_weight(self, layer: int, param: str, index: list[int], value: float) -> None:
        """Set one kernel entry [i, j] or bias entry [j] of Dense layer `layer` (0 = first)."""
        dense_count = len(self.built.dense_indices)
        if not 0 <= layer < dense_count:
            raise ValueError(f"layer = {layer} is out of range; expected 0..{dense_count - 1}")
        dense = self.model.layers[self.built.dense_indices[layer]]
        assert isinstance(dense, Dense)
        if param not in ("kernel", "bias") or param not in dense.params:
            raise ValueError(f"param = {param!r}; expected 'kernel' or 'bias'")
        array = dense.params[param]
        if len(index) != array.ndim or any(
            not 0 <= i < size for i, size in zip(index, array.shape, strict=True)
        ):
            raise ValueError(f"index = {index} is outside {param} of shape {list(array.shape)}")
        if not math.isfinite(value):
            raise ValueError(f"value = {value!r} must be finite")
        # In place: the optimizer and the fast path hold references to this array.
        array[tuple(index)] = value
        self.last_prediction = None
        if self.epoch == 0:
            self.initial_weights = self.model.get_weights()  # an edited start is the start
        else:
            self._note_change({f"weight {param}{index} of layer {layer} (edited)"})

    def _note_change(self, what: set[str]) -> None:
        """Remember a mid-run change (after epoch 0) that a script of the settings cannot
        reproduce: "Export code" says so (app/codegen/recipe.py)."""
        if self.epoch > 0 and what:
            self.code_changes.append(f"at epoch {self.epoch}: {', '.join(sorted(what))} changed")

    def predict(self, points: list[list[float]]) -> list[list[float | None]]:
        """The raw outputs for points [[x1, x2], ...] (probability, softmax row or value)."""
        limit = get_settings().max_predict_points
        if not 1 <= len(points) <= limit:
            raise ValueError(
                f"len(points) = {len(points)} must be in 1..max_predict_points = {limit}"
            )
        table = np.asarray(points, dtype=np.float64)
        if table.ndim != 2 or table.shape[1] != 2 or not np.all(np.isfinite(table)):
            raise ValueError("points must be a list of [x1, x2] pairs of finite numbers")
        with np.errstate(all="ignore"):
            outputs: Array = self.model.predict(featurize(table, self.config.features))
        return [[v if math.isfinite(v) else None for v in row] for row in outputs.tolist()]

    def _require_trainable(self, command: str) -> None:
        if self.status in ("finished", "diverged"):
            raise CommandRefused(
                f"cannot {command}: the session is {self.status} ({self.status_reason}); "
                "reset it, or raise epoch_budget with set"
            )

    def _reopen_if_budget_raised(self, old: SessionConfig) -> None:
        """A finished session whose budget was raised (or removed) can train again."""
        budget = self.config.epoch_budget
        if (
            self.status == "finished"
            and budget != old.epoch_budget
            and (budget is None or budget > self.epoch)
            and self.status_reason is not None
            and self.status_reason.startswith("epoch budget")
        ):
            self.status, self.status_reason = "paused", None

    # ---- training --------------------------------------------------------------------------

    @property
    def is_training(self) -> bool:
        """Whether the worker should give this session epochs."""
        return self.status == "running"

    def train_one_epoch(self) -> None:
        """One epoch, its losses and metrics, then the status checks; never raises."""
        if self.timetravel is not None:
            self.timetravel.record(self)  # the state this epoch starts from, config included
        self.epochs_trained_here += 1
        x, y = self.data.x_train, self.data.y_train
        # Overflow in a diverging net is expected: it is reported as `diverged`, not warned.
        with np.errstate(all="ignore"):
            try:
                if self.config.augmentation:
                    points, labels = augment(
                        self.data.dataset.x_train, self.data.dataset.y_train,
                        self.data.dataset.name, self.augment_rng,
                    )
                    x, y = featurize(points, self.config.features), targets(self.config, labels)
                self.model.train_epoch(x, y, self.config.batch_size)
                row = self._evaluate()
            except Exception as error:  # a diverged net may trip any check in the engine
                self.epoch += 1
                self.history.append([math.nan] * len(self.history.columns))
                self._stop("diverged", f"training failed at epoch {self.epoch}: {error}")
                return
        self.epoch += 1
        norms = self.model.grad_norms  # as of the epoch's last step (both engine paths)
        self.history.append([*row, *(norms.get(key, math.nan) for key in self._norm_keys)])
        self.stability.add(self.epoch, row[0])
        self._check_after_epoch(row)

    def _check_after_epoch(self, row: tuple[float, float, float, float]) -> None:
        train_loss, test_loss = row[0], row[1]
        bad = next((v for v in (train_loss, test_loss) if not math.isfinite(v)), None)
        what = f"loss became {bad}" if bad is not None else "a weight became inf or nan"
        if bad is not None or not self._weights_finite():
            self._stop("diverged", f"{what} at epoch {self.epoch}; try a smaller learning rate")
            return
        budget = self.config.epoch_budget
        if budget is not None and self.epoch >= budget:
            self._stop("finished", f"epoch budget of {budget} reached")
            return
        limit = get_settings().max_epoch_budget
        if self.epoch >= limit:  # bounds the history's memory (8 bytes a column an epoch)
            self._stop("finished", f"epoch budget of {limit} (max_epoch_budget) reached")
            return
        # Keras's EarlyStopping: `wait` counts the epochs in a row without a better test loss,
        # and training stops once wait >= patience (patience 0 stops at the first such epoch).
        patience = self.config.early_stopping_patience
        if test_loss < self.best_test_loss:
            self.best_test_loss, self.wait = test_loss, 0
        else:
            self.wait += 1
            if patience is not None and self.wait >= patience:
                epochs = "1 epoch" if self.wait == 1 else f"{self.wait} epochs"
                self._stop(
                    "finished",
                    f"early stopping at epoch {self.epoch}: test loss has not improved on "
                    f"{self.best_test_loss:.6g} for {epochs}",
                )
                return
        if self.steps_remaining > 0:
            self.steps_remaining -= 1
            if self.steps_remaining == 0:
                self.status = "paused"

    def _weights_finite(self) -> bool:
        """A saturated tanh can hide an inf weight from the loss; one sum per array finds it."""
        return math.isfinite(sum(float(p.sum()) for p in self.built.parameters))

    def _stop(self, status: Status, reason: str) -> None:
        self.status, self.status_reason, self.steps_remaining = status, reason, 0

    def _evaluate(self) -> tuple[float, float, float, float]:
        """Train and test loss and metric from one inference pass over all the points."""
        data = self.data
        if self._x_all is None:
            self._x_all = np.concatenate([data.x_train, data.x_test])
            self._y_all = np.concatenate([data.y_train, data.y_test])
        model = self.model
        prediction: Array = model.predict(self._x_all)
        logits: Array | None = model.layers[-1].z if self.built.fused else None
        n = len(data.x_train)
        self.last_prediction = prediction  # reused by the frame's confusion matrices
        # Data loss (no penalty, as TFP plots it); from the logits when the output is fused.
        loss = model.loss
        if logits is None:
            train_loss, test_loss = loss.fn(data.y_train, prediction[:n]), loss.fn(
                data.y_test, prediction[n:]
            )
        else:
            train_loss = loss.fn_from_logits(data.y_train, logits[:n])
            test_loss = loss.fn_from_logits(data.y_test, logits[n:])
        assert self._y_all is not None
        terms = self.metric_terms(self._y_all, prediction)  # one pass for both sets
        return float(train_loss), float(test_loss), float(terms[:n].mean()), float(
            terms[n:].mean()
        )

    def metric_terms(self, y: Array, prediction: Array) -> Array:
        """Per point: 1.0 if classified right (threshold 0.5 or argmax), else |error| (MAE)."""
        if self._problem == "binary":
            right: Array = ((prediction[:, 0] > 0.5) == (y[:, 0] > 0.5)).astype(np.float64)
            return right
        if self._problem == "multiclass":
            hit: Array = (np.argmax(prediction, axis=1) == y.astype(np.intp)).astype(np.float64)
            return hit
        error: Array = np.abs(prediction - y).mean(axis=1)
        return error

    def metric(self, y: Array, prediction: Array) -> float:
        """Accuracy for classification, mean absolute error for regression."""
        return float(self.metric_terms(y, prediction).mean())

    # ---- reading ---------------------------------------------------------------------------

    def weights_hash(self) -> str:
        """12 hex chars of sha256 over the float64 weights (see docs/protocol.md)."""
        return weights_hash(self.model.get_weights())

    @property
    def warning(self) -> dict[str, Any] | None:
        """The instability warning (docs/protocol.md), or None while training looks sound."""
        trouble = self.stability.trouble
        return None if trouble is None else explain(trouble, self.config.learning_rate)

    def metrics(self) -> dict[str, float | None]:
        """The latest epoch's losses and metrics (null before the first epoch or when NaN)."""
        last = self.history.last()
        names = ("train_loss", "test_loss", "train_metric", "test_metric")
        if last is None:
            return dict.fromkeys(names)
        return {
            n: float(v) if math.isfinite(v) else None
            for n, v in zip(names, last[:len(names)], strict=True)
        }

    def public(self) -> dict[str, Any]:
        """The SessionPublic view (docs/protocol.md)."""
        metrics = self.metrics()
        accuracy = self.config.resolved_problem() != "regression"
        return {
            "id": self.id,
            "status": self.status,
            "status_reason": self.status_reason,
            "warning": self.warning,
            "epoch": self.epoch,
            "config": self.config.model_dump(),
            "weights_hash": self.weights_hash(),
            "metrics": {
                "train_loss": metrics["train_loss"],
                "test_loss": metrics["test_loss"],
                "train_accuracy": metrics["train_metric"] if accuracy else None,
                "test_accuracy": metrics["test_metric"] if accuracy else None,
            },
            "n_train": len(self.data.x_train),
            "n_test": len(self.data.x_test),
            "ws_url": f"/ws/sessions/{self.id}",
        }
