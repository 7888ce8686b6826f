"""The numpy export: one self-contained script (numpy only) that retrains a session exactly.

The script writes out the engine's own float64 operations in the engine's order (Dense:
`x @ kernel + bias`; the fused sigmoid/softmax gradient `(a - y) / n`; Keras 3's optimizer
updates as app/engine/optimizers.py has them; max-norm's exact clip; batch normalization's
batch statistics), so a run without augmentation or mid-run changes lands on the session's
weights to the last bits. Only the pieces the recipe uses are written (an SGD run has no Adam
class). It ends with the module-level `model` (`model.get_weights()`: Keras order) and prints
the final train and test loss beside the playground's.
"""

from __future__ import annotations

from app.codegen import source
from app.codegen.recipe import Recipe

# ---- activations: forward, and backward (dL/dz from dL/da) ------------------------------------

ACTIVATION_CODE: dict[str, str] = {
    "linear": '''
def linear(z):
    return z.copy()


def linear_backward(z, a, da):
    return da.copy()
''',
    "sigmoid": '''
def sigmoid(z):
    # 1 / (1 + e^-z) written so that it never overflows: exp(-softplus(-z)).
    return np.exp(-np.logaddexp(0.0, -z))


def sigmoid_backward(z, a, da):
    return da * (a * (1.0 - a))
''',
    "tanh": '''
def tanh(z):
    return np.tanh(z)


def tanh_backward(z, a, da):
    return da * (1.0 - a * a)
''',
    "relu": '''
def relu(z):
    return np.maximum(z, 0.0)


def relu_backward(z, a, da):
    return np.where(z > 0.0, da, 0.0)  # the slope at z = 0 is 0, as TensorFlow
''',
    "leaky_relu": '''
def leaky_relu(z):
    return np.maximum(z, LEAKY_RELU_ALPHA * z)  # = where(z > 0, z, alpha z) for alpha <= 1


def leaky_relu_backward(z, a, da):
    return da * np.where(z > 0.0, 1.0, LEAKY_RELU_ALPHA)
''',
    "elu": '''
def elu(z):
    # min(z, 0) keeps expm1 from overflowing on the branch np.where throws away.
    return np.where(z >= 0.0, z, ELU_ALPHA * np.expm1(np.minimum(z, 0.0)))


def elu_backward(z, a, da):
    return da * np.where(z >= 0.0, 1.0, a + ELU_ALPHA)
''',
    "softmax": '''
def softmax(z):
    e = np.exp(z - z.max(axis=-1, keepdims=True))  # shifted by the row maximum: no overflow
    return e / e.sum(axis=-1, keepdims=True)


def softmax_backward(z, a, da):
    return a * (da - (da * a).sum(axis=-1, keepdims=True))
''',
}
ACTIVATION_CONSTANTS = {"leaky_relu": "LEAKY_RELU_ALPHA", "elu": "ELU_ALPHA"}

# ---- layers -------------------------------------------------------------------------------------

MODEL_CODE = '''
class Model:
    """A stack of layers (Keras's Sequential): forward, backward, weights in Keras order."""

    def __init__(self, layers):
        self.layers = layers

    def forward(self, x, training=False):
        for layer in self.layers:
            x = layer.forward(x, training)
        return x

    def predict(self, x):
        return self.forward(x, training=False)

    def get_weights(self):
        """Copies of every weight in Keras order{prelu_note}."""
        return [store[key].copy() for layer in self.layers for store, key in layer.slots()]

    def set_weights(self, weights):
        slots = [slot for layer in self.layers for slot in layer.slots()]
        assert len(slots) == len(weights), (len(slots), len(weights))
        for (store, key), value in zip(slots, weights, strict=True):
            assert store[key].shape == value.shape, (key, store[key].shape, value.shape)
            store[key][...] = value
'''

LAYER_BASE = '''
class Layer:
    """A layer maps X (n, n_in) to Y (n, n_out); backward(dY) fills `grads`, returns dX."""

    def __init__(self):
        self.params = {}  # trainable arrays, updated in place by the optimizer
        self.grads = {}

    def slots(self):
        return [(self.params, key) for key in self.params]

    def apply_constraint(self):
        pass
'''

DENSE_HEAD = '''
class Dense(Layer):
    """Z = X @ kernel + bias, A = activation(Z); kernel (n_in, units), bias (units,)."""

    def __init__(self, n_in, units, activation, regularized=False, max_norm=None):
        super().__init__()
        self.params = {"kernel": np.zeros((n_in, units)), "bias": np.zeros(units)}
        self.activation = ACTIVATIONS[activation]
        self.regularized = regularized  # the kernel's penalty gradient is added in backward
        self.max_norm = max_norm  # after each update, clip each unit's incoming weights

    def forward(self, x, training):
        self.x = x
        self.z = x @ self.params["kernel"] + self.params["bias"]
        self.a = self.activation[0](self.z)
        return self.a

    def backward(self, da):
        return self.backward_logits(self.activation[1](self.z, self.a, da))

    def backward_logits(self, dz):
        """dW = X^T dZ (+ the penalty's gradient), db = sum of dZ over the batch; dX = dZ W^T."""
        kernel = self.params["kernel"]
        d_kernel = self.x.T @ dz
'''
DENSE_REGULARIZED = '''        if self.regularized:
            d_kernel += regularizer_gradient(kernel)
'''
DENSE_TAIL = '''        self.grads = {"kernel": d_kernel, "bias": dz.sum(axis=0)}
        return dz @ kernel.T
'''
DENSE_MAX_NORM = '''
    def apply_constraint(self):
        """Max-norm: a unit's incoming weights (a kernel column) with norm > r get norm r."""
        if self.max_norm is None:
            return
        kernel = self.params["kernel"]
        norms = np.sqrt(np.square(kernel).sum(axis=0, keepdims=True))
        r = self.max_norm
        kernel[...] = kernel * np.where(norms > r, r / np.maximum(norms, r), 1.0)
'''

PRELU_CODE = '''
class PReLU(Layer):
    """Parametric leaky ReLU: A = Z for Z >= 0, alpha Z below; one learned alpha per unit."""

    def __init__(self, units):
        super().__init__()
        self.params = {"alpha": np.zeros(units)}

    def forward(self, z, training):
        self.z = z
        return np.where(z >= 0.0, z, self.params["alpha"] * z)

    def backward(self, da):
        self.grads = {"alpha": (da * np.minimum(self.z, 0.0)).sum(axis=0)}
        return np.where(self.z >= 0.0, da, self.params["alpha"] * da)
'''

RRELU_CODE = '''
class RReLU(Layer):
    """Randomized leaky ReLU: in training each unit's slope below 0 is drawn from
    U[lower, upper] for every batch (from noise_rng, as the playground did); at inference the
    slope is (lower + upper) / 2."""

    def __init__(self, lower, upper):
        super().__init__()
        self.lower, self.upper = lower, upper

    def forward(self, z, training):
        if training:
            self.slope = noise_rng.uniform(self.lower, self.upper, size=(z.shape[1],))
        else:
            self.slope = np.full(z.shape[1], (self.lower + self.upper) / 2.0)
        self.z = z
        return np.where(z >= 0.0, z, self.slope * z)

    def backward(self, da):
        return np.where(self.z >= 0.0, da, self.slope * da)
'''

BATCH_NORM_CODE = '''
class BatchNormalization(Layer):
    """Normalize each unit over the batch, then scale and shift: A = gamma X_hat + beta.

    Training uses the batch's mean and (biased) variance and updates the moving averages;
    inference uses the moving averages. Weights (Keras order): gamma, beta, moving_mean,
    moving_variance.
    """

    def __init__(self, units, momentum, epsilon):
        super().__init__()
        self.params = {"gamma": np.ones(units), "beta": np.zeros(units)}
        self.state = {"moving_mean": np.zeros(units), "moving_variance": np.ones(units)}
        self.momentum, self.epsilon = momentum, epsilon

    def slots(self):
        return [(self.params, "gamma"), (self.params, "beta"),
                (self.state, "moving_mean"), (self.state, "moving_variance")]

    def forward(self, x, training):
        if training:
            mean, variance = x.mean(axis=0), x.var(axis=0)
            keep = self.momentum
            moving_mean, moving_variance = self.state["moving_mean"], self.state["moving_variance"]
            moving_mean[...] = keep * moving_mean + (1 - keep) * mean
            moving_variance[...] = keep * moving_variance + (1 - keep) * variance
        else:
            mean, variance = self.state["moving_mean"], self.state["moving_variance"]
        self.training = training
        self.inv_std = 1.0 / np.sqrt(variance + self.epsilon)
        self.x_hat = (x - mean) * self.inv_std
        return self.params["gamma"] * self.x_hat + self.params["beta"]

    def backward(self, dy):
        x_hat = self.x_hat
        self.grads = {"gamma": (dy * x_hat).sum(axis=0), "beta": dy.sum(axis=0)}
        d_x_hat = dy * self.params["gamma"]
        if not self.training:
            return d_x_hat * self.inv_std
        n = dy.shape[0]
        centered = n * d_x_hat - d_x_hat.sum(axis=0) - x_hat * (d_x_hat * x_hat).sum(axis=0)
        return self.inv_std / n * centered


class Activation(Layer):
    """An activation as its own layer (after a batch normalization)."""

    def __init__(self, activation):
        super().__init__()
        self.activation = ACTIVATIONS[activation]

    def forward(self, z, training):
        self.z, self.a = z, self.activation[0](z)
        return self.a

    def backward(self, da):
        return self.activation[1](self.z, self.a, da)
'''

DROPOUT_CODE = '''
class Dropout(Layer):
    """Inverted dropout: in training keep each value with p = 1 - rate and divide by p (masks
    from noise_rng, as the playground drew them); at inference the identity."""

    def __init__(self, rate):
        super().__init__()
        self.rate = rate

    def forward(self, x, training):
        if not training:
            self.mask = None
            return x
        keep = noise_rng.random(x.shape) >= self.rate
        self.mask = keep / (1.0 - self.rate)
        return x * self.mask

    def backward(self, dy):
        return dy if self.mask is None else dy * self.mask
'''

# ---- optimizers (Keras 3's formulas, app/engine/optimizers.py) ---------------------------------

OPTIMIZER_CODE: dict[str, str] = {
    "SGD": '''
class SGD:
    """Keras's SGD: momentum 0: w <- w - lr g; else velocity <- momentum velocity - lr g and
    w <- w + velocity (Nesterov: w <- w + momentum velocity - lr g)."""

    def __init__(self, learning_rate, momentum, nesterov):
        self.learning_rate, self.momentum, self.nesterov = learning_rate, momentum, nesterov
        self.velocity = {}

    def update(self, key, w, g):
        lr = self.learning_rate
        if self.momentum == 0.0:
            w += g * -lr
            return
        velocity = self.velocity.setdefault(key, np.zeros_like(w))
        velocity[...] = velocity * self.momentum - g * lr
        w += velocity * self.momentum - g * lr if self.nesterov else velocity

    def finish_step(self):
        pass
''',
    "Adagrad": '''
class Adagrad:
    """Keras's Adagrad: accumulator <- accumulator + g^2 (it starts at
    initial_accumulator_value); w <- w - lr g / sqrt(accumulator + epsilon)."""

    def __init__(self, learning_rate, initial_accumulator_value, epsilon):
        self.learning_rate, self.epsilon = learning_rate, epsilon
        self.initial_accumulator_value = initial_accumulator_value
        self.accumulator = {}

    def update(self, key, w, g):
        accumulator = self.accumulator.setdefault(
            key, np.full_like(w, self.initial_accumulator_value))
        accumulator += np.square(g)
        w += (-self.learning_rate * g) / np.sqrt(accumulator + self.epsilon)

    def finish_step(self):
        pass
''',
    "RMSprop": '''
class RMSprop:
    """Keras's RMSprop (uncentred): accumulator <- rho accumulator + (1 - rho) g^2;
    step = lr g / sqrt(accumulator + epsilon); with momentum, buffer <- momentum buffer + step
    and the buffer is the step; w <- w - step."""

    def __init__(self, learning_rate, rho, momentum, epsilon):
        self.learning_rate, self.rho = learning_rate, rho
        self.momentum, self.epsilon = momentum, epsilon
        self.accumulator, self.buffer = {}, {}

    def update(self, key, w, g):
        accumulator = self.accumulator.setdefault(key, np.zeros_like(w))
        accumulator[...] = self.rho * accumulator + (1.0 - self.rho) * np.square(g)
        step = (self.learning_rate * g) / np.sqrt(accumulator + self.epsilon)
        if self.momentum > 0.0:
            buffer = self.buffer.setdefault(key, np.zeros_like(w))
            buffer[...] = self.momentum * buffer + step
            step = buffer
        w += -step

    def finish_step(self):
        pass
''',
    "Adam": '''
class Adam:
    """Keras's Adam: m <- m + (g - m)(1 - beta_1); v <- v + (g^2 - v)(1 - beta_2);
    w <- w - alpha m / (sqrt(v) + epsilon) with the bias correction folded into the step
    alpha = lr sqrt(1 - beta_2^t) / (1 - beta_1^t) (t counts steps from 1)."""

    def __init__(self, learning_rate, beta_1, beta_2, epsilon):
        self.learning_rate, self.beta_1, self.beta_2 = learning_rate, beta_1, beta_2
        self.epsilon = epsilon
        self.iterations = 0
        self.m, self.v = {}, {}

    def update(self, key, w, g):
        t = self.iterations + 1
        alpha = self.learning_rate * math.sqrt(1.0 - self.beta_2**t) / (1.0 - self.beta_1**t)
        m = self.m.setdefault(key, np.zeros_like(w))
        v = self.v.setdefault(key, np.zeros_like(w))
        m += (g - m) * (1.0 - self.beta_1)
        v += (np.square(g) - v) * (1.0 - self.beta_2)
        w += (m * -alpha) / (np.sqrt(v) + self.epsilon)

    def finish_step(self):
        self.iterations += 1
''',
}
OPTIMIZER_ARGS: dict[str, tuple[str, ...]] = {
    "SGD": ("learning_rate", "momentum", "nesterov"),
    "Adagrad": ("learning_rate", "initial_accumulator_value", "epsilon"),
    "RMSprop": ("learning_rate", "rho", "momentum", "epsilon"),
    "Adam": ("learning_rate", "beta_1", "beta_2", "epsilon"),
}

REGULARIZER_CODE: dict[str, str] = {
    "l1": '''
def regularizer_gradient(w):
    """Gradient of the L1 penalty l1 sum|w| (Keras's form): l1 sign(w)."""
    return L1 * np.sign(w)
''',
    "l2": '''
def regularizer_gradient(w):
    """Gradient of the L2 penalty l2 sum w^2 (Keras's form, no 1/2): 2 l2 w."""
    return (2.0 * L2) * w
''',
    "l1_l2": '''
def regularizer_gradient(w):
    """Gradient of l1 sum|w| + l2 sum w^2 (Keras's form): l1 sign(w) + 2 l2 w."""
    return L1 * np.sign(w) + (2.0 * L2) * w
''',
}

LOSS_CODE: dict[str, str] = {
    "binary_crossentropy": '''
def loss_value(z, y):
    """Binary cross-entropy of sigmoid(z), from the logits z: mean(softplus(z) - z y)."""
    return float((np.logaddexp(0.0, z) - z * y).sum()) / z.size


def output_gradient(y_pred, y):
    """dL/dz of sigmoid + binary cross-entropy: (a - y) / n, exact and finite."""
    return (y_pred - y) / y_pred.size
''',
    "sparse_categorical_crossentropy": '''
def loss_value(z, y):
    """Categorical cross-entropy of softmax(z), from the logits z: mean(logsumexp(z) - z_y)."""
    shift = z.max(axis=-1, keepdims=True)
    log_sum_exp = shift + np.log(np.exp(z - shift).sum(axis=-1, keepdims=True))
    return float(np.sum(y * (log_sum_exp - z)) / z.shape[0])


def output_gradient(y_pred, y):
    """dL/dz of softmax + categorical cross-entropy (one-hot y): (a - y) / n."""
    return (y_pred - y) / y_pred.shape[0]
''',
    "mse": '''
def loss_value(y_pred, y):
    """Mean squared error: the mean over outputs and batch of (y_pred - y)^2."""
    return float(np.square(y_pred - y).sum()) / y_pred.size


def output_gradient(y_pred, y):
    """dL/dy_pred of the mean squared error: 2 (y_pred - y) / (n k)."""
    return (2.0 / y_pred.size) * (y_pred - y)
''',
}


def _section(title: str) -> str:
    """A section's comment line, dashes up to column 99."""
    head = f"# ---- {title} "
    return "\n\n\n" + head + "-" * (source.WIDTH - len(head)) + "\n\n"


def _header(recipe: Recipe, name: str) -> str:
    """The module docstring: what the script is, how to run it, and how exact it is."""
    lines = [
        f'"""{recipe.title}.',
        "",
        f"Exported from nn-playground ({_source(recipe)}).",
        source.paragraph(
            "Trains the network the playground trained, on the same points, from the same "
            "initial weights, in the same minibatch order, with the same float64 formulas "
            "(Keras 3's), then compares its weights with the playground's. Needs only "
            f"Python 3 and numpy: python {name}"
        ),
        "",
    ]
    if recipe.changes:
        lines.append(source.paragraph(
            "NOT EXACT: this script cannot land on the playground's weights, because:"))
        for reason in recipe.changes:
            lines.append(source.paragraph(f"- {reason}."))
    else:
        lines.append(source.paragraph(
            f"Exact: it lands on the playground's weights at epoch {recipe.epochs} to about "
            "1e-12 relative (the same operations in the same order; the playground's compiled "
            "fast path may round a last bit differently)."
        ))
        if recipe.randomness:
            lines.append("")
            lines.append(source.paragraph(
                "Its random draws (" + ", ".join(r.split(":")[0] for r in recipe.randomness)
                + ") come from the playground's own seeded generators in the playground's "
                "order, so they match too."
            ))
    if recipe.status == "diverged":
        lines += ["", source.paragraph(
            "The playground's run diverged (its loss or weights stopped being finite numbers): "
            "expect overflow warnings and inf or nan here too."
        )]
    lines.append('"""')
    return "\n".join(lines)


def _source(recipe: Recipe) -> str:
    if recipe.source == "run":
        return f"saved run {recipe.session_id}, epoch {recipe.epochs}"
    return f"session {recipe.session_id}, epoch {recipe.epochs}"


def _features_code(recipe: Recipe) -> str:
    formulas = recipe.feature_formulas
    columns = ", ".join(formulas.values())
    names = ", ".join(recipe.features)
    return f'''
def features(points):
    """The network's inputs from the raw points (x1, x2): {names}."""
    x1, x2 = points[:, 0], points[:, 1]
    return np.column_stack([{columns}])
'''


def _activation_constants(recipe: Recipe) -> list[str]:
    found: dict[str, float] = {}
    for layer in recipe.layers:
        constant = ACTIVATION_CONSTANTS.get(layer.activation)
        if constant is None:
            continue
        alpha = float(layer.activation_params["alpha"])
        if found.setdefault(constant, alpha) != alpha:
            raise ValueError(f"layers use different {layer.activation} alphas")
    return [f"{name} = {source.number(value)}" for name, value in found.items()]


def _activations_code(recipe: Recipe) -> str:
    names: list[str] = []
    for layer in recipe.layers:
        if layer.activation in ACTIVATION_CODE and layer.activation not in names:
            names.append(layer.activation)
        if (layer.batch_norm or layer.activation in ("prelu", "rrelu")) and "linear" not in names:
            names.append("linear")
    body = "".join(ACTIVATION_CODE[name] + "\n" for name in names)
    rows = "".join(f'    "{name}": ({name}, {name}_backward),\n' for name in names)
    return body + f"\nACTIVATIONS = {{\n{rows}}}\n"


def _layers_code(recipe: Recipe) -> str:
    note = ": Dense: kernel, bias"
    if any(la.activation == "prelu" for la in recipe.layers):
        note += ", PReLU's alpha"
    if any(la.batch_norm for la in recipe.layers):
        note += ";\n        BatchNormalization: gamma, beta, moving_mean, moving_variance"
    parts = [MODEL_CODE.replace("{prelu_note}", note), LAYER_BASE]
    dense = DENSE_HEAD
    if recipe.regularization is not None:
        dense += DENSE_REGULARIZED
    dense += DENSE_TAIL
    if recipe.max_norm is not None:
        dense += DENSE_MAX_NORM
    parts.append(dense)
    if any(la.activation == "prelu" for la in recipe.layers):
        parts.append(PRELU_CODE)
    if any(la.activation == "rrelu" for la in recipe.layers):
        parts.append(RRELU_CODE)
    if any(la.batch_norm for la in recipe.layers):
        parts.append(BATCH_NORM_CODE)
    if any(la.dropout > 0.0 for la in recipe.layers):
        parts.append(DROPOUT_CODE)
    return "\n".join(part.strip("\n") + "\n\n" for part in parts)


def _build_code(recipe: Recipe) -> str:
    """`build_model()`: the layers in order, then the initial weights loaded into them."""
    lines = [
        "def build_model():",
        '    """The playground\'s network, with its initial weights."""',
        "    layers = [",
    ]
    for layer in recipe.layers:
        keep_activation = layer.activation not in ("prelu", "rrelu") and not layer.batch_norm
        activation = layer.activation if keep_activation else "linear"
        args = [str(layer.n_in), str(layer.units), f'"{activation}"']
        if layer.regularized:
            args.append("regularized=True")
        if layer.max_norm is not None:
            args.append(f"max_norm={source.number(layer.max_norm)}")
        kind = "output" if layer.is_output else "hidden"
        units = "1 unit" if layer.units == 1 else f"{layer.units} units"
        lines.append(f"        # {layer.name}: {kind}, {units}, {layer.activation}")
        lines.append(f"        Dense({', '.join(args)}),")
        if layer.batch_norm:
            lines.append(
                f"        BatchNormalization({layer.units}, momentum="
                f"{source.number(layer.bn_momentum)}, epsilon={source.number(layer.bn_epsilon)}),"
            )
            if layer.activation not in ("prelu", "rrelu"):  # those two are layers below
                lines.append(f'        Activation("{layer.activation}"),')
        if layer.activation == "prelu":
            lines.append(f"        PReLU({layer.units}),")
        if layer.activation == "rrelu":
            params = layer.activation_params
            lines.append(
                f"        RReLU(lower={source.number(params['lower'])}, "
                f"upper={source.number(params['upper'])}),"
            )
        if layer.dropout > 0.0:
            lines.append(f"        Dropout({source.number(layer.dropout)}),")
    lines += [
        "    ]",
        "    model = Model(layers)",
        "    model.set_weights([w.copy() for w in INITIAL_WEIGHTS])",
        "    return model",
    ]
    return "\n".join(lines) + "\n"


def _optimizer_line(recipe: Recipe) -> str:
    cls = recipe.optimizer_class
    args = []
    for name in OPTIMIZER_ARGS[cls]:
        value = recipe.optimizer_params[name]
        text = str(bool(value)) if isinstance(value, bool) else source.number(float(value))
        args.append(f"{name}={text}")
    return f"optimizer = {cls}({', '.join(args)})"


def _training_code(recipe: Recipe) -> str:
    uses_noise = any(la.dropout > 0.0 or la.activation == "rrelu" for la in recipe.layers)
    if recipe.fused:
        step = (
            "    # The output's activation and the loss are differentiated together (as Keras\n"
            "    # does): dL/dz = (a - y) / n, exact and finite even for a saturated output.\n"
            "    grad = model.layers[-1].backward_logits(output_gradient(y_pred, y))\n"
        )
    else:
        step = "    grad = model.layers[-1].backward(output_gradient(y_pred, y))\n"
    noise = (
        "# Dropout masks and RReLU slopes: the playground's noise generator, same order.\n"
        "noise_rng = np.random.default_rng(np.random.SeedSequence(SEED, spawn_key="
        f"{tuple(recipe.noise_spawn_key)!r}))\n"
        if uses_noise else ""
    )
    best, epoch_data, evaluate_line, early = source.epoch_code(recipe, "features(points)")
    output = (
        "model.predict(X_ALL)\n    output = model.layers[-1].z  # the logits"
        if recipe.fused else "output = model.predict(X_ALL)"
    )
    return f'''
{_optimizer_line(recipe)}


def train_step(model, x, y):
    """One minibatch: forward (training mode), backward, update, constraints."""
    y_pred = model.forward(x, training=True)
{step}    for layer in reversed(model.layers[:-1]):
        grad = layer.backward(grad)
    for i, layer in enumerate(model.layers):
        for key, w in layer.params.items():
            optimizer.update((i, key), w, layer.grads[key])
    optimizer.finish_step()
    for layer in model.layers:
        layer.apply_constraint()


def evaluate(model):
    """Train and test loss (data loss only, as the playground plots it), in inference mode,
    from one pass over all the points as the playground makes it."""
    {output}
    n = len(X_TRAIN)
    return loss_value(output[:n], Y_TRAIN), loss_value(output[n:], Y_TEST)


# The playground draws each epoch's order of the training points from one generator.
order_rng = np.random.default_rng(np.random.SeedSequence(SEED, spawn_key={
    tuple(recipe.order_spawn_key)!r}))
{noise}

def train(model):
    """EPOCHS epochs of minibatches of BATCH_SIZE points, in the playground's order."""
    check_batch_order()
{best}    for epoch in range(EPOCHS):
{epoch_data}        order = order_rng.permutation(len(x_train))
        for start in range(0, len(order), BATCH_SIZE):
            batch = order[start:start + BATCH_SIZE]
            train_step(model, x_train[batch], y_train[batch])
{evaluate_line}{early}    return model


def check_batch_order():
    """The same seed gives numpy's same draws in practice (numpy does not promise it across
    versions): say so if this numpy's differ from the playground's."""
    rng = np.random.default_rng(np.random.SeedSequence(SEED, spawn_key={
        tuple(recipe.order_spawn_key)!r}))
    if rng.permutation(len(X_TRAIN))[:{len(recipe.order_check)}].tolist() != {
        list(recipe.order_check)!r}:
        print("warning: this numpy draws other batch orders than the playground's numpy did")
'''


def _targets_code(recipe: Recipe) -> str:
    if recipe.problem == "multiclass":
        return '''
def targets(labels):
    """The loss's targets: one-hot rows of the class labels."""
    return np.eye(N_CLASSES)[labels.astype(int)]
'''
    return '''
def targets(labels):
    """The loss's targets: the labels as a column (n, 1)."""
    return labels.reshape(-1, 1)
'''


AUGMENT_BUILT_IN = '''
def augment(points, labels):
    """Fresh augmented copies of the training points, drawn as the playground drew them: per
    point a random element of the dataset's symmetry group, moving p to M (p - c) + c{turn}
    then Gaussian jitter; the labels move with their points."""
    n = len(points)
    chosen = augment_rng.integers(0, len(AUGMENT_MATRICES), n)
    m = AUGMENT_MATRICES[chosen]
    cx, cy = AUGMENT_CENTRE
    x = m[:, 0, 0] * (points[:, 0] - cx) + m[:, 0, 1] * (points[:, 1] - cy)
    y = m[:, 1, 0] * (points[:, 0] - cx) + m[:, 1, 1] * (points[:, 1] - cy)
{rotation}
    moved = np.column_stack([x + cx, y + cy]) + augment_rng.standard_normal((n, 2)) * JITTER
    return moved, {labels}
'''
AUGMENT_ROTATION = '''
    angle = augment_rng.uniform(0.0, 2 * np.pi, n)  # any turn about c (the circle)
    cos, sin = np.cos(angle), np.sin(angle)
    x, y = cos * x - sin * y, sin * x + cos * y
'''
AUGMENT_USER = '''
def augment(points, labels):
    """Fresh jittered copies of the training points (your own data has no known symmetry),
    drawn as the playground drew them."""
    return points + augment_rng.standard_normal((len(points), 2)) * JITTER, labels
'''


def augment_code(recipe: Recipe) -> str:
    """The augmentation's constants, generator and function, or "" without augmentation."""
    spec = recipe.augmentation
    if spec is None:
        return ""
    lines = [
        "",
        "# Augmentation: each epoch trains on fresh random copies of the training points, drawn",
        "# from the playground's own augmentation generator.",
        f"augment_rng = np.random.default_rng({list(spec.seed_entropy)!r})",
        f"JITTER = {source.number(spec.jitter)}",
    ]
    if spec.matrices is None:
        return "\n".join(lines) + "\n" + AUGMENT_USER
    lines.append("# The dataset's symmetries: one 2 x 2 matrix each, acting about the centre.")
    lines.append(f"AUGMENT_MATRICES = np.array({source.nested(spec.matrices, '')})")
    lines.append(f"AUGMENT_CENTRE = ({source.number(spec.centre[0])}, "
                 f"{source.number(spec.centre[1])})")
    if spec.classes is not None:
        rows = ["[" + ", ".join(str(int(c)) for c in row) + "]" for row in spec.classes]
        lines.append("# AUGMENT_CLASSES[e, c]: the class symmetry e sends class c to.")
        lines.append("AUGMENT_CLASSES = np.array([\n" + "\n".join(source.wrap_items(
            rows, "    ")) + "\n])")
        labels = "AUGMENT_CLASSES[chosen, labels.astype(int)].astype(np.float64)"
    else:
        assert spec.signs is not None
        lines.append("# AUGMENT_SIGNS[e]: how symmetry e changes the target's sign.")
        lines.append(f"AUGMENT_SIGNS = np.array({source.nested(spec.signs, '')})")
        labels = "labels * AUGMENT_SIGNS[chosen]"
    code = AUGMENT_BUILT_IN.replace(
        "{turn}", ",\n    turned at random about c," if spec.any_rotation else ","
    ).replace("{rotation}\n", AUGMENT_ROTATION.lstrip("\n") if spec.any_rotation else "").replace(
        "{labels}", labels)
    return "\n".join(lines) + "\n" + code


def _settings_code(recipe: Recipe) -> str:
    lines = [
        f"EPOCHS = {recipe.epochs}",
        f"BATCH_SIZE = {recipe.batch_size}",
        f"SEED = {recipe.order_seed}  # the playground's seed: batch orders (and noise) from it",
    ]
    if recipe.problem == "multiclass":
        lines.append(f"N_CLASSES = {recipe.n_outputs}")
    if recipe.early_stopping_patience is not None:
        lines.append(f"PATIENCE = {recipe.early_stopping_patience}  # early stopping")
    if recipe.regularization is not None:
        rates = recipe.regularization
        name = recipe.regularization_name
        if name in ("l1", "l1_l2"):
            lines.append(f"L1 = {source.number(rates['l1'])}  # L1 rate, on every Dense kernel")
        if name in ("l2", "l1_l2"):
            lines.append(f"L2 = {source.number(rates['l2'])}  # L2 rate, on every Dense kernel")
    lines += _activation_constants(recipe)
    return "\n".join(lines) + "\n"


def _report_code(recipe: Recipe) -> str:
    train = "none" if recipe.reported_train_loss is None else source.number(
        recipe.reported_train_loss)
    test = "none" if recipe.reported_test_loss is None else source.number(
        recipe.reported_test_loss)
    return f'''
model = train(build_model())
train_loss, test_loss = evaluate(model)
print(f"final train loss {{train_loss:.10f}} (the playground showed {train})")
print(f"final test loss {{test_loss:.10f}} (the playground showed {test})")
difference = max(
    float(np.max(np.abs(mine - theirs), initial=0.0))
    for mine, theirs in zip(model.get_weights(), PLAYGROUND_WEIGHTS, strict=True)
)
print(f"largest difference from the playground's weights: {{difference:.3g}}")
'''


def render(recipe: Recipe) -> str:
    """The numpy script of `recipe`."""
    if recipe.regularization is not None and recipe.regularization_name not in REGULARIZER_CODE:
        raise ValueError(f"regularization {recipe.regularization_name!r} has no numpy code")
    name = source.file_name(recipe, "numpy")
    uses_adam = recipe.optimizer_class == "Adam"
    sections = [
        _header(recipe, name),
        "\n\n" + ("import math\n\n" if uses_adam else "") + "import numpy as np\n",
        "\n" + _settings_code(recipe),
        _section("inputs"),
        _features_code(recipe),
        _targets_code(recipe),
        augment_code(recipe),
        _section("activations, each with its backward (dL/dz from dL/da)"),
        _activations_code(recipe),
        _section("loss"),
        LOSS_CODE[recipe.loss],
        _section("layers and model"),
        _layers_code(recipe),
        _build_code(recipe),
        _section("optimizer and regularizer" if recipe.regularization else "optimizer"),
        OPTIMIZER_CODE[recipe.optimizer_class],
        REGULARIZER_CODE[recipe.regularization_name] if recipe.regularization else "",
        _section("training"),
        _training_code(recipe),
        _section("data and weights"),
        source.comment_block(f"The data: {recipe.dataset_note}. Each row: x1, x2, label.") + "\n",
        f"TRAIN_POINTS = {source.points_literal(recipe.x_train, recipe.y_train)}\n",
        f"TEST_POINTS = {source.points_literal(recipe.x_test, recipe.y_test)}\n",
        "X_TRAIN, X_TEST = features(TRAIN_POINTS), features(TEST_POINTS)\n",
        "X_ALL = np.concatenate([X_TRAIN, X_TEST])\n",
        "Y_TRAIN, Y_TEST = targets(TRAIN_POINTS[:, 2]), targets(TEST_POINTS[:, 2])\n",
        "\n\n# The playground's initial weights, in Keras order.\n",
        source.weights_literal("INITIAL_WEIGHTS", recipe.initial_weights, recipe.weight_names),
        f"\n\n# The playground's weights at epoch {recipe.epochs}: where the script should land.\n",
        source.weights_literal("PLAYGROUND_WEIGHTS", recipe.final_weights, recipe.weight_names),
        "\n",
        _report_code(recipe),
    ]
    return _tidy("".join(sections))


def _tidy(text: str) -> str:
    """At most two blank lines in a row, one newline at the end."""
    while "\n\n\n\n" in text:
        text = text.replace("\n\n\n\n", "\n\n\n")
    return text.strip("\n") + "\n"
