"""The PyTorch export: one self-contained torch script that retrains a session (issue 11).

The script builds the session's network as a `torch.nn.Sequential` in float64 (layers named
after the playground's: "dense.weight", ...; kernels as torch stores them, (out, in)), loads
its exact initial weights and trains it over the playground's own minibatch order. Where
torch's formulas differ from the playground's (Keras 3's), the script writes them out, each
with a comment saying why:

- Adam, AdaGrad, RMSprop: torch adds epsilon outside the square root (and Adam to the
  bias-corrected sqrt(v_hat)), AdaGrad's accumulator starts at 0, RMSprop's momentum scales
  the buffer by lr at the step: each is a short `torch.optim.Optimizer` of Keras's formula.
  SGD (momentum, Nesterov) is torch's own: with a constant learning rate its velocity is
  Keras's divided by -lr, the same steps.
- Batch normalization: torch.nn.BatchNorm1d updates its running variance with the unbiased
  batch variance; the script's BatchNorm uses the biased one, as Keras.
- L1/L2: penalties added to the loss (torch's weight_decay is L2 only, at rate / 2).
- Max-norm (torch has no constraints), RReLU per unit (torch's draws per element) and
  Dropout with the playground's masks are written out; the losses of sigmoid/softmax outputs
  are taken from the logits.

The script lands on the session's weights to ~1e-15 relative on small nets (bound promised:
1e-6), training randomness included: augmentation, dropout masks and RReLU slopes are numpy
draws from the playground's own generators, in its order, and the script draws them the same
way. Only mid-run changes make a script say at the top that it is not exact, and why.
"""

from __future__ import annotations

from app.codegen import source
from app.codegen.keras_script import (
    NOISE_CODE,
    activation_constants,
    blocks,
    data_code,
    features_code,
    header,
    loop_code,
    report_code,
    section,
    settings_code,
    targets_code,
    tidy,
)
from app.codegen.numpy_script import augment_code
from app.codegen.recipe import LayerRecipe, Recipe

MODULES: dict[str, str] = {
    "sigmoid": "nn.Sigmoid()",
    "tanh": "nn.Tanh()",
    "relu": "nn.ReLU()",
    "leaky_relu": "nn.LeakyReLU(LEAKY_RELU_ALPHA)",
    "elu": "nn.ELU(ELU_ALPHA)",
    "softmax": "nn.Softmax(dim=1)",
}

BATCH_NORM_CODE = '''
class BatchNorm(nn.Module):
    """Batch normalization as Keras's and the playground's: in training, normalize with the
    batch mean and the biased batch variance, and update the moving averages as
    moving = momentum moving + (1 - momentum) batch; otherwise use the moving averages.
    (torch.nn.BatchNorm1d updates its running variance with the unbiased batch variance,
    n / (n - 1) times larger, and its momentum is the new batch's weight: 0.01 for 0.99.)"""

    def __init__(self, units, momentum, epsilon):
        super().__init__()
        self.momentum, self.epsilon = momentum, epsilon
        self.weight = nn.Parameter(torch.ones(units))  # gamma
        self.bias = nn.Parameter(torch.zeros(units))  # beta
        self.register_buffer("running_mean", torch.zeros(units))
        self.register_buffer("running_var", torch.ones(units))

    def forward(self, x):
        if self.training:
            mean, var = x.mean(dim=0), x.var(dim=0, correction=0)
            with torch.no_grad():
                keep = self.momentum
                self.running_mean.copy_(keep * self.running_mean + (1 - keep) * mean)
                self.running_var.copy_(keep * self.running_var + (1 - keep) * var)
        else:
            mean, var = self.running_mean, self.running_var
        inv_std = 1.0 / torch.sqrt(var + self.epsilon)
        return self.weight * ((x - mean) * inv_std) + self.bias
'''

RRELU_CODE = '''
class RReLU(nn.Module):
    """Randomized leaky ReLU as the playground's: z >= 0 ? z : slope z, with one slope per
    unit drawn from U[lower, upper] for every training batch, and (lower + upper) / 2
    otherwise; the slopes come from the playground's own noise generator. (torch.nn.RReLU
    draws one slope per element, from torch's generator.)"""

    def __init__(self, lower, upper):
        super().__init__()
        self.lower, self.upper = lower, upper

    def forward(self, z):
        if self.training:
            slope = torch.from_numpy(noise_rng.uniform(self.lower, self.upper, z.shape[1]))
        else:
            slope = torch.full((z.shape[1],), (self.lower + self.upper) / 2.0)
        return torch.where(z >= 0.0, z, slope * z)
'''

DROPOUT_CODE = '''
class Dropout(nn.Module):
    """torch.nn.Dropout's inverted dropout (in training keep each value with p = 1 - rate and
    scale it by 1 / p), with the masks drawn from the playground's own noise generator: the
    playground's masks. (nn.Dropout(rate) draws torch's own.)"""

    def __init__(self, rate):
        super().__init__()
        self.rate = rate

    def forward(self, x):
        if not self.training:
            return x
        keep = noise_rng.random(tuple(x.shape)) >= self.rate
        return x * torch.from_numpy(keep / (1.0 - self.rate))
'''


OPTIMIZER_CODE: dict[str, str] = {
    "SGD": "",
    "Adam": '''
class Adam(torch.optim.Optimizer):
    """Adam as Keras 3 and the playground compute it: the bias correction folded into the step
    size, epsilon added to sqrt(v) itself:
        alpha = lr sqrt(1 - beta_2^t) / (1 - beta_1^t);  w <- w - alpha m / (sqrt(v) + eps).
    (torch.optim.Adam adds epsilon to sqrt(v / (1 - beta_2^t)): in its terms Keras's epsilon
    is 1 / sqrt(1 - beta_2^t) times larger, ~32x at the first step for beta_2 = 0.999.)"""

    def __init__(self, params, learning_rate, beta_1, beta_2, epsilon):
        defaults = {"lr": learning_rate, "beta_1": beta_1, "beta_2": beta_2, "epsilon": epsilon}
        super().__init__(params, defaults)
        self.iterations = 0

    @torch.no_grad()
    def step(self):
        self.iterations += 1
        t = self.iterations
        for group in self.param_groups:
            beta_1, beta_2 = group["beta_1"], group["beta_2"]
            alpha = group["lr"] * math.sqrt(1.0 - beta_2**t) / (1.0 - beta_1**t)
            for w in group["params"]:
                state = self.state[w]
                if not state:
                    state["m"], state["v"] = torch.zeros_like(w), torch.zeros_like(w)
                m, v, g = state["m"], state["v"], w.grad
                m += (g - m) * (1.0 - beta_1)
                v += (g * g - v) * (1.0 - beta_2)
                w += (m * -alpha) / (torch.sqrt(v) + group["epsilon"])
''',
    "Adagrad": '''
class Adagrad(torch.optim.Optimizer):
    """AdaGrad as Keras 3 and the playground compute it: the accumulator starts at
    initial_accumulator_value and epsilon is inside the square root:
        acc <- acc + g^2;  w <- w - lr g / sqrt(acc + eps).
    (torch.optim.Adagrad divides by sqrt(acc) + eps, its accumulator starting at 0.)"""

    def __init__(self, params, learning_rate, initial_accumulator_value, epsilon):
        defaults = {"lr": learning_rate, "initial": initial_accumulator_value, "epsilon": epsilon}
        super().__init__(params, defaults)

    @torch.no_grad()
    def step(self):
        for group in self.param_groups:
            for w in group["params"]:
                state = self.state[w]
                if not state:
                    state["accumulator"] = torch.full_like(w, group["initial"])
                accumulator, g = state["accumulator"], w.grad
                accumulator += g * g
                w += (-group["lr"] * g) / torch.sqrt(accumulator + group["epsilon"])
''',
    "RMSprop": '''
class RMSprop(torch.optim.Optimizer):
    """RMSprop as Keras 3 and the playground compute it (uncentred), epsilon inside the root:
        acc <- rho acc + (1 - rho) g^2;  step = lr g / sqrt(acc + eps);
        momentum > 0: buffer <- momentum buffer + step, w <- w - buffer; else w <- w - step.
    (torch.optim.RMSprop divides by sqrt(acc) + eps, and keeps its momentum buffer without
    the learning rate.)"""

    def __init__(self, params, learning_rate, rho, momentum, epsilon):
        defaults = {"lr": learning_rate, "rho": rho, "momentum": momentum, "epsilon": epsilon}
        super().__init__(params, defaults)

    @torch.no_grad()
    def step(self):
        for group in self.param_groups:
            rho, momentum = group["rho"], group["momentum"]
            for w in group["params"]:
                state = self.state[w]
                if not state:
                    state["accumulator"] = torch.zeros_like(w)
                    state["buffer"] = torch.zeros_like(w)
                accumulator, g = state["accumulator"], w.grad
                accumulator.copy_(rho * accumulator + (1.0 - rho) * (g * g))
                increment = (group["lr"] * g) / torch.sqrt(accumulator + group["epsilon"])
                if momentum > 0.0:
                    buffer = state["buffer"]
                    buffer.copy_(momentum * buffer + increment)
                    increment = buffer
                w -= increment
''',
}
OPTIMIZER_ARGS: dict[str, tuple[str, ...]] = {
    "Adagrad": ("learning_rate", "initial_accumulator_value", "epsilon"),
    "RMSprop": ("learning_rate", "rho", "momentum", "epsilon"),
    "Adam": ("learning_rate", "beta_1", "beta_2", "epsilon"),
}

LOSS_CODE: dict[str, str] = {
    "binary_crossentropy": '''
# Binary cross-entropy from the output's logits, as the playground computes it: its gradient is
# exactly (sigmoid(z) - y) / n, finite even where the sigmoid saturates.
loss_fn = nn.BCEWithLogitsLoss()
''',
    "sparse_categorical_crossentropy": '''
# Cross-entropy of integer class labels from the output's logits, as the playground computes
# it: its gradient is exactly (softmax(z) - y) / n.
loss_fn = nn.CrossEntropyLoss()
''',
    "mse": '''
# Mean squared error: the mean over outputs and batch of (y_pred - y)^2.
loss_fn = nn.MSELoss()
''',
}


def activation_module(layer: LayerRecipe) -> str | None:
    """The torch module of a layer's activation (None for linear)."""
    if layer.activation == "linear":
        return None
    if layer.activation == "prelu":
        return f"nn.PReLU({layer.units})"
    if layer.activation == "rrelu":
        params = layer.activation_params
        return (f"RReLU(lower={source.number(params['lower'])}, "
                f"upper={source.number(params['upper'])})")
    return MODULES[layer.activation]


def module_lines(recipe: Recipe) -> list[str]:
    """The Sequential's named modules, one block per Dense, with a comment each."""
    lines = []
    n_in = len(recipe.features)
    for layer in recipe.layers:
        kind = "output" if layer.is_output else "hidden"
        units = "1 unit" if layer.units == 1 else f"{layer.units} units"
        lines.append(f"        # {layer.name}: {kind}, {units}, {layer.activation}")
        lines.append(f'        ("{layer.name}", nn.Linear({n_in}, {layer.units})),')
        n_in = layer.units
        if layer.batch_norm:
            norm = (f"BatchNorm({layer.units}, momentum={source.number(layer.bn_momentum)}, "
                    f"epsilon={source.number(layer.bn_epsilon)})")
            lines.append(f'        ("{layer.name}_batch_norm", {norm}),')
        module = activation_module(layer)
        if module is not None:
            note = ""
            if layer.is_output and recipe.fused:
                note = "  # the loss takes its input, the logits"
            lines.append(f'        ("{layer.name}_{layer.activation}", {module}),{note}')
        if layer.dropout > 0.0:
            rate = source.number(layer.dropout)
            lines.append(f'        ("{layer.name}_dropout", Dropout({rate})),')
    return lines


def build_code(recipe: Recipe) -> str:
    """`build_model()` and `initial_state(model)`."""
    lines = [
        "def build_model():",
        '    """The playground\'s network as a torch.nn.Sequential, with its initial weights."""',
        "    model = nn.Sequential(OrderedDict([",
        *module_lines(recipe),
        "    ]))",
        "    model.load_state_dict(initial_state(model))",
        "    return model",
    ]
    return "\n".join(lines) + '''


def initial_state(model):
    """The playground's initial weights (Keras order) as this model's state_dict: the same
    order, each kernel transposed from Keras's (in, out) to torch's (out, in)."""
    names = list(model.state_dict())
    return {
        name: torch.tensor(w.T if w.ndim == 2 else w)
        for name, w in zip(names, INITIAL_WEIGHTS, strict=True)
    }


def keras_order_weights(model):
    """The weights as numpy arrays in Keras order (kernels back to (in, out))."""
    return [w.numpy().T if w.ndim == 2 else w.numpy() for w in model.state_dict().values()]
'''


def penalty_code(recipe: Recipe) -> str:
    """`penalty(model)`: the regularization term added to the loss, or nothing."""
    if recipe.regularization is None:
        return ""
    names = [layer.name for layer in recipe.layers if layer.regularized]
    terms = {
        "l1": "L1 * w.abs().sum()",
        "l2": "L2 * w.square().sum()",
        "l1_l2": "L1 * w.abs().sum() + L2 * w.square().sum()",
    }[recipe.regularization_name]
    formula = terms.replace("w.abs().sum()", "sum|w|").replace("w.square().sum()", "sum w^2")
    doc = source.paragraph(
        f"The penalty {formula} of every Dense kernel (never a bias), in Keras's form (no "
        "1/2), added to the loss as the playground does. (torch's weight_decay would add an "
        "L2 gradient only, with weight_decay = 2 L2.)", source.WIDTH - 8,
    ).replace("\n", "\n    ")
    return f'''
REGULARIZED = {names_literal(names)}


def penalty(model):
    """{doc}"""
    total = 0.0
    for name in REGULARIZED:
        w = model.get_submodule(name).weight
        total = total + {terms}
    return total
'''


def names_literal(names: list[str]) -> str:
    """A tuple of layer names as source, with double quotes."""
    inner = ", ".join(f'"{name}"' for name in names)
    return f"({inner},)" if len(names) == 1 else f"({inner})"


def max_norm_code(recipe: Recipe) -> str:
    """`apply_max_norm(model)`, or nothing."""
    if recipe.max_norm is None:
        return ""
    names = [layer.name for layer in recipe.layers if layer.max_norm is not None]
    return f'''
CLIPPED = {names_literal(names)}  # the hidden layers; the output layer is never clipped


@torch.no_grad()
def apply_max_norm(model):
    """Max-norm (torch has no weight constraints): each unit's incoming weights (a row of
    torch's (out, in) kernel) whose norm is above MAX_NORM are scaled to norm MAX_NORM; the
    other rows are left exactly as they are."""
    for name in CLIPPED:
        w = model.get_submodule(name).weight
        norms = torch.sqrt(w.square().sum(dim=1, keepdim=True))
        w *= torch.where(norms > MAX_NORM, MAX_NORM / torch.clamp(norms, min=MAX_NORM), 1.0)
'''


def optimizer_code(recipe: Recipe) -> str:
    """The optimizer class when torch's differs, and `make_optimizer(model)`."""
    cls = recipe.optimizer_class
    params = recipe.optimizer_params
    if cls == "SGD":
        args = [f"lr={source.number(float(params['learning_rate']))}"]
        momentum = float(params.get("momentum", 0.0))
        note = "    # Plain SGD, w <- w - lr g: torch's SGD is the playground's."
        if momentum > 0.0:
            args.append(f"momentum={source.number(momentum)}")
            if params.get("nesterov"):
                args.append("nesterov=True")
            note = source.comment_block(
                "torch keeps b <- momentum b + g and steps w <- w - lr b (Nesterov: w <- w - "
                "lr (g + momentum b)); the playground, as Keras, keeps v <- momentum v - lr g "
                "and steps w <- w + v (Nesterov: w <- w + momentum v - lr g). With a constant "
                "learning rate v = -lr b: the same steps, so torch's SGD is used as it is.",
                "    ",
            )
        body = (f"{note}\n    return torch.optim.SGD(model.parameters(), "
                f"{', '.join(args)})")
        return f'''
def make_optimizer(model):
    """SGD with the playground's hyperparameters."""
{body}
'''
    args = []
    for name in OPTIMIZER_ARGS[cls]:
        args.append(f"{name}={source.number(float(params[name]))}")
    call = f"    return {cls}(model.parameters(), {', '.join(args)})"
    if len(call) > source.WIDTH:
        call = (f"    return {cls}(\n        model.parameters(),\n"
                + "\n".join(source.wrap_items(args, "        ")) + "\n    )")
    return OPTIMIZER_CODE[cls] + f'''

def make_optimizer(model):
    """{cls} with the playground's hyperparameters (torch.optim.{cls}'s formula differs)."""
{call}
'''


def training_code(recipe: Recipe) -> str:
    """logits/outputs, train_step, evaluate and the loop."""
    if recipe.fused:
        forward = '''
def logits(model, x):
    """The output layer's z: every module but the output's activation."""
    return model[:-1](x)
'''
        predict = "logits"
    else:
        forward = '''
def outputs(model, x):
    """The network's outputs (the loss takes them as they are)."""
    return model(x)
'''
        predict = "outputs"
    penalty = " + penalty(model)" if recipe.regularization is not None else ""
    clip = "    apply_max_norm(model)\n" if recipe.max_norm is not None else ""
    then = ", max-norm" if recipe.max_norm is not None else ""
    return f'''{forward}

def train_step(model, optimizer, x, y):
    """One minibatch: forward (training mode), loss, backward, update{then}."""
    model.train()
    loss = loss_fn({predict}(model, x), y){penalty}
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
{clip}

@torch.no_grad()
def evaluate(model):
    """Train and test loss (data loss only, as the playground plots it), in inference mode."""
    model.eval()
    train_loss = loss_fn({predict}(model, X_TRAIN), Y_TRAIN)
    test_loss = loss_fn({predict}(model, X_TEST), Y_TEST)
    return float(train_loss), float(test_loss)
''' + loop_code(
        recipe,
        "    optimizer = make_optimizer(model)\n",
        "torch.from_numpy(order[start:start + BATCH_SIZE])",
        "train_step(model, optimizer, x_train[batch], y_train[batch])",
        "torch.tensor(features(points))",
    )


def tensors_code(recipe: Recipe) -> str:
    """The points, and the inputs and targets as tensors."""
    data = data_code(recipe)
    return data[:data.index("X_TRAIN, X_TEST")] + (
        "X_TRAIN = torch.tensor(features(TRAIN_POINTS))\n"
        "X_TEST = torch.tensor(features(TEST_POINTS))\n"
        "Y_TRAIN, Y_TEST = targets(TRAIN_POINTS[:, 2]), targets(TEST_POINTS[:, 2])\n"
    )


def render(recipe: Recipe) -> str:
    """The PyTorch script of `recipe`."""
    if recipe.loss not in LOSS_CODE:
        raise ValueError(
            f"loss {recipe.loss!r} has no PyTorch code; expected one of: {', '.join(LOSS_CODE)}"
        )
    activation_constants(recipe)  # refuses layers with different alphas
    name = source.file_name(recipe, "pytorch")
    uses = {layer.activation for layer in recipe.layers}
    random_layers = "rrelu" in uses or any(la.dropout > 0.0 for la in recipe.layers)
    imports = "\n\n"
    if recipe.optimizer_class == "Adam":
        imports += "import math\n"
    imports += (
        "from collections import OrderedDict\n\n"
        "import numpy as np\n"
        "import torch\n"
        "from torch import nn\n\n"
        "torch.set_default_dtype(torch.float64)  # the playground computes in float64\n"
        "torch.set_num_threads(1)  # tensors this small: more threads cost more than they save\n"
    )
    seeding = (
        NOISE_CODE.replace("{spawn}", repr(tuple(recipe.noise_spawn_key)))
        if random_layers else ""
    )
    sections = [
        header(recipe, "PyTorch", "PyTorch (pip install torch numpy)", name),
        imports,
        "\n" + settings_code(recipe),
        seeding,
        section("inputs"),
        "\n" + blocks(
            features_code(recipe),
            targets_code(recipe, torch_tensors=True),
            augment_code(recipe),
        ),
        section("network"),
        "\n" + blocks(
            BATCH_NORM_CODE if any(la.batch_norm for la in recipe.layers) else "",
            RRELU_CODE if "rrelu" in uses else "",
            DROPOUT_CODE if any(la.dropout > 0.0 for la in recipe.layers) else "",
            build_code(recipe),
        ),
        section("loss, penalties and optimizer"),
        blocks(
            LOSS_CODE[recipe.loss],
            penalty_code(recipe),
            max_norm_code(recipe),
            optimizer_code(recipe),
        ),
        section("training"),
        training_code(recipe),
        section("data and weights"),
        tensors_code(recipe),
        "\n\n# The playground's initial weights, in Keras order (kernels (in, out)).\n",
        source.weights_literal("INITIAL_WEIGHTS", recipe.initial_weights, recipe.weight_names),
        f"\n\n# The playground's weights at epoch {recipe.epochs}: where the script should land.\n",
        source.weights_literal("PLAYGROUND_WEIGHTS", recipe.final_weights, recipe.weight_names),
        "\n\n\nmodel = train(build_model())\n",
        report_code(recipe, "keras_order_weights(model)"),
    ]
    return tidy("".join(sections))
