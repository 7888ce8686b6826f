"""Lesson 1: the perceptron rule settles on AND and OR and never on XOR."""

import itertools

import pytest

from app.instruments.perceptron_run import run_perceptron

TRUTH = {
    "and-table": [0, 0, 0, 1],
    "or-table": [0, 1, 1, 1],
    "xor-table": [0, 1, 1, 0],
}


@pytest.mark.parametrize("dataset", ["and-table", "or-table"])
def test_converges_on_linearly_separable_tables(dataset: str) -> None:
    run = run_perceptron(dataset, epochs=50)
    assert run.converged
    assert run.epochs[-1].errors == 0
    assert run.predictions == TRUTH[dataset]
    assert run.targets == TRUTH[dataset]
    bias, w1, w2 = run.epochs[-1].weights
    # The final weights are a separating line: check it on the table itself, by hand.
    for (x1, x2), label in zip(itertools.product([0, 1], repeat=2), TRUTH[dataset], strict=True):
        assert (bias + w1 * x1 + w2 * x2 >= 0) == bool(label)


def test_never_converges_on_xor_within_its_budget() -> None:
    run = run_perceptron("xor-table", epochs=200)
    assert not run.converged
    assert run.stopped == "budget"
    assert len(run.epochs) == 200
    assert min(epoch.errors for epoch in run.epochs) > 0
    assert run.predictions != TRUTH["xor-table"]


def test_xor_weights_cycle_as_computed_by_hand() -> None:
    # By hand, zero start, eta 1, step(0) = 1, rows in the lecture's order (00, 01, 10, 11):
    # epoch 1: 00 fires wrongly -> (-1,0,0); 01 misses -> (0,0,1); 10 right; 11 fires -> (-1,-1,0)
    # epoch 2: 00 right; 01 -> (0,-1,1); 10 -> (1,0,1); 11 -> (0,-1,0)
    # epoch 3: 00 -> (-1,-1,0); 01 -> (0,-1,1); 10 -> (1,0,1); 11 -> (0,-1,0): back to epoch 2.
    run = run_perceptron("xor-table", epochs=6)
    assert [e.weights for e in run.epochs[:3]] == [[-1, -1, 0], [0, -1, 0], [0, -1, 0]]
    assert [e.errors for e in run.epochs] == [3, 3, 4, 4, 4, 4]
    assert [s.weights for s in run.epochs[2].steps] == [
        [-1, -1, 0], [0, -1, 1], [1, 0, 1], [0, -1, 0]
    ]
    assert run.cycle_start == 2
    assert run.cycle_length == 1


def test_shuffled_xor_never_converges_either() -> None:
    run = run_perceptron("xor-table", epochs=100, shuffle=True, seed=3)
    assert not run.converged
    assert run.cycle_start is None  # a shuffled order is not a deterministic cycle


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"dataset": "circle"}, "dataset='circle' is not a truth table"),
        ({"learning_rate": 0.0}, "learning_rate=0.0 must be > 0"),
        ({"epochs": 0}, "epochs=0 must be an integer in 1..max_perceptron_epochs="),
        ({"epochs": 10**6}, "epochs=1000000 must be an integer in 1..max_perceptron_epochs="),
    ],
)
def test_bad_input_names_field_value_and_limit(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(".", r"\.")):
        run_perceptron(**kwargs)  # type: ignore[arg-type]
