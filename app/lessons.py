"""The lecture as lessons: one per section, each a preset, a short text and "try this" steps.

A lesson's `config` is a session config (the field names of docs/protocol.md); a step's
`config` is a patch merged into the lesson's preset (steps are independent of each other, so
the page can run any one of them), its `command` a session command (docs/protocol.md) and its
`instrument` a patch to the lesson's instrument parameters. `kind` says what the page opens:
a live session, the perceptron run, the backprop trace, or the optimizer race.
"""

from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from app.engine import Dense, Input, Sequential

LessonKind = Literal["session", "perceptron", "backprop", "race"]


@dataclass(frozen=True)
class TryThis:
    """One thing to do and what to look for."""

    action: str
    expect: str
    config: dict[str, Any] = field(default_factory=dict)
    command: dict[str, Any] | None = None
    instrument: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Lesson:
    """A section of the lecture, playable."""

    id: str
    number: int
    title: str
    section: str
    text: str
    kind: LessonKind
    config: dict[str, Any]
    try_this: list[TryThis]
    instrument: dict[str, Any] = field(default_factory=dict)


# The slide "XOR with Feedforward Neural Network": hidden h1 = step(x1 + x2 - 1.5) (an AND),
# h2 = step(x1 + x2 - 0.5) (an OR), output step(-h1 + h2 - 0.5): OR but not AND.
XOR_HAND_WEIGHTS: dict[str, list[Any]] = {
    "hidden_kernel": [[1.0, 1.0], [1.0, 1.0]],
    "hidden_bias": [-1.5, -0.5],
    "output_kernel": [[-1.0], [1.0]],
    "output_bias": [-0.5],
}
TRUTH_TABLE_INPUTS = [[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]]


def hand_set_xor() -> Sequential:
    """The slide's 2-2-1 network of step units with its hand-chosen weights (no training)."""
    model = Sequential([Input(shape=(2,)), Dense(2, "step"), Dense(1, "step")])
    w = XOR_HAND_WEIGHTS
    model.set_weights([w["hidden_kernel"], w["hidden_bias"], w["output_kernel"], w["output_bias"]])
    return model


def hand_set_xor_demo() -> dict[str, Any]:
    """The hand-set net on the truth table: hidden values and outputs, for lesson 2's page."""
    model = hand_set_xor()
    x = np.array(TRUTH_TABLE_INPUTS)
    output = model.predict(x)
    hidden = model.layers[0].a
    assert hidden is not None
    return {
        "weights": XOR_HAND_WEIGHTS,
        "inputs": TRUTH_TABLE_INPUTS,
        "hidden_net": np.asarray(model.layers[0].z).tolist(),
        "hidden": hidden.tolist(),
        "output_net": np.asarray(model.layers[1].z).tolist(),
        "outputs": output[:, 0].tolist(),
    }


def _layers(count: int, units: int, activation: str, **extra: Any) -> list[dict[str, Any]]:
    return [{"units": units, "activation": activation, **extra} for _ in range(count)]


RACERS = [
    {"optimizer": "sgd", "learning_rate": 0.03, "label": "SGD"},
    {"optimizer": "momentum", "learning_rate": 0.03, "momentum": 0.9, "label": "Momentum"},
    {"optimizer": "adagrad", "learning_rate": 0.03, "label": "AdaGrad"},
    {"optimizer": "rmsprop", "learning_rate": 0.03, "label": "RMSProp"},
    {"optimizer": "adam", "learning_rate": 0.03, "label": "Adam"},
]

OVERFIT_LAYERS = _layers(3, 16, "relu")

LESSONS: dict[str, Lesson] = {
    lesson.id: lesson
    for lesson in [
        Lesson(
            id="perceptron",
            number=1,
            title="The LTU and the perceptron",
            section="The Linear Threshold Unit (LTU); The Perceptron; Perceptron Weakness",
            text=(
                "A threshold unit adds up its weighted inputs plus a bias and outputs 1 when the "
                "sum reaches zero, 0 otherwise. The perceptron rule trains it one example at a "
                "time: after a wrong answer, each weight moves by the learning rate times the "
                "error times its input. When one straight line can separate the two classes, as "
                "for AND and OR, the rule stops making mistakes after a few passes. XOR needs "
                "two lines, so the weights keep being pushed back and forth and come back to "
                "where they were: the errors never reach zero."
            ),
            kind="perceptron",
            config={"dataset": "and-table", "layers": [], "optimizer": "sgd",
                    "learning_rate": 1.0, "batch_size": 4},
            instrument={"dataset": "and-table", "learning_rate": 1.0, "epochs": 20,
                        "shuffle": False},
            try_this=[
                TryThis(
                    action="Run the perceptron rule on AND.",
                    expect="The errors per pass fall to 0 within a few passes and the line "
                    "settles between (1, 1) and the other three points.",
                ),
                TryThis(
                    action="Switch the table to OR and run again.",
                    expect="It converges too: OR is also separable by one line.",
                    config={"dataset": "or-table"},
                    instrument={"dataset": "or-table"},
                ),
                TryThis(
                    action="Switch the table to XOR and run 50 passes.",
                    expect="Every pass still makes errors; the weights return to the same "
                    "values again and again (the run reports the cycle) and the line keeps "
                    "jumping.",
                    config={"dataset": "xor-table"},
                    instrument={"dataset": "xor-table", "epochs": 50},
                ),
            ],
        ),
        Lesson(
            id="xor-hidden-layer",
            number=2,
            title="XOR with a hidden layer",
            section="Multi-Layer Perceptron (MLP); XOR with Feedforward Neural Network",
            text=(
                "Stack two layers of threshold units and XOR becomes easy. With the lecture's "
                "hand-picked weights, one hidden unit fires for AND, the other for OR, and the "
                "output fires for 'OR but not AND', which is XOR: 0, 1, 1, 0. Step units have "
                "no useful slope, so to learn such weights instead of choosing them we swap "
                "the steps for smooth sigmoids and train by gradient descent."
            ),
            kind="session",
            config={"dataset": "xor-table", "layers": _layers(1, 2, "sigmoid"),
                    "optimizer": "sgd", "learning_rate": 3.0, "batch_size": 4, "seed": 0},
            try_this=[
                TryThis(
                    action="Look at the hand-set network on the four inputs.",
                    expect="Hidden units (AND, OR) = (0,0), (0,1), (0,1), (1,1); outputs 0, 1, "
                    "1, 0.",
                ),
                TryThis(
                    action="Press Step 500 epochs to train the 2-2-1 sigmoid network.",
                    expect="The training loss falls and the accuracy reaches 1: it has found "
                    "its own XOR weights.",
                    command={"type": "step", "n": 500},
                ),
                TryThis(
                    action="Change the seed to 4 and train 500 epochs again.",
                    expect="This start gets stuck with one point wrong (accuracy 0.75 or "
                    "0.5): the cost is not convex and the result depends on the initial "
                    "weights.",
                    config={"seed": 4},
                    command={"type": "step", "n": 500},
                ),
            ],
        ),
        Lesson(
            id="backprop-by-hand",
            number=3,
            title="Backpropagation, number by number",
            section="Dive into Backpropagation Algorithm; Backpropagation Example",
            text=(
                "The lecture's small network has two inputs, two sigmoid hidden units and two "
                "sigmoid outputs. One training step is four stages: run the inputs forward, "
                "measure the squared error against the targets, send the error backwards to "
                "get a delta for every unit (each hidden delta collects what it contributed "
                "to both outputs), and move every weight against its gradient. Step through "
                "the stages and compare each number with the slides."
            ),
            kind="backprop",
            config={},
            instrument={"preset": "lecture", "learning_rate": 0.5},
            try_this=[
                TryThis(
                    action="Step through the six phases.",
                    expect="net_h1 = 0.3775, out_o1 = 0.75136, E_total = 0.29837, "
                    "dE/dw5 = 0.08216, w5' = 0.35891, w1' = 0.14978, as on the slides; each "
                    "analytic gradient sits next to its numeric estimate.",
                ),
                TryThis(
                    action="Set the learning rate to 1.0.",
                    expect="The forward values, deltas and gradients do not change; only the "
                    "new weights move twice as far.",
                    instrument={"learning_rate": 1.0},
                ),
            ],
        ),
        Lesson(
            id="output-units",
            number=4,
            title="Output units and costs",
            section="Output Unit (1/3)-(3/3); Feedforward Neural Network - Cost Function",
            text=(
                "The last layer and the cost go together. To predict a number, use a linear "
                "output and the mean squared error. For yes/no, a sigmoid output gives a "
                "probability and cross-entropy punishes confident mistakes hard. For one of "
                "several classes, a softmax spreads probability over the classes and the "
                "categorical cross-entropy looks at the probability of the right one."
            ),
            kind="session",
            config={"dataset": "reg-plane", "layers": _layers(1, 4, "tanh"),
                    "optimizer": "adam", "learning_rate": 0.01},
            try_this=[
                TryThis(
                    action="Train the regression for 100 epochs.",
                    expect="A linear output with MSE: the colour shows the predicted value, a "
                    "smooth slope across the plane; the loss is a squared error.",
                    command={"type": "step", "n": 100},
                ),
                TryThis(
                    action="Switch to the circle (two classes) and train 100 epochs.",
                    expect="A sigmoid output with binary cross-entropy: the colour is the "
                    "probability of class 1 and the boundary is where it crosses 0.5.",
                    config={"dataset": "circle"},
                    command={"type": "step", "n": 100},
                ),
                TryThis(
                    action="Switch to three blobs and train 100 epochs.",
                    expect="A softmax output over 3 classes with categorical cross-entropy: "
                    "each region takes the colour of its most likely class.",
                    config={"dataset": "blobs-3"},
                    command={"type": "step", "n": 100},
                ),
            ],
        ),
        Lesson(
            id="overfitting",
            number=5,
            title="Overfitting and how to fight it",
            section="Overfitting; Avoiding Overfitting Through Regularization",
            text=(
                "Three layers of 16 units have far more freedom than 30 noisy points need: the "
                "network learns the noise, its training loss goes to zero and its test loss "
                "climbs. Each remedy limits that freedom in its own way: stop when the test "
                "loss stops improving, charge for large weights (L1, L2), cap each unit's "
                "weight vector (max-norm), switch random units off during training "
                "(dropout), or show slightly different copies of the points each epoch "
                "(augmentation)."
            ),
            kind="session",
            config={"dataset": "circle", "n_samples": 60, "noise": 0.35, "train_ratio": 0.5,
                    "layers": OVERFIT_LAYERS, "optimizer": "adam", "learning_rate": 0.01,
                    "batch_size": 10},
            try_this=[
                TryThis(
                    action="Train 400 epochs with no remedy.",
                    expect="Training loss near 0, test loss far above it and rising: the "
                    "boundary wraps around single noisy points.",
                    command={"type": "step", "n": 400},
                ),
                TryThis(
                    action="Turn on early stopping (patience 20) and train.",
                    expect="Training stops soon after the test loss bottoms out.",
                    config={"early_stopping_patience": 20},
                    command={"type": "step", "n": 400},
                ),
                TryThis(
                    action="Use L1 regularization, rate 0.003, and train 400 epochs.",
                    expect="Most weights shrink toward 0; the gap between the curves shrinks.",
                    config={"regularization": "l1", "regularization_rate": 0.003},
                    command={"type": "step", "n": 400},
                ),
                TryThis(
                    action="Use L2 regularization, rate 0.01, and train 400 epochs.",
                    expect="Weights stay small, the boundary smooth, the gap small.",
                    config={"regularization": "l2", "regularization_rate": 0.01},
                    command={"type": "step", "n": 400},
                ),
                TryThis(
                    action="Set max-norm 1 and train 400 epochs.",
                    expect="No unit's incoming weights grow past length 1; the gap shrinks.",
                    config={"max_norm": 1.0},
                    command={"type": "step", "n": 400},
                ),
                TryThis(
                    action="Give every hidden layer dropout 0.4 and train 400 epochs.",
                    expect="The training loss stays noisy and higher; the test loss stays "
                    "closer to it.",
                    config={"layers": _layers(3, 16, "relu", dropout=0.4)},
                    command={"type": "step", "n": 400},
                ),
                TryThis(
                    action="Turn on augmentation and train 400 epochs.",
                    expect="Fresh jittered and mirrored copies every epoch: train and test "
                    "losses stay together.",
                    config={"augmentation": True},
                    command={"type": "step", "n": 400},
                ),
            ],
        ),
        Lesson(
            id="vanishing-gradients",
            number=6,
            title="Vanishing gradients",
            section="Vanishing/Exploding Gradients Problem; Overcoming the Vanishing Gradient",
            text=(
                "Backpropagation multiplies, layer after layer, by a weight and by the slope of "
                "the activation. A sigmoid's slope is at most 1/4, so six sigmoid layers shrink "
                "the gradient reaching the first layer by orders of magnitude: the lower "
                "layers barely learn. Activations that do not saturate (ReLU, leaky ReLU, "
                "ELU), an initialization scaled to the layer (He), or batch normalization "
                "keep the gradients of all layers comparable."
            ),
            kind="session",
            config={"dataset": "circle", "layers": _layers(6, 8, "sigmoid"),
                    "initializer": "glorot_uniform", "optimizer": "sgd",
                    "learning_rate": 0.1},
            try_this=[
                TryThis(
                    action="Step 1 epoch and read the gradient norm of each layer.",
                    expect="The first hidden layer's gradient is thousands of times smaller "
                    "than the output layer's.",
                    command={"type": "step", "n": 1},
                ),
                TryThis(
                    action="Switch every layer to ReLU with He initialization and step 1.",
                    expect="The gradient norms of all layers are now of the same order.",
                    config={"layers": _layers(6, 8, "relu"), "initializer": "he_uniform"},
                    command={"type": "step", "n": 1},
                ),
                TryThis(
                    action="Try leaky ReLU with He initialization (then ELU from the menus).",
                    expect="Similar balanced norms, and no unit stuck at 0.",
                    config={"layers": _layers(6, 8, "leaky_relu"), "initializer": "he_uniform"},
                    command={"type": "step", "n": 1},
                ),
                TryThis(
                    action="Back to sigmoid, with batch normalization in every layer.",
                    expect="The first layer's gradient rises by orders of magnitude.",
                    config={"layers": _layers(6, 8, "sigmoid", batch_norm=True)},
                    command={"type": "step", "n": 1},
                ),
            ],
        ),
        Lesson(
            id="initialization",
            number=7,
            title="Initialization",
            section="Parameter Initialization Strategies",
            text=(
                "Two units that start with the same weights and see the same inputs get the "
                "same gradients, so they stay twins forever: starting from all zeros, a hidden "
                "layer is no better than one unit. Random weights break the symmetry, but "
                "their size matters: too small and the signal fades through the layers, too "
                "large and the units saturate. Glorot and He choose the spread from the number "
                "of inputs and outputs of each layer."
            ),
            kind="session",
            config={"dataset": "circle", "layers": _layers(2, 4, "sigmoid"),
                    "initializer": "zeros", "optimizer": "sgd", "learning_rate": 0.3},
            try_this=[
                TryThis(
                    action="Train 100 epochs from all-zero weights.",
                    expect="The four neuron thumbnails of each layer are identical and stay "
                    "identical; the boundary cannot curve around the circle.",
                    command={"type": "step", "n": 100},
                ),
                TryThis(
                    action="Use random normal weights (stddev 0.05) and train 100 epochs.",
                    expect="The units differ, but tiny weights pass tiny signals through two "
                    "sigmoid layers: after 100 epochs the loss has hardly left chance (ln 2).",
                    config={"initializer": "random_normal"},
                    command={"type": "step", "n": 100},
                ),
                TryThis(
                    action="Use all-ones weights with tanh and train 100 epochs.",
                    expect="Large weights saturate the units at +-1 (and, being equal, they "
                    "are still twins): learning stalls.",
                    config={"initializer": "ones", "layers": _layers(2, 4, "tanh")},
                    command={"type": "step", "n": 100},
                ),
                TryThis(
                    action="Use Glorot (uniform) and train 100 epochs.",
                    expect="Units differ from the start and the circle is learned.",
                    config={"initializer": "glorot_uniform", "init_scale": 1.0},
                    command={"type": "step", "n": 100},
                ),
                TryThis(
                    action="Use He (uniform) with ReLU and train 100 epochs.",
                    expect="The spread suited to ReLU units: fast, stable learning.",
                    config={"initializer": "he_uniform", "init_scale": 1.0,
                            "layers": _layers(2, 4, "relu")},
                    command={"type": "step", "n": 100},
                ),
                TryThis(
                    action="Back to tanh with Glorot, but ten times too wide (init_scale 10), "
                    "and train 100 epochs.",
                    expect="Random, so the units differ, but most start saturated at +-1 with "
                    "almost no slope: after 100 epochs the loss is still many times Glorot's.",
                    config={"initializer": "glorot_uniform", "init_scale": 10.0,
                            "layers": _layers(2, 4, "tanh")},
                    command={"type": "step", "n": 100},
                ),
            ],
        ),
        Lesson(
            id="optimizers",
            number=8,
            title="Optimizers: the race",
            section="Training Speed; Momentum; AdaGrad; RMSProp; Adam Optimization",
            text=(
                "Plain gradient descent takes the same small step in every direction. Momentum "
                "keeps a running velocity, so it speeds up along a steady slope. AdaGrad "
                "gives each weight its own step that shrinks with the squared gradients seen "
                "so far, and can stop too early; RMSProp only remembers recent gradients. Adam "
                "combines a momentum average with RMSProp's scaling and corrects both for "
                "starting at zero. Here they race from the same weights on the same batches."
            ),
            kind="race",
            config={"dataset": "spiral", "layers": _layers(2, 8, "tanh"), "batch_size": 10,
                    "grid_resolution": 50},
            instrument={"racers": RACERS, "epochs_per_step": 10},
            try_this=[
                TryThis(
                    action="Start the race and run 200 epochs (all at learning rate 0.03).",
                    expect="Same weights, same batches, five curves: RMSProp and Adam fall "
                    "fastest, Momentum next, plain SGD and AdaGrad lag far behind.",
                    instrument={"epochs": 200},
                ),
                TryThis(
                    action="Raise AdaGrad's learning rate to 0.3 and race again.",
                    expect="AdaGrad's steps shrink as its squared gradients pile up; starting "
                    "ten times larger, it now keeps pace with Momentum.",
                    instrument={"racers": [
                        {**r, "learning_rate": 0.3} if r["label"] == "AdaGrad" else r
                        for r in RACERS
                    ], "epochs": 200},
                ),
            ],
        ),
    ]
}


# Lessons with something computed to show beside the preset (built on request, not at import).
DEMOS = {"xor-hidden-layer": hand_set_xor_demo}


def lesson_demo(lesson_id: str) -> dict[str, Any] | None:
    """The lesson's computed demo (lesson 2: the hand-set XOR net on its table), if any."""
    build = DEMOS.get(lesson_id)
    return None if build is None else build()


def lesson_configs(lesson: Lesson) -> list[dict[str, Any]]:
    """The preset and each step's config (preset + patch), as the page would send them."""
    return [lesson.config] + [{**lesson.config, **step.config} for step in lesson.try_this]
