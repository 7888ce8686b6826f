"""Lesson 1 as a trainable thing: the perceptron rule on a truth table, epoch by epoch.

Every instance shown to the perceptron is recorded (its weights after the update), so the page
can replay the run and show the weights settling on AND/OR and cycling forever on XOR. With
a fixed presentation order the rule is deterministic: once the weights at the end of an epoch
equal those at the end of an earlier epoch, the run repeats itself exactly, which proves it
never converges; the run reports that cycle and goes on to its budget, so the page can show it.
"""

from dataclasses import dataclass

import numpy as np

from app.datasets import make_dataset
from app.engine.perceptron import Perceptron
from app.settings import get_settings

PERCEPTRON_DATASETS = ("and-table", "or-table", "xor-table")


def max_perceptron_epochs() -> int:
    """The budget limit: every instance is recorded, so 10,000 passes are already ~4 MB of JSON.

    Settings.max_perceptron_epochs (a 4-row table converges or proves its cycle within a
    handful of passes).
    """
    return get_settings().max_perceptron_epochs


@dataclass(frozen=True)
class PerceptronStep:
    """One instance shown: its inputs, target, prediction before the update, weights after."""

    x: list[float]
    target: int
    predicted: int
    weights: list[float]  # [bias, w1, w2] after this instance


@dataclass(frozen=True)
class PerceptronEpoch:
    """One pass over the table: its errors and the weights at its end."""

    epoch: int  # 1 = the first pass
    errors: int
    weights: list[float]  # [bias, w1, w2]
    steps: list[PerceptronStep]


@dataclass(frozen=True)
class PerceptronRun:
    """The whole run: why it stopped, and the cycle when the weights came back."""

    dataset: str
    learning_rate: float
    shuffle: bool
    epochs: list[PerceptronEpoch]
    converged: bool
    stopped: str  # "converged" or "budget"
    cycle_start: int | None  # the first epoch whose end weights came back later (0 = start)
    cycle_length: int | None  # epochs between the two equal states
    predictions: list[int]  # of the final weights, in table order
    targets: list[int]


def _check(dataset: str, learning_rate: float, epochs: int) -> None:
    """ValueError naming the field, the value and the limit."""
    if dataset not in PERCEPTRON_DATASETS:
        raise ValueError(
            f"dataset={dataset!r} is not a truth table; expected one of "
            f"{', '.join(PERCEPTRON_DATASETS)}"
        )
    if not (np.isfinite(learning_rate) and learning_rate > 0):
        raise ValueError(f"learning_rate={learning_rate!r} must be > 0")
    limit = max_perceptron_epochs()
    if isinstance(epochs, bool) or not isinstance(epochs, int) or not 1 <= epochs <= limit:
        raise ValueError(
            f"epochs={epochs!r} must be an integer in 1..max_perceptron_epochs={limit}"
        )


def run_perceptron(
    dataset: str = "xor-table",
    learning_rate: float = 1.0,
    epochs: int = 50,
    shuffle: bool = False,
    seed: int = 0,
) -> PerceptronRun:
    """Train a zero-initialised perceptron by its rule until an error-free epoch or the budget."""
    _check(dataset, learning_rate, epochs)
    table = make_dataset(dataset)
    x = np.asarray(table.x_train, dtype=np.float64)
    y = np.asarray(table.y_train, dtype=np.float64)
    perceptron = Perceptron(n_inputs=2, learning_rate=learning_rate, seed=seed)
    order_rng = np.random.default_rng(seed)
    seen: dict[tuple[float, ...], int] = {tuple(perceptron.weights.ravel().tolist()): 0}
    records: list[PerceptronEpoch] = []
    stopped = "budget"
    cycle_start: int | None = None
    cycle_length: int | None = None
    for epoch in range(1, epochs + 1):
        order = order_rng.permutation(len(x)) if shuffle else np.arange(len(x))
        steps: list[PerceptronStep] = []
        errors = 0
        for i in order:
            predicted = int(perceptron.predict(x[i : i + 1])[0, 0])
            errors += perceptron.partial_fit(x[i : i + 1], y[i : i + 1])
            steps.append(PerceptronStep(
                x[i].tolist(), int(y[i]), predicted, perceptron.weights.ravel().tolist()
            ))
        end = tuple(perceptron.weights.ravel().tolist())
        records.append(PerceptronEpoch(epoch, errors, list(end), steps))
        if errors == 0:
            stopped = "converged"
            break
        # Only a fixed order makes the state the weights alone, so only then is a repeat a cycle.
        if not shuffle and cycle_start is None and end in seen:
            cycle_start, cycle_length = seen[end], epoch - seen[end]
        seen.setdefault(end, epoch)
    final = perceptron.predict(x)[:, 0]
    return PerceptronRun(
        dataset=dataset,
        learning_rate=float(learning_rate),
        shuffle=shuffle,
        epochs=records,
        converged=stopped == "converged",
        stopped=stopped,
        cycle_start=cycle_start,
        cycle_length=cycle_length,
        predictions=[int(p) for p in final],
        targets=[int(t) for t in y],
    )
