"""xor, 2-4-2-1 network, adam, 50 epochs.

Exported from nn-playground (session example, epoch 50) as a PyTorch script.
Trains the network the playground trained, on the same points, from the same initial weights, in
the same minibatch order, with the same float64 formulas (Keras 3's), then compares its weights
with the playground's. Needs PyTorch (pip install torch numpy): python xor_2-4-2-1_pytorch.py

Exact: it lands on the playground's weights at epoch 50 to within 1e-6 relative (the same formulas
in float64: only the rounding of sums and library functions differs, ~1e-15 per step).
"""

import math
from collections import OrderedDict

import numpy as np
import torch
from torch import nn

torch.set_default_dtype(torch.float64)  # the playground computes in float64
torch.set_num_threads(1)  # tensors this small: more threads cost more than they save

EPOCHS = 50
BATCH_SIZE = 10
SEED = 0  # the playground's seed: its batch orders come from it
L2 = 0.001  # L2 rate, on every Dense kernel


# ---- inputs -------------------------------------------------------------------------------------


def features(points):
    """The network's inputs from the raw points (x1, x2): x1, x2."""
    x1, x2 = points[:, 0], points[:, 1]
    return np.column_stack([x1, x2])


def targets(labels):
    """The loss's targets: the labels as a column (n, 1)."""
    return torch.tensor(labels.reshape(-1, 1))


# ---- network ------------------------------------------------------------------------------------


def build_model():
    """The playground's network as a torch.nn.Sequential, with its initial weights."""
    model = nn.Sequential(OrderedDict([
        # dense: hidden, 4 units, tanh
        ("dense", nn.Linear(2, 4)),
        ("dense_tanh", nn.Tanh()),
        # dense_1: hidden, 2 units, tanh
        ("dense_1", nn.Linear(4, 2)),
        ("dense_1_tanh", nn.Tanh()),
        # dense_2: output, 1 unit, sigmoid
        ("dense_2", nn.Linear(2, 1)),
        ("dense_2_sigmoid", nn.Sigmoid()),  # the loss takes its input, the logits
    ]))
    model.load_state_dict(initial_state(model))
    return model


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


# ---- loss, penalties and optimizer --------------------------------------------------------------

# Binary cross-entropy from the output's logits, as the playground computes it: its gradient is
# exactly (sigmoid(z) - y) / n, finite even where the sigmoid saturates.
loss_fn = nn.BCEWithLogitsLoss()


REGULARIZED = ("dense", "dense_1", "dense_2")


def penalty(model):
    """The penalty L2 * sum w^2 of every Dense kernel (never a bias), in Keras's form (no 1/2),
    added to the loss as the playground does. (torch's weight_decay would add an L2 gradient
    only, with weight_decay = 2 L2.)"""
    total = 0.0
    for name in REGULARIZED:
        w = model.get_submodule(name).weight
        total = total + L2 * w.square().sum()
    return total


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


def make_optimizer(model):
    """Adam with the playground's hyperparameters (torch.optim.Adam's formula differs)."""
    return Adam(model.parameters(), learning_rate=0.01, beta_1=0.9, beta_2=0.999, epsilon=1e-07)


# ---- training -----------------------------------------------------------------------------------


def logits(model, x):
    """The output layer's z: every module but the output's activation."""
    return model[:-1](x)


def train_step(model, optimizer, x, y):
    """One minibatch: forward (training mode), loss, backward, update."""
    model.train()
    loss = loss_fn(logits(model, x), y) + penalty(model)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()


@torch.no_grad()
def evaluate(model):
    """Train and test loss (data loss only, as the playground plots it), in inference mode."""
    model.eval()
    train_loss = loss_fn(logits(model, X_TRAIN), Y_TRAIN)
    test_loss = loss_fn(logits(model, X_TEST), Y_TEST)
    return float(train_loss), float(test_loss)


def check_batch_order():
    """The same seed gives numpy's same draws in practice (numpy does not promise it across
    versions): say so if this numpy's differ from the playground's."""
    rng = np.random.default_rng(np.random.SeedSequence(SEED, spawn_key=(1,)))
    if rng.permutation(len(X_TRAIN))[:8].tolist() != [33, 44, 11, 41, 7, 21, 14, 19]:
        print("warning: this numpy draws other batch orders than the playground's numpy did")


def train(model):
    """EPOCHS epochs of minibatches of BATCH_SIZE points, in the playground's order."""
    check_batch_order()
    # The playground draws each epoch's order of the training points from one generator.
    order_rng = np.random.default_rng(np.random.SeedSequence(SEED, spawn_key=(1,)))
    optimizer = make_optimizer(model)
    x_train, y_train = X_TRAIN, Y_TRAIN
    for epoch in range(EPOCHS):
        order = order_rng.permutation(len(x_train))
        for start in range(0, len(order), BATCH_SIZE):
            batch = torch.from_numpy(order[start:start + BATCH_SIZE])
            train_step(model, optimizer, x_train[batch], y_train[batch])
        if (epoch + 1) % 5 == 0:
            train_loss, test_loss = evaluate(model)
            print(f"epoch {epoch + 1}: train loss {train_loss:.6f}, test loss {test_loss:.6f}")
    return model


# ---- data and weights ---------------------------------------------------------------------------

# The data: the built-in 'xor' dataset: 100 points, noise 0.1, train ratio 0.5, seed 0. Each row:
# x1, x2, label.
TRAIN_POINTS = np.array([
    [2.59655446429944, -3.5434437939744097, 0], [3.4327023920027235, 4.427555772777217, 1],
    [4.064842308107038, -4.714319651948056, 0], [4.199355557205206, 3.5237382754307047, 1],
    [-0.5001207619216779, -2.9762708036069614, 1], [1.502134520153778, 5.250965052353242, 1],
    [2.4461853665475273, -3.629470712177278, 0], [2.879510023564281, 0.4275872326207805, 1],
    [-1.8570426903767479, 5.249173481609177, 0], [2.1554198448069473, 1.804592762678163, 1],
    [-2.140564546322998, -3.472876210734375, 1], [1.1612306481273278, 0.8409050217326783, 1],
    [0.5931216019677044, 3.157857007138075, 1], [3.1709830748868333, -2.9063055700704785, 0],
    [-4.8948928881156535, 2.620061956565608, 0], [-2.9935779100625255, -4.7797869893559035, 1],
    [4.113071727376899, 0.40706505543645227, 1], [-0.3010418631235298, -1.0477137515092452, 0],
    [2.4114287798974985, 4.6205968661337815, 1], [5.2720993578921105, 5.108353387762301, 1],
    [3.3971077591277767, 0.9047595200618581, 1], [-3.8875344309896835, 2.00061849314936, 0],
    [3.318805787183078, 4.535301597834695, 1], [3.907014095476778, -2.828532596778925, 0],
    [3.7131727961238328, -4.633099912328986, 0], [5.1194269312670615, 1.013956004557744, 1],
    [-3.304845560317867, 4.721131105064978, 0], [3.458535541215322, -5.272614998298519, 0],
    [-3.358702271092064, 0.5602224861787513, 0], [-5.200454391927081, -1.6495384224172935, 1],
    [-0.8962284528421602, 4.845904936907373, 0], [0.736249914654229, 4.650724237877681, 1],
    [4.5910422079700615, -4.639175032759252, 0], [2.492197728267403, -5.14008270476428, 0],
    [-2.638697277077074, 0.6893440762218692, 0], [2.8772884530829144, -0.3257730451238105, 0],
    [-2.711354068290677, -2.8832428590565504, 1], [-2.6016321449919984, 3.9312020418931786, 0],
    [4.960620807840702, 0.92231842228457, 1], [-1.2544816017847176, -3.3148695549074465, 1],
    [4.640435159562496, -1.7220480329092978, 0], [4.574239286245599, 4.979261899246464, 1],
    [-0.7966063335071303, 3.263242702872942, 0], [-5.01680328854537, -4.057167235004361, 1],
    [1.4538511148125386, -1.4632244573811655, 0], [-3.9490349497758874, 2.514883401940817, 0],
    [3.4812097097091046, 1.5650646241975352, 1], [5.082657138401458, 1.1987002832095046, 1],
    [-0.8724717102546855, 4.610173159811549, 0], [3.8740427658756937, -4.964144246945357, 0],
], dtype=np.float64)
TEST_POINTS = np.array([
    [1.9788940557135126, 4.884136317779519, 1], [4.789436749377653, -0.6995486069090397, 0],
    [-0.4115045316653571, 5.064623219360445, 0], [4.557145772144188, 2.782485033017541, 1],
    [-1.856900211958748, -0.9970126805216666, 1], [1.669616873214543, -2.6021328623612967, 0],
    [-4.054452941647165, -2.4166924299242236, 1], [-4.869331114317958, 3.5270628018150196, 0],
    [-5.152936950346307, 3.936400902455758, 0], [-2.313038671810774, 2.0199487795635935, 0],
    [-2.4157878556878947, -1.1710365731910735, 1], [-3.8123598776750205, 5.026288138229549, 0],
    [-1.1461596262877534, 3.598039852781027, 0], [5.111950400663443, 4.872101796109635, 1],
    [-1.153441506443292, 2.644835717887293, 0], [0.8261151052128721, 1.2392420161316828, 1],
    [-2.302881094626152, -1.073127788023416, 1], [-5.235911173356898, 3.026492012253886, 0],
    [2.1844673057094006, -1.4107857602089624, 0], [-1.9388293945433965, -3.797205331051609, 1],
    [3.9477829540077414, -4.705358483996615, 0], [1.443732469489967, -5.016346348864789, 0],
    [4.181183206591798, -3.041305715826756, 0], [-3.0284240646662024, 1.5318714468604242, 0],
    [0.534347273949199, -4.4106435975372795, 0], [0.5535432247572587, -2.1975812444104434, 0],
    [4.890776426974422, -1.605955889083191, 0], [4.7380142694209075, -4.031828977387522, 0],
    [-4.890264760638053, -5.134723644714708, 1], [-1.3838099947183877, 4.202743520047924, 0],
    [3.931789223498865, 0.7146122024909174, 1], [3.0569118810182836, -2.2114263728073897, 0],
    [0.9140076755022293, 1.0833591492627266, 1], [-1.4922949168911057, -1.0022593882142339, 1],
    [-1.6488983175517145, -4.2450472042977045, 1], [-4.150673667190948, 2.590151170763094, 0],
    [-4.39246954380878, 1.103323859868507, 0], [1.0152983072976094, -2.081306089240578, 0],
    [-1.3444272689512402, 4.402557662160548, 0], [1.5910815153970923, 4.571545530678674, 1],
    [-4.513699628343601, 1.826145763366385, 0], [-0.44164641168210944, 4.194878343490003, 0],
    [2.006244146936303, 1.771895115742501, 1], [4.100981213040696, 3.42335398111254, 1],
    [-2.561509014004428, 2.3265207065978624, 0], [1.2430003019969675, -1.9208877449286674, 0],
    [-4.459846564176152, 3.6264414765339774, 0], [-1.2348966325187336, 4.399589616622969, 0],
    [3.7829120827505998, -3.8452646181346823, 0], [1.3663577576717991, 2.594965609839984, 1],
], dtype=np.float64)
X_TRAIN = torch.tensor(features(TRAIN_POINTS))
X_TEST = torch.tensor(features(TEST_POINTS))
Y_TRAIN, Y_TEST = targets(TRAIN_POINTS[:, 2]), targets(TEST_POINTS[:, 2])


# The playground's initial weights, in Keras order (kernels (in, out)).
INITIAL_WEIGHTS = [
    # dense.kernel (2, 4)
    np.array([
        [0.8858751057657588, -0.3673256952290038, 0.44468517729965074, -0.7487938291346135],
        [-0.15404727497005988, 0.2960761951745656, -0.8866455159387963, 0.6378340728103582],
    ]),
    # dense.bias (4,)
    np.array([0.0, 0.0, 0.0, 0.0]),
    # dense_1.kernel (4, 2)
    np.array([
        [-0.4626065588231665, 0.3584947137341965], [0.709351473780125, -0.8200518087028419],
        [0.821730416309465, 0.8425830621376642], [-0.7667122795358472, 0.017499118599573205],
    ]),
    # dense_1.bias (2,)
    np.array([0.0, 0.0]),
    # dense_2.kernel (2, 1)
    np.array([
        [0.4762300931428405], [-1.3943733192225374],
    ]),
    # dense_2.bias (1,)
    np.array([0.0]),
]

# The playground's weights at epoch 50: where the script should land.
PLAYGROUND_WEIGHTS = [
    # dense.kernel (2, 4)
    np.array([
        [1.1157078420282942, -0.1845128566486574, 0.013629289965819202, -0.8110176081896355],
        [0.0250670454904178, 0.14951527726416589, -1.9683771120493123, 0.33375972361620954],
    ]),
    # dense.bias (4,)
    np.array([0.2633528074977322, 0.9472880352790579, 0.05236108079675392, -1.189238128351815]),
    # dense_1.kernel (4, 2)
    np.array([
        [0.5689661509185547, 0.9448418951601626], [0.7065525286406703, -1.2601601990177624],
        [1.4615946331809497, 1.417850793824591], [-1.690781092265405, -0.048558588164359255],
    ]),
    # dense_1.bias (2,)
    np.array([0.8043507873955676, -0.5785741556342334]),
    # dense_2.kernel (2, 1)
    np.array([
        [1.7201749827576698], [-1.8578707345815095],
    ]),
    # dense_2.bias (1,)
    np.array([-1.2429041616006593]),
]


model = train(build_model())

train_loss, test_loss = evaluate(model)
print(f"final train loss {train_loss:.10f} (the playground showed 0.22844608104058314)")
print(f"final test loss {test_loss:.10f} (the playground showed 0.23300373535020868)")
difference = max(
    float(np.max(np.abs(mine - theirs), initial=0.0))
    for mine, theirs in zip(keras_order_weights(model), PLAYGROUND_WEIGHTS, strict=True)
)
print(f"largest difference from the playground's weights: {difference:.3g}")
