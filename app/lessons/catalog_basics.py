"""Lessons 1-3: the threshold unit and perceptron, XOR with a hidden layer, backprop by hand."""

from app.lessons.model import Lesson, TryThis, repeated_layers

BASICS_LESSONS: list[Lesson] = [
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
                action="Run the perceptron rule on the AND table.",
                expect="The errors per pass fall to 0 within a few passes and the line "
                "settles between (1, 1) and the other three points.",
            ),
            TryThis(
                action='Set "Table" to OR and press "Run" again.',
                expect="It converges too: OR is also separable by one line.",
                config={"dataset": "or-table"},
                instrument={"dataset": "or-table"},
            ),
            TryThis(
                action='Set "Table" to XOR and "Passes" to 50, and press "Run".',
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
        config={"dataset": "xor-table", "layers": repeated_layers(1, 2, "sigmoid"),
                "optimizer": "sgd", "learning_rate": 3.0, "batch_size": 4, "seed": 0,
                "speed": 120},
        try_this=[
            TryThis(
                action="Look at the hand-set network on the four inputs.",
                expect="Hidden units (AND, OR) = (0,0), (0,1), (0,1), (1,1); outputs 0, 1, "
                "1, 0.",
            ),
            TryThis(
                action="Train the 2-2-1 sigmoid network for 500 epochs and watch the output.",
                expect="The training loss falls and the accuracy reaches 1: it has found "
                "its own XOR weights.",
                command={"type": "step", "n": 500},
            ),
            TryThis(
                action='Set "Seed" (in "More settings") to 4 and train 500 epochs again.',
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
                action='Step through the six phases with "Next phase".',
                expect="net_h1 = 0.3775, out_o1 = 0.75136, E_total = 0.29837, "
                "dE/dw5 = 0.08216, w5' = 0.35891, w1' = 0.14978, as on the slides; each "
                "analytic gradient sits next to its numeric estimate.",
            ),
            TryThis(
                action="Set the example's learning rate (η) to 1.0.",
                expect="The forward values, deltas and gradients do not change; only the "
                "new weights move twice as far.",
                instrument={"learning_rate": 1.0},
            ),
        ],
    ),
]
