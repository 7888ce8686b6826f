"""The Keras export: one self-contained Keras 3 script that retrains a session (issue 11).

The script builds the session's network as a `keras.Sequential` in float64, loads its exact
initial weights and trains it with an explicit step (forward, loss, torch autograd, Keras's
optimizer) over the playground's own minibatch order. Keras 3's optimizers, regularizers,
batch normalization and losses from logits are the playground's formulas (the engine follows
Keras 3), so they are used as they are; what Keras does differently is written out, each with
a comment saying why:

- Keras 3.12+ on torch computes some float64 operations in float32 (`result_type` maps
  float64 to float32 outside TensorFlow, Dense's matmul among them): the script keeps them in
  float64, or every step would be ~1e-8 relative off.
- The sigmoid/softmax output's loss is taken from the logits (`from_logits=True`), as the
  playground's fused gradient (a - y) / n; Keras's loss of probabilities clips them.
- Max-norm: `keras.constraints.MaxNorm` scales every column by norm / (1e-7 + norm), even
  below the limit; the script's MaxNorm leaves those columns exactly as they are.
- Leaky ReLU: Keras's "leaky_relu" string means slope 0.2, the playground's 0.01.
- RReLU: Keras has none; a small layer draws one slope per unit per training batch.
- Dropout: a small layer with keras.layers.Dropout's formula, its masks the playground's.
- Early stopping on the test loss is written out in the epoch loop.

The script lands on the session's weights to ~1e-15 relative on small nets (bound promised:
1e-6), training randomness included: the augmentation, the dropout masks and the RReLU slopes
are numpy draws from the playground's own generators, in its order, so the scripts draw them
the same way (augmentation with numpy_script's code; Dropout and RReLU are small layers). Only
mid-run changes make a script say at the top that it is not exact, and why.
"""

from __future__ import annotations

from app.codegen import source
from app.codegen.numpy_script import augment_code
from app.codegen.recipe import LayerRecipe, Recipe

# The Keras optimizer class and the keyword arguments it takes, per engine class.
OPTIMIZER_ARGS: dict[str, tuple[str, ...]] = {
    "SGD": ("learning_rate", "momentum", "nesterov"),
    "Adagrad": ("learning_rate", "initial_accumulator_value", "epsilon"),
    "RMSprop": ("learning_rate", "rho", "momentum", "epsilon"),
    "Adam": ("learning_rate", "beta_1", "beta_2", "epsilon"),
}
OPTIMIZER_NOTES: dict[str, str] = {
    "SGD": "Keras 3's SGD is the playground's: velocity = momentum velocity - lr g.",
    "Adagrad": (
        "Keras 3's Adagrad is the playground's: the accumulator starts at "
        "initial_accumulator_value and epsilon is inside the square root."
    ),
    "RMSprop": (
        "Keras 3's RMSprop is the playground's: epsilon is inside the square root, and "
        "momentum (when > 0) accumulates the scaled steps."
    ),
    "Adam": (
        "Keras 3's Adam is the playground's: the bias correction is folded into the step size "
        "and epsilon is added to sqrt(v)."
    ),
}
# Activations Keras knows by the same name and with the same parameters as the playground.
SAME_NAME = ("linear", "sigmoid", "tanh", "relu", "softmax")

FLOAT64_FIX = '''
keras.config.set_floatx("float64")  # the playground computes in float64
torch.set_num_threads(1)  # tensors this small: more threads cost more than they save
# Keras 3.12+ on torch computes some float64 operations in float32, Dense's matmul among them
# (keras.backend.result_type maps float64 to float32 outside TensorFlow; Keras issue 23704).
# That would put every step ~1e-8 relative off the playground: keep them in float64.
if "float64" in getattr(keras_dtypes, "BIT64_TO_BIT32_DTYPE", {}):
    keras_dtypes.BIT64_TO_BIT32_DTYPE["float64"] = "float64"
'''

MAX_NORM_CODE = '''
class MaxNorm(keras.constraints.Constraint):
    """Max-norm as the playground's: each unit's incoming weights (a kernel column) whose norm
    is above max_value are scaled to norm max_value; the other columns are left exactly as
    they are. (keras.constraints.MaxNorm multiplies every column by norm / (1e-7 + norm),
    which would shrink them all by ~1e-7 at every step.)"""

    def __init__(self, max_value):
        self.max_value = max_value

    def __call__(self, w):
        norms = keras.ops.sqrt(keras.ops.sum(keras.ops.square(w), axis=0, keepdims=True))
        clipped = self.max_value / keras.ops.maximum(norms, self.max_value)
        return w * keras.ops.where(norms > self.max_value, clipped, 1.0)
'''

RRELU_CODE = '''
class RReLU(keras.layers.Layer):
    """Randomized leaky ReLU (Keras has none): z >= 0 ? z : slope z, with one slope per unit
    drawn from U[lower, upper] for every training batch, and (lower + upper) / 2 otherwise.
    The slopes come from the playground's own noise generator, so they are its slopes."""

    def __init__(self, lower, upper, **kwargs):
        super().__init__(**kwargs)
        self.lower, self.upper = lower, upper

    def call(self, z, training=False):
        if training:
            drawn = noise_rng.uniform(self.lower, self.upper, size=(z.shape[-1],))
            slope = keras.ops.convert_to_tensor(drawn)
        else:
            slope = (self.lower + self.upper) / 2.0
        return keras.ops.where(z >= 0.0, z, slope * z)
'''

DROPOUT_CODE = '''
class Dropout(keras.layers.Layer):
    """keras.layers.Dropout's inverted dropout (in training keep each value with p = 1 - rate
    and scale it by 1 / p), with the masks drawn from the playground's own noise generator:
    the playground's masks. (keras.layers.Dropout(rate) draws Keras's own.)"""

    def __init__(self, rate, **kwargs):
        super().__init__(**kwargs)
        self.rate = rate

    def call(self, x, training=False):
        if not training:
            return x
        keep = noise_rng.random(tuple(x.shape)) >= self.rate
        return x * keras.ops.convert_to_tensor(keep / (1.0 - self.rate))
'''

NOISE_CODE = '''
# Dropout masks and RReLU slopes: the playground's noise generator, drawn in the same order
# (layer by layer, batch by batch), so the draws are the playground's.
noise_rng = np.random.default_rng(np.random.SeedSequence(SEED, spawn_key={spawn}))
'''


LOSS_CODE: dict[str, str] = {
    "binary_crossentropy": '''
# Binary cross-entropy from the output's logits, as the playground computes it: its gradient is
# exactly (sigmoid(z) - y) / n even where the sigmoid saturates (from probabilities, Keras
# clips them to [1e-7, 1 - 1e-7] and the gradient vanishes there).
loss_fn = keras.losses.BinaryCrossentropy(from_logits=True)
''',
    "sparse_categorical_crossentropy": '''
# Cross-entropy of integer class labels from the output's logits, as the playground computes
# it: its gradient is exactly (softmax(z) - y) / n (from probabilities, Keras clips them).
loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
''',
    "mse": '''
# Mean squared error: the mean over outputs and batch of (y_pred - y)^2.
loss_fn = keras.losses.MeanSquaredError()
''',
}


def section(title: str) -> str:
    """A section's comment line, dashes up to column 99."""
    head = f"# ---- {title} "
    return "\n\n\n" + head + "-" * (source.WIDTH - len(head)) + "\n\n"


def tidy(text: str) -> str:
    """At most two blank lines in a row, one newline at the end."""
    while "\n\n\n\n" in text:
        text = text.replace("\n\n\n\n", "\n\n\n")
    return text.strip("\n") + "\n"


def origin(recipe: Recipe) -> str:
    """Where the recipe came from: session or saved run, and the epoch."""
    kind = "saved run" if recipe.source == "run" else "session"
    return f"{kind} {recipe.session_id}, epoch {recipe.epochs}"


def augmented(recipe: Recipe) -> bool:
    """Whether the run trained on augmented copies of its points (a new draw every epoch)."""
    return bool(recipe.config.get("augmentation")) or any(
        kind.startswith("augmentation") for kind in recipe.randomness
    )


def not_exact_reasons(recipe: Recipe, library: str) -> list[str]:
    """Why a `library` script cannot land on the playground's weights (empty when it can):
    mid-run changes, or augmentation the recipe cannot redo. Dropout and RReLU draws are the
    playground's own (numpy's noise generator), so they are no reason."""
    reasons = list(recipe.changes)
    if augmented(recipe) and recipe.augmentation is None:
        reasons.append(
            "augmentation: the playground trained every epoch on randomly transformed and "
            "jittered copies of the points; this script trains on the points themselves"
        )
    return reasons


def library_exact(recipe: Recipe) -> bool:
    """Whether a Keras or PyTorch script of `recipe` lands on the playground's weights."""
    return not not_exact_reasons(recipe, "the library")


def header(recipe: Recipe, library: str, needs: str, name: str) -> str:
    """The module docstring: what the script is, how to run it, and how exact it is."""
    lines = [
        f'"""{recipe.title}.',
        "",
        f"Exported from nn-playground ({origin(recipe)}) as a {library} script.",
        source.paragraph(
            "Trains the network the playground trained, on the same points, from the same "
            "initial weights, in the same minibatch order, with the same float64 formulas "
            f"(Keras 3's), then compares its weights with the playground's. Needs {needs}: "
            f"python {name}"
        ),
        "",
    ]
    reasons = not_exact_reasons(recipe, library)
    if reasons:
        lines.append(source.paragraph(
            "NOT EXACT: this script cannot land on the playground's weights, because:"))
        lines += [source.paragraph(f"- {reason}.") for reason in reasons]
    else:
        lines.append(source.paragraph(
            f"Exact: it lands on the playground's weights at epoch {recipe.epochs} to within "
            "1e-6 relative (the same formulas in float64: only the rounding of sums and "
            "library functions differs, ~1e-15 per step)."
        ))
        if recipe.randomness:
            kinds = ", ".join(kind.split(":")[0] for kind in recipe.randomness)
            lines += ["", source.paragraph(
                f"Its random draws ({kinds}) come from the playground's own seeded generators "
                "(with numpy) in the playground's order, so they match too."
            )]
    lines.append('"""')
    return "\n".join(lines)


def features_code(recipe: Recipe) -> str:
    """`features(points)`: the input columns from the raw points, with numpy."""
    formulas = recipe.feature_formulas
    return f'''
def features(points):
    """The network's inputs from the raw points (x1, x2): {", ".join(recipe.features)}."""
    x1, x2 = points[:, 0], points[:, 1]
    return np.column_stack([{", ".join(formulas.values())}])
'''


def settings_code(recipe: Recipe) -> str:
    """EPOCHS, BATCH_SIZE, SEED and the constants the recipe needs."""
    lines = [
        f"EPOCHS = {recipe.epochs}",
        f"BATCH_SIZE = {recipe.batch_size}",
        f"SEED = {recipe.order_seed}  # the playground's seed: its batch orders come from it",
    ]
    if recipe.early_stopping_patience is not None:
        lines.append(f"PATIENCE = {recipe.early_stopping_patience}  # early stopping")
    if recipe.regularization is not None:
        rates = recipe.regularization
        if recipe.regularization_name in ("l1", "l1_l2"):
            lines.append(f"L1 = {source.number(rates['l1'])}  # L1 rate, on every Dense kernel")
        if recipe.regularization_name in ("l2", "l1_l2"):
            lines.append(f"L2 = {source.number(rates['l2'])}  # L2 rate, on every Dense kernel")
    if recipe.max_norm is not None:
        lines.append(
            f"MAX_NORM = {source.number(recipe.max_norm)}  # largest norm of a hidden unit's "
            "incoming weights"
        )
    for constant, value in activation_constants(recipe).items():
        lines.append(f"{constant} = {source.number(value)}")
    return "\n".join(lines) + "\n"


def activation_constants(recipe: Recipe) -> dict[str, float]:
    """LEAKY_RELU_ALPHA / ELU_ALPHA when a layer uses them (one value each in a session)."""
    found: dict[str, float] = {}
    for layer in recipe.layers:
        if layer.activation in ("leaky_relu", "elu"):
            constant = f"{layer.activation.upper()}_ALPHA"
            alpha = float(layer.activation_params.get("alpha", 1.0))
            if found.setdefault(constant, alpha) != alpha:
                raise ValueError(f"layers use different {layer.activation} alphas")
    return found


def fused_output(recipe: Recipe) -> bool:
    """Whether the output's sigmoid/softmax is a layer of its own whose input the loss takes."""
    return recipe.fused


def regularizer_expression(recipe: Recipe) -> str | None:
    """The Keras regularizer of every Dense kernel, or None."""
    if recipe.regularization is None:
        return None
    return {
        "l1": "keras.regularizers.L1(L1)",
        "l2": "keras.regularizers.L2(L2)",
        "l1_l2": "keras.regularizers.L1L2(l1=L1, l2=L2)",
    }[recipe.regularization_name]


def keras_activation(layer: LayerRecipe) -> str:
    """The `activation=` value for an activation Keras has (a string or our function)."""
    if layer.activation in SAME_NAME:
        return f'"{layer.activation}"'
    if layer.activation == "elu" and float(layer.activation_params.get("alpha", 1.0)) == 1.0:
        return '"elu"'
    return layer.activation  # leaky_relu and elu with another alpha: functions of the script


def activation_functions_code(recipe: Recipe) -> str:
    """leaky_relu / elu functions with the playground's parameters, when layers use them."""
    parts = []
    names = {layer.activation for layer in recipe.layers}
    if "leaky_relu" in names:
        parts.append('''
def leaky_relu(z):
    """The playground's leaky ReLU, max(z, alpha z): Keras's "leaky_relu" has slope 0.2."""
    return keras.activations.leaky_relu(z, negative_slope=LEAKY_RELU_ALPHA)
''')
    if "elu" in names and activation_constants(recipe).get("ELU_ALPHA", 1.0) != 1.0:
        parts.append('''
def elu(z):
    """ELU with the playground's alpha: z >= 0 ? z : alpha (e^z - 1)."""
    return keras.activations.elu(z, alpha=ELU_ALPHA)
''')
    return blocks(*parts)


def layer_lines(recipe: Recipe) -> list[str]:
    """The Sequential's entries, one block per Dense, with a comment each."""
    regularizer = regularizer_expression(recipe)
    lines = [f"        keras.Input(shape=({len(recipe.features)},)),"]
    for layer in recipe.layers:
        kind = "output" if layer.is_output else "hidden"
        units = "1 unit" if layer.units == 1 else f"{layer.units} units"
        lines.append(f"        # {layer.name}: {kind}, {units}, {layer.activation}")
        args = [str(layer.units)]
        separate = (
            layer.batch_norm or layer.activation in ("prelu", "rrelu")
            or (layer.is_output and fused_output(recipe))
        )
        if not separate and layer.activation != "linear":
            args.append(f"activation={keras_activation(layer)}")
        if layer.regularized and regularizer is not None:
            args.append("kernel_regularizer=regularizer")
        if layer.max_norm is not None:
            args.append("kernel_constraint=MaxNorm(MAX_NORM)")
        args.append(f'name="{layer.name}"')
        lines += call_lines("keras.layers.Dense", args, "        ")
        if layer.batch_norm:
            lines.append(
                "        keras.layers.BatchNormalization("
                f"momentum={source.number(layer.bn_momentum)}, "
                f"epsilon={source.number(layer.bn_epsilon)}),"
            )
            if layer.activation not in ("prelu", "rrelu"):
                lines.append(f"        keras.layers.Activation({keras_activation(layer)}),")
        if layer.activation == "prelu":
            lines.append("        keras.layers.PReLU(),  # a learned slope per unit")
        elif layer.activation == "rrelu":
            params = layer.activation_params
            lines.append(
                f"        RReLU(lower={source.number(params['lower'])}, "
                f"upper={source.number(params['upper'])}),"
            )
        elif layer.is_output and fused_output(recipe):
            lines.append(
                f'        keras.layers.Activation("{layer.activation}"),  '
                "# the loss takes its input, the logits"
            )
        if layer.dropout > 0.0:
            rate = source.number(layer.dropout)
            lines.append(f"        Dropout({rate}),")
    return lines


def call_lines(function: str, args: list[str], indent: str) -> list[str]:
    """`function(args),` on one line, or its arguments on lines of their own when too long."""
    one_line = f"{indent}{function}({', '.join(args)}),"
    if len(one_line) <= source.WIDTH:
        return [one_line]
    return [f"{indent}{function}(", *source.wrap_items(args, indent + "    "), f"{indent}),"]


def blocks(*parts: str) -> str:
    """Top-level definitions separated by two blank lines (empty parts dropped)."""
    kept = [part.strip("\n") for part in parts if part.strip()]
    return "\n\n\n".join(kept) + "\n" if kept else ""


def build_code(recipe: Recipe) -> str:
    """`build_model()`: the Sequential, then the playground's initial weights loaded."""
    lines = [
        "def build_model():",
        '    """The playground\'s network as a keras.Sequential, with its initial weights."""',
    ]
    regularizer = regularizer_expression(recipe)
    if regularizer is not None:
        kinds = {"l1": "l1 sum|w|", "l2": "l2 sum w^2", "l1_l2": "l1 sum|w| + l2 sum w^2"}
        lines.append(
            f"    # The penalty {kinds[recipe.regularization_name]} of every Dense kernel "
            "(never a bias),"
        )
        lines.append("    # added to the loss as the playground's (Keras's form: no 1/2).")
        lines.append(f"    regularizer = {regularizer}")
    lines.append("    model = keras.Sequential([")
    lines += layer_lines(recipe)
    lines += [
        '    ], name="playground")',
        "    model.set_weights(INITIAL_WEIGHTS)",
        "    return model",
    ]
    return "\n".join(lines) + "\n"


def optimizer_code(recipe: Recipe) -> str:
    """`optimizer = keras.optimizers.X(...)` with every hyperparameter, and why it is exact."""
    cls = recipe.optimizer_class
    args = []
    for name in OPTIMIZER_ARGS[cls]:
        value = recipe.optimizer_params[name]
        text = str(bool(value)) if isinstance(value, bool) else source.number(float(value))
        args.append(f"{name}={text}")
    call = f"optimizer = keras.optimizers.{cls}({', '.join(args)})"
    if len(call) > source.WIDTH:
        call = (f"optimizer = keras.optimizers.{cls}(\n"
                + "\n".join(source.wrap_items(args, "    ")) + "\n)")
    return source.comment_block(OPTIMIZER_NOTES[cls]) + "\n" + call + "\n"


def training_code(recipe: Recipe) -> str:
    """logits/outputs, train_step, evaluate, check_batch_order and train()."""
    penalty = " + sum(model.losses)" if recipe.regularization is not None else ""
    if fused_output(recipe):
        forward = '''
def logits(model, x, training):
    """The output layer's z: every layer but the output's activation."""
    for layer in model.layers[:-1]:
        x = layer(x, training=training)
    return x
'''
        predict = "logits"
    else:
        forward = '''
def outputs(model, x, training):
    """The network's outputs (the loss takes them as they are)."""
    return model(x, training=training)
'''
        predict = "outputs"
    constraint = (
        "\n    (optimizer.apply also applies each kernel's constraint, max-norm, after it.)"
        if recipe.max_norm is not None else ""
    )
    return f'''{forward}

def train_step(model, x, y):
    """One minibatch: forward (training mode), loss, gradients (torch autograd), update.{
        constraint}"""
    loss = loss_fn(y, {predict}(model, x, training=True)){penalty}
    weights = model.trainable_variables
    grads = torch.autograd.grad(loss, [w.value for w in weights])
    optimizer.apply(grads, weights)


def evaluate(model):
    """Train and test loss (data loss only, as the playground plots it), in inference mode."""
    with torch.no_grad():
        train_loss = loss_fn(Y_TRAIN, {predict}(model, X_TRAIN, training=False))
        test_loss = loss_fn(Y_TEST, {predict}(model, X_TEST, training=False))
    return float(train_loss), float(test_loss)
''' + loop_code(recipe, "", "order[start:start + BATCH_SIZE]",
                "train_step(model, x_train[batch], y_train[batch])", "features(points)")


def loop_code(recipe: Recipe, setup: str, batch: str, step: str, inputs: str) -> str:
    """check_batch_order() and train(model): the epochs (each on fresh augmented copies when
    the run augmented), the playground's batch order, the losses now and then, early
    stopping. `setup`: lines at the start of train (indented); `batch`: the batch's indices
    from `order` and `start`; `step`: the call that trains on x_train, y_train at `batch`;
    `inputs`: the network's inputs from `points`."""
    best, epoch_data, evaluate_line, early = source.epoch_code(recipe, inputs)
    spawn = tuple(recipe.order_spawn_key)
    return f'''

def check_batch_order():
    """The same seed gives numpy's same draws in practice (numpy does not promise it across
    versions): say so if this numpy's differ from the playground's."""
    rng = np.random.default_rng(np.random.SeedSequence(SEED, spawn_key={spawn!r}))
    if rng.permutation(len(X_TRAIN))[:{len(recipe.order_check)}].tolist() != {
        list(recipe.order_check)!r}:
        print("warning: this numpy draws other batch orders than the playground's numpy did")


def train(model):
    """EPOCHS epochs of minibatches of BATCH_SIZE points, in the playground's order."""
    check_batch_order()
    # The playground draws each epoch's order of the training points from one generator.
    order_rng = np.random.default_rng(np.random.SeedSequence(SEED, spawn_key={spawn!r}))
{setup}{best}    for epoch in range(EPOCHS):
{epoch_data}        order = order_rng.permutation(len(x_train))
        for start in range(0, len(order), BATCH_SIZE):
            batch = {batch}
            {step}
{evaluate_line}{early}    return model
'''


def targets_code(recipe: Recipe, torch_tensors: bool = False) -> str:
    """`targets(labels)`: the labels in the loss's shape (as tensors for PyTorch)."""
    if recipe.problem == "multiclass":
        doc, body = "the integer class labels (n,)", "labels.astype(np.int64)"
        if torch_tensors:
            body = "torch.tensor(labels, dtype=torch.int64)"
    else:
        doc, body = "the labels as a column (n, 1)", "labels.reshape(-1, 1)"
        if torch_tensors:
            body = "torch.tensor(labels.reshape(-1, 1))"
    return f'''
def targets(labels):
    """The loss's targets: {doc}."""
    return {body}
'''


def data_code(recipe: Recipe) -> str:
    """The points, the inputs and targets."""
    return "".join([
        source.comment_block(f"The data: {recipe.dataset_note}. Each row: x1, x2, label.") + "\n",
        f"TRAIN_POINTS = {source.points_literal(recipe.x_train, recipe.y_train)}\n",
        f"TEST_POINTS = {source.points_literal(recipe.x_test, recipe.y_test)}\n",
        "X_TRAIN, X_TEST = features(TRAIN_POINTS), features(TEST_POINTS)\n",
        "Y_TRAIN, Y_TEST = targets(TRAIN_POINTS[:, 2]), targets(TEST_POINTS[:, 2])\n",
    ])


def report_code(recipe: Recipe, get_weights: str) -> str:
    """The final losses beside the playground's, and the largest difference of the weights."""
    def shown(value: float | None) -> str:
        return "none" if value is None else source.number(value)

    return f'''
train_loss, test_loss = evaluate(model)
print(f"final train loss {{train_loss:.10f}} (the playground showed {
        shown(recipe.reported_train_loss)})")
print(f"final test loss {{test_loss:.10f}} (the playground showed {
        shown(recipe.reported_test_loss)})")
difference = max(
    float(np.max(np.abs(mine - theirs), initial=0.0))
    for mine, theirs in zip({get_weights}, PLAYGROUND_WEIGHTS, strict=True)
)
print(f"largest difference from the playground's weights: {{difference:.3g}}")
'''


def render(recipe: Recipe) -> str:
    """The Keras 3 script of `recipe`."""
    if recipe.loss not in LOSS_CODE:
        raise ValueError(
            f"loss {recipe.loss!r} has no Keras 3 code; expected one of: {', '.join(LOSS_CODE)}"
        )
    name = source.file_name(recipe, "keras")
    uses = {layer.activation for layer in recipe.layers}
    random_layers = "rrelu" in uses or any(la.dropout > 0.0 for la in recipe.layers)
    imports = (
        "\n\nimport os\n\n"
        "# The training step takes its gradients with torch's autograd: Keras runs on torch.\n"
        'os.environ["KERAS_BACKEND"] = "torch"\n\n'
        "import keras\n"
        "import numpy as np\n"
        "import torch\n"
        "from keras.src.backend.common import dtypes as keras_dtypes\n"
    )
    seeding = (
        NOISE_CODE.replace("{spawn}", repr(tuple(recipe.noise_spawn_key)))
        if random_layers else ""
    )
    sections = [
        header(recipe, "Keras", "Keras 3 with the torch backend (pip install keras torch)",
               name),
        imports,
        FLOAT64_FIX,
        "\n" + settings_code(recipe),
        seeding,
        section("inputs"),
        "\n" + blocks(features_code(recipe), targets_code(recipe), augment_code(recipe)),
        section("network"),
        "\n" + blocks(
            activation_functions_code(recipe),
            MAX_NORM_CODE if recipe.max_norm is not None else "",
            RRELU_CODE if "rrelu" in uses else "",
            DROPOUT_CODE if any(la.dropout > 0.0 for la in recipe.layers) else "",
            build_code(recipe),
        ),
        section("loss and optimizer"),
        LOSS_CODE[recipe.loss],
        "\n" + optimizer_code(recipe),
        section("training"),
        training_code(recipe),
        section("data and weights"),
        data_code(recipe),
        "\n\n# The playground's initial weights, in Keras order (model.get_weights()).\n",
        source.weights_literal("INITIAL_WEIGHTS", recipe.initial_weights, recipe.weight_names),
        f"\n\n# The playground's weights at epoch {recipe.epochs}: where the script should land.\n",
        source.weights_literal("PLAYGROUND_WEIGHTS", recipe.final_weights, recipe.weight_names),
        "\n\n\nmodel = train(build_model())\n",
        report_code(recipe, "model.get_weights()"),
    ]
    return tidy("".join(sections))
