"""Lessons 6-8: vanishing gradients, initialization, and the optimizer race."""

from app.lessons.model import Lesson, TryThis, repeated_layers

RACERS = [
    {"optimizer": "sgd", "learning_rate": 0.03, "label": "SGD"},
    {"optimizer": "momentum", "learning_rate": 0.03, "momentum": 0.9, "label": "Momentum"},
    {"optimizer": "adagrad", "learning_rate": 0.03, "label": "AdaGrad"},
    {"optimizer": "rmsprop", "learning_rate": 0.03, "label": "RMSProp"},
    {"optimizer": "adam", "learning_rate": 0.03, "label": "Adam"},
]

DEEP_TRAINING_LESSONS: list[Lesson] = [
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
        config={"dataset": "circle", "layers": repeated_layers(6, 8, "sigmoid"),
                "initializer": "glorot_uniform", "optimizer": "sgd",
                "learning_rate": 0.1, "speed": 60},
        try_this=[
            TryThis(
                action="Train 1 epoch and read each layer's line in the gradient norm chart.",
                expect="The first hidden layer's gradient is thousands of times smaller "
                "than the output layer's.",
                command={"type": "step", "n": 1},
            ),
            TryThis(
                action='Switch every layer to ReLU, set "Initializer" to He (uniform), and train '
                "1 epoch.",
                expect="The gradient norms of all layers are now of the same order.",
                config={"layers": repeated_layers(6, 8, "relu"), "initializer": "he_uniform"},
                command={"type": "step", "n": 1},
            ),
            TryThis(
                action="Try leaky ReLU with He initialization (then ELU from the menus).",
                expect="Similar balanced norms, and no unit stuck at 0.",
                config={"layers": repeated_layers(6, 8, "leaky_relu"), "initializer": "he_uniform"},
                command={"type": "step", "n": 1},
            ),
            TryThis(
                action="Back to sigmoid, with batch normalization in every layer.",
                expect="The first layer's gradient rises by orders of magnitude.",
                config={"layers": repeated_layers(6, 8, "sigmoid", batch_norm=True)},
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
        config={"dataset": "circle", "layers": repeated_layers(2, 4, "sigmoid"),
                "initializer": "zeros", "optimizer": "sgd", "learning_rate": 0.3,
                "speed": 30},
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
                config={"initializer": "ones", "layers": repeated_layers(2, 4, "tanh")},
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
                        "layers": repeated_layers(2, 4, "relu")},
                command={"type": "step", "n": 100},
            ),
            TryThis(
                action='Back to tanh with Glorot, but ten times too wide ("Initial weights" set '
                'to 10 in "More settings"), and train 100 epochs.',
                expect="Random, so the units differ, but most start saturated at +-1 with "
                "almost no slope: after 100 epochs the loss is still many times Glorot's.",
                config={"initializer": "glorot_uniform", "init_scale": 10.0,
                        "layers": repeated_layers(2, 4, "tanh")},
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
        config={"dataset": "spiral", "layers": repeated_layers(2, 8, "tanh"), "batch_size": 10,
                "grid_resolution": 50},
        instrument={"racers": RACERS, "epochs_per_step": 10},
        try_this=[
            TryThis(
                action='Press "Start race" for 200 epochs (all at learning rate 0.03).',
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
