"""Costs of "Export code" (issue 11): the recipe in the worker, its pickle, each script's
rendering, and the replay that vouches for an imported past. CPU time (thread_time), so the
figures hold on a shared machine; run: .venv/bin/python bench/code_export.py
"""

from __future__ import annotations

import pickle
import time
from collections.abc import Callable
from functools import partial
from typing import TypeVar

from app.codegen import render
from app.codegen.recipe import recipe_from_session, replay_matches
from app.sessions.config import SessionConfig
from app.sessions.session import TrainingSession

T = TypeVar("T")


def cpu(call: Callable[[], T]) -> tuple[T, float]:
    """(result, CPU seconds) of call()."""
    start = time.thread_time()
    result = call()
    return result, time.thread_time() - start


def main() -> None:
    big = TrainingSession(SessionConfig.model_validate({"n_samples": 5000}), "big")
    for _ in range(3):
        big.train_one_epoch()
    recipe, seconds = cpu(lambda: recipe_from_session(big))
    print(f"recipe of a 5,000-point session: {seconds * 1e3:.2f} ms, "
          f"pickled {len(pickle.dumps(recipe)) / 1e3:.0f} KB")
    for framework in ("numpy", "keras", "pytorch"):
        text, seconds = cpu(partial(render, recipe, framework))
        print(f"{framework} script: {len(text) / 1e3:.0f} KB in {seconds * 1e3:.1f} ms")
    default = TrainingSession(SessionConfig.model_validate({}), "default")
    for _ in range(1000):
        default.train_one_epoch()
    long_recipe = recipe_from_session(default)
    same, seconds = cpu(lambda: replay_matches(long_recipe))
    print(f"replay of 1,000 epochs x {long_recipe.n_train} points: {seconds:.2f} s "
          f"(matches: {same})")


if __name__ == "__main__":
    main()
