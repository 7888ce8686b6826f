"""The server under attack (issue 9): /health and a canary session, quiet and under each attack.

    .venv/bin/python bench/abuse.py [--only WORD ...] [--quiet 3] [--root DIR] [--workers N]

For each attack of issue 9, a fresh `nn-playground` process on loopback (bench/abuse_lib.py):
a monitor process polls GET /health every ~20 ms and watches a canary session (default net at
the page's pace, speed 60, ~30 frames/s) over the websocket; `--quiet` seconds with no attack,
then the attack from another client address (127.0.0.2). Printed per attack: /health
p50/p99/max and the canary's frames/s and longest gap between frames, quiet and under attack,
and what the server answered. Each attack is bounded (<= ~20 s), the whole run ~3-5 min.
`--root DIR` serves another checkout of the code (e.g. `git archive` of the commit before the
fixes) with this same client, for before/after figures.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.abuse_lib import (
    ROOT,
    Figures,
    Monitor,
    Outcome,
    Server,
    attack_big_bodies,
    attack_big_message,
    attack_close_in_hello,
    attack_grab,
    attack_long_ids,
    attack_long_replay,
    attack_non_readers,
    attack_race_steps,
    attack_surrogates,
    big_points_body,
    figures,
)

BODY = big_points_body()
MIN_WINDOW = 2.0  # seconds measured from an attack's start even when it ends sooner

ATTACKS: list[tuple[str, Callable[[Server], Awaitable[Outcome]]]] = [
    ("big create body (300,000 points rows)", lambda s: attack_big_bodies(s.base, 1, BODY)),
    ("four big create bodies at once", lambda s: attack_big_bodies(s.base, 4, BODY)),
    ("long replay (30,000 epochs)", lambda s: attack_long_replay(s.base, 30_000)),
    ("42 concurrent race steps", lambda s: attack_race_steps(s.base, 42, 40, server=s)),
    ("200-session grab from one client", lambda s: attack_grab(s.base, 200)),
    ("100 non-reading sockets", lambda s: attack_non_readers(s, 100, 15.0)),
    ("10 MB websocket message", attack_big_message),
    ("lone-surrogate strings", attack_surrogates),
    ("20,000- and 5,000-character websocket ids", attack_long_ids),
    ("close during a long hello", attack_close_in_hello),
]


def measure(
    name: str, attack: Callable[[Server], Awaitable[Outcome]], root: Path, workers: int | None,
    quiet: float,
) -> tuple[Figures, Figures, Outcome]:
    """A fresh server and monitor: `quiet` seconds of nothing, then the attack."""
    with Server(workers=workers, root=root) as server, Monitor(server) as monitor:
        quiet_start = time.monotonic()
        time.sleep(quiet)
        quiet_end = time.monotonic()
        began = time.monotonic()
        outcome = asyncio.run(attack(server))
        start, end = outcome.window or (began, time.monotonic())
        end = max(end, start + MIN_WINDOW)
        time.sleep(max(0.0, end - time.monotonic()) + 0.5)  # let /health calls of the window end
        samples = monitor.samples()
        if samples.notes:
            outcome.summary += f" [canary: {samples.notes[-1][:120]}]"
        return figures(samples, quiet_start, quiet_end), figures(samples, start, end), outcome


def main() -> int:
    """Run every attack (or those matching --only), print a table of the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="*", default=[], help="attacks whose name has a word")
    parser.add_argument("--quiet", type=float, default=3.0, help="seconds without attack")
    parser.add_argument("--root", type=Path, default=ROOT, help="the code to serve")
    parser.add_argument("--workers", type=int, default=None, help="default: the CPU count")
    args = parser.parse_args()
    # A SIGTERM (e.g. `timeout`) unwinds the context managers, so no server is left behind.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    chosen = [(n, a) for n, a in ATTACKS
              if not args.only or any(word in n for word in args.only)]
    print(f"serving {args.root}; load average {os.getloadavg()}, cores {os.cpu_count()}")
    began = time.monotonic()
    rows = []
    for name, attack in chosen:
        quiet, attacked, outcome = measure(name, attack, args.root, args.workers, args.quiet)
        print(f"== {name} ({attacked.seconds:.1f} s window)\n   quiet:  {quiet.line()}\n"
              f"   attack: {attacked.line()}\n   server: {outcome.summary}", flush=True)
        rows.append((name, quiet, attacked, outcome))
    print(f"\n{len(rows)} attacks in {time.monotonic() - began:.0f} s; load average "
          f"{os.getloadavg()}\n")
    print("| attack | quiet: /health p50 / p99 / max (ms), canary frames/s | under attack: "
          "/health p50 / p99 / max (ms), canary frames/s (longest gap) | what the server "
          "answered |")
    print("|---|---|---|---|")
    for name, quiet, attacked, outcome in rows:
        print(f"| {name} | {quiet.p50:.1f} / {quiet.p99:.1f} / {quiet.max:.1f}, "
              f"{quiet.frames_per_second:.1f} | {attacked.p50:.1f} / {attacked.p99:.1f} / "
              f"{attacked.max:.1f}, {attacked.frames_per_second:.1f} "
              f"({attacked.longest_gap:.2f} s) | {outcome.summary.replace('|', '/')} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
