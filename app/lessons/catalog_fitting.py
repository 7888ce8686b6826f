"""Lessons 4-5: output units with their costs, and overfitting with its remedies."""

from app.lessons.model import Lesson, TryThis, repeated_layers

# Three ReLU layers of 8 units: 177 weights and biases for 30 training points (and a diagram
# that fits beside the lesson; 16 units would overfit as well but stand 900 px tall).
OVERFIT_LAYERS = repeated_layers(3, 8, "relu")

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
                "optimizer": "adam", "learning_rate": 0.01, "speed": 30},
        try_this=[
            TryThis(
                action="Train the regression for 100 epochs.",
                expect="A linear output with MSE: the colour shows the predicted value, a "
                "smooth slope across the plane; the loss is a squared error.",
                command={"type": "step", "n": 100},
            ),
            TryThis(
                action='Choose the "circle" dataset (two classes) and train 100 epochs.',
                expect="A sigmoid output with binary cross-entropy: the colour is the "
                "probability of class 1 and the boundary is where it crosses 0.5.",
                config={"dataset": "circle"},
                command={"type": "step", "n": 100},
            ),
            TryThis(
                action='Choose "blobs-3" (three classes) and train 100 epochs.',
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
            "Three ReLU layers of 8 units (177 weights and biases) have far more freedom than "
            "30 noisy points need: the network learns the noise, its training loss goes to "
            "zero and its test loss climbs. Each remedy limits that freedom in its own way: "
            "stop when the test loss stops improving, charge for large weights (L1, L2), cap "
            "each unit's weight vector (max-norm), switch random units off during training "
            "(dropout), or show slightly different copies of the points each epoch "
            "(augmentation)."
        ),
        kind="session",
        config={"dataset": "circle", "n_samples": 60, "noise": 0.35, "train_ratio": 0.5,
                "layers": OVERFIT_LAYERS, "optimizer": "adam", "learning_rate": 0.01,
                "batch_size": 10, "speed": 60},
        try_this=[
            TryThis(
                action="Train 400 epochs with no remedy.",
                expect="Training loss near 0, test loss far above it and rising: the "
                "boundary wraps around single noisy points.",
                command={"type": "step", "n": 400},
            ),
            TryThis(
                action='Set "Early-stopping patience" (in "More settings") to 20 and train.',
                expect="Training stops soon after the test loss bottoms out.",
                config={"early_stopping_patience": 20},
                command={"type": "step", "n": 400},
            ),
            TryThis(
                action='Set "Regularization" to L1 and "Regularization rate" to 0.005, and train '
                "400 epochs.",
                expect="Most weights shrink toward 0; the gap between the curves shrinks.",
                config={"regularization": "l1", "regularization_rate": 0.005},
                command={"type": "step", "n": 400},
            ),
            TryThis(
                action='Set "Regularization" to L2, rate 0.01, and train 400 epochs.',
                expect="Weights stay small, the boundary smooth, the gap small.",
                config={"regularization": "l2", "regularization_rate": 0.01},
                command={"type": "step", "n": 400},
            ),
            TryThis(
                action='Set "Max-norm" (in "More settings") to 0.5 and train 400 epochs.',
                expect="No unit's incoming weights grow past length 0.5; the gap shrinks.",
                config={"max_norm": 0.5},
                command={"type": "step", "n": 400},
            ),
            TryThis(
                action="Give every hidden layer dropout 0.4 (its \"Drop\" box) and train 400 "
                "epochs.",
                expect="The training loss stays noisy and higher; the test loss stays "
                "closer to it.",
                config={"layers": repeated_layers(3, 8, "relu", dropout=0.4)},
                command={"type": "step", "n": 400},
            ),
            TryThis(
                action='Tick "Data augmentation" (in "More settings") and train 400 epochs.',
                expect="Fresh jittered and mirrored copies every epoch: train and test "
                "losses stay together.",
                config={"augmentation": True},
                command={"type": "step", "n": 400},
            ),
        ],
    ),
]
