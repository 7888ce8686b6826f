"""Instruments benchmark (issue 5): what the trace, the race and time travel cost.

Run: `.venv/bin/python bench/instruments.py` (about 15 s). Each figure is the median of
`--repeats` runs after one warm-up run (which also loads numba's compiled kernels):
- backprop trace of the largest net the limits allow (7 features, 8 hidden layers of 16 tanh
  units, 2,049 parameters) on a batch of 10 and of 100, with and without the numeric check;
- optimizer race of lesson 8 (5 racers, spiral, 2 hidden layers of 8 tanh): racer-epochs/s
  and the 5 decision grids;
- time travel: opening the view of a default session that recorded 2,000 epochs (issue 10:
  restored, not replayed), and one frame of a past epoch;
- the perceptron rule on XOR for 1,000 passes (every instance recorded).
"""

from __future__ import annotations

import os

os.environ["OPENBLAS_NUM_THREADS"] = "1"  # before numpy: one BLAS thread (RECIPES)

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from app.instruments.backprop import trace_model
from app.instruments.checkpoints import attach
from app.instruments.perceptron_run import run_perceptron
from app.instruments.race import start_race
from app.instruments.timetravel import replay
from app.lessons import LESSONS
from app.sessions.config import SessionConfig
from app.sessions.session import TrainingSession

ALL_FEATURES = ["x1", "x2", "x1_sq", "x2_sq", "x1x2", "sin_x1", "sin_x2"]


def median_seconds(run: Callable[[], object], repeats: int) -> float:
    """Median wall time of `repeats` runs after one warm-up run."""
    run()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    """Print one line per figure."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    repeats = parser.parse_args().repeats

    big = TrainingSession(SessionConfig.model_validate({
        "features": ALL_FEATURES, "layers": [{"units": 16, "activation": "tanh"}] * 8,
    }))
    x, y = big.data.x_train, big.data.y_train
    for size in (10, 100):
        numeric = median_seconds(lambda s=size: trace_model(big.model, x[:s], y[:s]), repeats)
        analytic = median_seconds(
            lambda s=size: trace_model(big.model, x[:s], y[:s], numeric=False), repeats
        )
        print(f"trace, 2,049 parameters, batch {size}: {numeric:.2f} s with the numeric check, "
              f"{analytic * 1e3:.1f} ms without")

    lesson = LESSONS["optimizers"]
    race = start_race(SessionConfig.model_validate(lesson.config), lesson.instrument["racers"])
    racers = len(race.sessions)
    step = median_seconds(lambda: race.step(100), repeats)
    grids = median_seconds(race.grids, repeats)
    print(f"race (lesson 8, {racers} racers): {racers * 100 / step:,.0f} racer-epochs/s; "
          f"{racers} grids of {race.base.grid_resolution}^2 in {grids * 1e3:.1f} ms")

    live = TrainingSession(SessionConfig())
    attach(live)  # as a worker's session: it records its checkpoints as it trains (issue 10)
    for _ in range(2000):
        live.train_one_epoch()
    open_seconds = median_seconds(lambda: replay(live), repeats)
    recorded = replay(live)
    frame = median_seconds(lambda: recorded.frame_at(1234), repeats)
    print(f"time travel: opening the view of 2,000 recorded epochs (default session) "
          f"{open_seconds * 1e3:.2f} ms, {len(recorded.checkpoints)} checkpoints in "
          f"{recorded.checkpoints.nbytes:,} bytes; a past epoch's frame {frame * 1e3:.1f} ms")

    perceptron = median_seconds(lambda: run_perceptron("xor-table", epochs=1000), repeats)
    print(f"perceptron rule, XOR, 1,000 passes recorded: {perceptron:.2f} s")


if __name__ == "__main__":
    main()
