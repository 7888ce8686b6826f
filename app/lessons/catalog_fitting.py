"""Lessons 4-5: output units with their costs, and overfitting with its remedies."""

from app.lessons.model import Lesson, TryThis, repeated_layers

OVERFIT_LAYERS = repeated_layers(3, 16, "relu")

FITTING_LESSONS: list[Lesson] = [
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
        config={"dataset": "reg-plane", "layers": repeated_layers(1, 4, "tanh"),
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
                config={"layers": repeated_layers(3, 16, "relu", dropout=0.4)},
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
]
