"""Engine benchmark: epochs/s, live steps/s and grids/s of our engine next to references.

Run: `.venv/bin/python bench/engine.py` (about a minute; `--repeats 3` is quicker).

Task (issue 2): 250 training points (circle, 250 more for testing), batch 10, tanh hidden
units, a sigmoid output with binary cross-entropy, SGD learning rate 0.03, on the nets 2-4-2-1
(TensorFlow Playground's default), 2-8-8-1 and 2-8x6-1. Measured in the same run:
- ours, fast: `Sequential.train_epoch` on the compiled path (app/engine/fast.py);
- ours, numpy: the same call with `fast.enabled = False` (the readable reference path);
- textbook numpy: a plain forward/backward/update loop (allocating, no engine);
- PyTorch CPU, one thread: the same net, BCEWithLogitsLoss, torch.optim.SGD.
A live step is what a live session does per frame: one epoch, the train and test loss, and a
100x100 decision grid through every layer (which also gives the neuron heatmaps).
Each figure is the median of interleaved repeats (every variant measured once per round), so
load from other processes on the shared cores hits all variants alike.
"""

from __future__ import annotations

import os

# Before numpy loads OpenBLAS: one BLAS thread (threads on 2 shared cores made small matmuls
# 5-15x slower and erratic), and no core-type/cache-size overrides left over from the shell.
for _name in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE"):
    os.environ.pop(_name, None)
os.environ["OPENBLAS_NUM_THREADS"] = "1"

import argparse  # noqa: E402
import itertools  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402
from datetime import UTC, datetime  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import numpy.typing as npt  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from app.datasets import make_dataset  # noqa: E402
from app.engine import Dense, Input, Sequential, fast, optimizers  # noqa: E402

Array = npt.NDArray[np.float64]

NETS: dict[str, tuple[int, ...]] = {
    "2-4-2-1": (4, 2),
    "2-8-8-1": (8, 8),
    "2-8x6-1": (8, 8, 8, 8, 8, 8),
}
# TensorFlow Playground's own engine (nn.ts) under Node on this machine kind, same task:
# the medians given in issue 2, section "Benchmark: bench/engine.py".
TFP_EPOCHS_PER_S = {"2-4-2-1": 8056.0, "2-8-8-1": 2572.0, "2-8x6-1": 674.0}
TFP_LIVE_STEPS_PER_S = {"2-4-2-1": 380.0, "2-8-8-1": 136.0, "2-8x6-1": 41.0}
LIVE_TARGET = 5.0  # issue 2: at least 5x TFP's live steps
BATCH_SIZE = 10
LEARNING_RATE = 0.03
GRID = 100
EXTENT = 6.0


def grid_points() -> Array:
    """Cell centres of the 100x100 decision grid over [-6, 6]^2: (10000, 2)."""
    centres = -EXTENT + (np.arange(GRID) + 0.5) * (2 * EXTENT / GRID)
    x1, x2 = np.meshgrid(centres, centres[::-1])
    return np.column_stack([x1.ravel(), x2.ravel()])


# ---- the variants ----------------------------------------------------------------------------


def our_model(hidden: tuple[int, ...]) -> Sequential:
    """The engine's net for this task (seeded)."""
    layers = [Dense(units, "tanh") for units in hidden]
    model = Sequential([Input((2,)), *layers, Dense(1, "sigmoid")], seed=0)
    model.compile(optimizers.SGD(learning_rate=LEARNING_RATE), "binary_crossentropy")
    return model


def our_epoch(model: Sequential, x: Array, y: Array, compiled: bool) -> Callable[[], object]:
    """One epoch through Sequential.train_epoch on the chosen path."""

    def run() -> object:
        fast.enabled = compiled
        return model.train_epoch(x, y, BATCH_SIZE)

    return run


def our_live_step(
    model: Sequential, data: tuple[Array, Array, Array, Array], grid: Array, compiled: bool
) -> Callable[[], object]:
    """Epoch + train and test loss + every layer on the grid (fast: forward_all)."""
    x_train, y_train, x_test, y_test = data

    def run() -> object:
        fast.enabled = compiled
        model.train_epoch(x_train, y_train, BATCH_SIZE)
        model.loss_value(x_train, y_train)
        model.loss_value(x_test, y_test)
        return our_grid(model, grid, compiled)()

    return run


def our_grid(model: Sequential, grid: Array, compiled: bool) -> Callable[[], object]:
    """Every layer's output on the grid: forward_all, or layer by layer as model.predict."""

    def run() -> object:
        if compiled:
            return fast.forward_all(model, grid)
        values = grid
        for layer in model.layers:
            values = layer.forward(values, training=False)
        return values

    return run


def textbook_epoch(hidden: tuple[int, ...], x: Array, y: Array) -> Callable[[], object]:
    """A plain numpy minibatch loop: forward, fused sigmoid+BCE gradient, backward, update."""
    rng = np.random.default_rng(0)
    sizes = [2, *hidden, 1]
    kernels = [rng.uniform(-0.5, 0.5, (a, b)) for a, b in itertools.pairwise(sizes)]
    biases = [np.zeros(b) for b in sizes[1:]]
    targets = y.reshape(-1, 1)

    def run() -> object:
        order = rng.permutation(len(x))
        for start in range(0, len(x), BATCH_SIZE):
            batch = order[start : start + BATCH_SIZE]
            acts = [x[batch]]
            for kernel, bias in zip(kernels[:-1], biases[:-1], strict=True):
                acts.append(np.tanh(acts[-1] @ kernel + bias))
            out = 1.0 / (1.0 + np.exp(-(acts[-1] @ kernels[-1] + biases[-1])))
            delta = (out - targets[batch]) / len(batch)
            for i in range(len(kernels) - 1, -1, -1):
                d_kernel = acts[i].T @ delta
                d_bias = delta.sum(axis=0)
                if i:
                    delta = (delta @ kernels[i].T) * (1.0 - acts[i] ** 2)
                kernels[i] -= LEARNING_RATE * d_kernel
                biases[i] -= LEARNING_RATE * d_bias
        return kernels

    return run


def torch_variants(
    hidden: tuple[int, ...], data: tuple[Array, Array, Array, Array], grid: Array
) -> dict[str, Callable[[], object]]:
    """PyTorch CPU on one thread: epoch, live step and grid, the same net and task."""
    import torch

    torch.set_num_threads(1)
    torch.manual_seed(0)
    sizes = [2, *hidden]
    modules: list[torch.nn.Module] = []
    for a, b in itertools.pairwise(sizes):
        modules += [torch.nn.Linear(a, b, dtype=torch.float64), torch.nn.Tanh()]
    modules.append(torch.nn.Linear(sizes[-1], 1, dtype=torch.float64))
    net = torch.nn.Sequential(*modules)
    optimizer = torch.optim.SGD(net.parameters(), lr=LEARNING_RATE)
    loss_fn = torch.nn.BCEWithLogitsLoss()
    x_train, y_train, x_test, y_test = (torch.from_numpy(np.array(a)) for a in data)
    y_train, y_test = y_train.reshape(-1, 1), y_test.reshape(-1, 1)
    grid_t = torch.from_numpy(grid)
    n = x_train.shape[0]

    def epoch() -> object:
        order = torch.randperm(n)
        for start in range(0, n, BATCH_SIZE):
            batch = order[start : start + BATCH_SIZE]
            optimizer.zero_grad()
            loss = loss_fn(net(x_train[batch]), y_train[batch])
            loss.backward()
            optimizer.step()
        return net

    def grid_all() -> object:
        with torch.no_grad():
            outputs, values = [], grid_t
            for module in net:
                values = module(values)
                outputs.append(values)
            return torch.sigmoid(values)

    def live() -> object:
        epoch()
        with torch.no_grad():
            loss_fn(net(x_train), y_train)
            loss_fn(net(x_test), y_test)
        return grid_all()

    return {"epoch": epoch, "live": live, "grid": grid_all}


# ---- measuring -------------------------------------------------------------------------------


def calls_for(function: Callable[[], object], seconds: float) -> int:
    """How many calls take about `seconds` (after a warm-up call)."""
    function()
    start, count = time.perf_counter(), 0
    while time.perf_counter() - start < seconds / 4:
        function()
        count += 1
    return max(1, round(count * 4))


def rate(function: Callable[[], object], calls: int) -> float:
    """Calls per second over `calls` calls."""
    start = time.perf_counter()
    for _ in range(calls):
        function()
    return calls / (time.perf_counter() - start)


def measure(
    variants: dict[str, Callable[[], object]], repeats: int, seconds: float
) -> dict[str, float]:
    """Median calls/s per variant, variants interleaved within each round."""
    calls = {name: calls_for(function, seconds) for name, function in variants.items()}
    samples: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(repeats):
        for name, function in variants.items():
            samples[name].append(rate(function, calls[name]))
    return {name: statistics.median(values) for name, values in samples.items()}


def load_average() -> str:
    """The 1-minute load average (other engineers share these 2 cores)."""
    return f"{os.getloadavg()[0]:.2f}"


def main() -> None:
    """Measure everything and print the tables."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7, help="interleaved rounds (median)")
    parser.add_argument("--seconds", type=float, default=0.25, help="length of one sample")
    parser.add_argument("--no-torch", action="store_true", help="skip PyTorch")
    args = parser.parse_args()

    started = time.perf_counter()
    load_seconds = fast.warm_up()
    import numba

    print(f"# bench/engine.py, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {os.cpu_count()} cores,"
          f" load {load_average()} at start")
    print(f"# numpy {np.__version__}, numba {numba.__version__}", end="")
    torch_version = None
    if not args.no_torch:
        import torch

        torch_version = torch.__version__
        print(f", torch {torch_version} (1 thread)", end="")
    print(f"; OPENBLAS_NUM_THREADS={os.environ['OPENBLAS_NUM_THREADS']}")
    print(f"# kernel ready in {load_seconds:.2f} s (compiled on a fresh clone, else cache load)")
    print(f"# medians of {args.repeats} interleaved rounds of ~{args.seconds} s each\n")

    dataset = make_dataset("circle", n_samples=500, train_ratio=0.5, seed=0)
    data = (
        np.ascontiguousarray(dataset.x_train, dtype=np.float64),
        np.asarray(dataset.y_train, dtype=np.float64),
        np.ascontiguousarray(dataset.x_test, dtype=np.float64),
        np.asarray(dataset.y_test, dtype=np.float64),
    )
    assert data[0].shape == (250, 2)
    grid = grid_points()

    epochs: dict[str, dict[str, float]] = {}
    live: dict[str, dict[str, float]] = {}
    grids: dict[str, dict[str, float]] = {}
    for net, hidden in NETS.items():
        fast_model, numpy_model = our_model(hidden), our_model(hidden)
        torch_fns = {} if args.no_torch else torch_variants(hidden, data, grid)
        x, y = data[0], data[1]
        epoch_variants = {
            "ours fast": our_epoch(fast_model, x, y, compiled=True),
            "ours numpy": our_epoch(numpy_model, x, y, compiled=False),
            "textbook numpy": textbook_epoch(hidden, x, y),
        }
        live_variants = {
            "ours fast": our_live_step(fast_model, data, grid, compiled=True),
            "ours numpy": our_live_step(numpy_model, data, grid, compiled=False),
        }
        grid_variants = {
            "ours forward_all": our_grid(fast_model, grid, compiled=True),
            "ours layer by layer": our_grid(numpy_model, grid, compiled=False),
        }
        if torch_fns:
            epoch_variants["torch"] = torch_fns["epoch"]
            live_variants["torch"] = torch_fns["live"]
            grid_variants["torch"] = torch_fns["grid"]
        epochs[net] = measure(epoch_variants, args.repeats, args.seconds)
        live[net] = measure(live_variants, args.repeats, args.seconds)
        grids[net] = measure(grid_variants, args.repeats, args.seconds)
        assert fast.supports(fast_model), "the benchmark must exercise the compiled path"
    fast.enabled = True

    print_tables(epochs, live, grids, has_torch=bool(torch_version))
    print(f"\n# load {load_average()} at the end; {time.perf_counter() - started:.0f} s in all")


def print_tables(
    epochs: dict[str, dict[str, float]],
    live: dict[str, dict[str, float]],
    grids: dict[str, dict[str, float]],
    has_torch: bool,
) -> None:
    """Markdown tables with the ratios the issue asks for."""
    torch_col = " torch |" if has_torch else ""
    torch_sep = "---:|" if has_torch else ""
    print("Epochs/s (250 points, batch 10):\n")
    print(f"| net | ours fast | ours numpy | textbook numpy |{torch_col} TFP (published) |"
          f" fast / TFP |{' fast / torch |' if has_torch else ''}")
    print(f"|---|---:|---:|---:|{torch_sep}---:|---:|{torch_sep}")
    for net, row in epochs.items():
        torch_cells = f" {row['torch']:,.0f} |" if has_torch else ""
        ratio = f" {row['ours fast'] / row['torch']:.0f}x |" if has_torch else ""
        print(f"| {net} | {row['ours fast']:,.0f} | {row['ours numpy']:,.0f} |"
              f" {row['textbook numpy']:,.0f} |{torch_cells} {TFP_EPOCHS_PER_S[net]:,.0f} |"
              f" {row['ours fast'] / TFP_EPOCHS_PER_S[net]:.1f}x |{ratio}")
    print("\nLive steps/s (epoch + train and test loss + 100x100 grid through every layer):\n")
    print(f"| net | ours fast | ours numpy |{torch_col} TFP (published) | fast / TFP"
          f" (target {LIVE_TARGET:.0f}x) |{' fast / torch |' if has_torch else ''}")
    print(f"|---|---:|---:|{torch_sep}---:|---:|{torch_sep}")
    for net, row in live.items():
        torch_cells = f" {row['torch']:,.0f} |" if has_torch else ""
        ratio = f" {row['ours fast'] / row['torch']:.0f}x |" if has_torch else ""
        print(f"| {net} | {row['ours fast']:,.0f} | {row['ours numpy']:,.0f} |{torch_cells}"
              f" {TFP_LIVE_STEPS_PER_S[net]:,.0f} |"
              f" {row['ours fast'] / TFP_LIVE_STEPS_PER_S[net]:.1f}x |{ratio}")
    print("\nGrids/s (10,000 points, every layer's output):\n")
    print(f"| net | ours forward_all | ours layer by layer |{torch_col}")
    print(f"|---|---:|---:|{torch_sep}")
    for net, row in grids.items():
        torch_cells = f" {row['torch']:,.0f} |" if has_torch else ""
        print(f"| {net} | {row['ours forward_all']:,.0f} | {row['ours layer by layer']:,.0f} |"
              f"{torch_cells}")


if __name__ == "__main__":
    main()
