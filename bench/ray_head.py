"""A throwaway local Ray head on loopback, and the clean-up of what it started.

Shared by bench/scale.py and the tests' `ray_head` fixture (tests/conftest.py): the same
`ray start --head` (2 CPUs, a 100 MB object store, no dashboard, usage stats off), process-group
stops, and a sweep of the processes whose environment carries a marker (Ray's workers leave
the groups we start, so the marker is how to find every one of them).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

BIN = Path(sys.executable).parent


def head_command(port: int, temp_dir: Path, dashboard_agent_port: int) -> list[str]:
    """`ray start --head --block` on 127.0.0.1:`port`, its files under `temp_dir`."""
    return [
        str(BIN / "ray"),
        "start",
        "--head",
        "--block",
        f"--port={port}",
        "--node-ip-address=127.0.0.1",
        "--num-cpus=2",
        "--object-store-memory=100000000",
        "--include-dashboard=false",
        "--disable-usage-stats",
        f"--temp-dir={temp_dir}",
        f"--dashboard-agent-listen-port={dashboard_agent_port}",
    ]


def stop_group(process: subprocess.Popen[Any], sig: int = signal.SIGTERM) -> None:
    """Stop a process we started as the leader of its own process group (a new session, or
    process_group=0), and its group (SIGKILL after 10 s)."""
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, sig)
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(10)


def kill_marked(variable: str, marker: str) -> None:
    """SIGKILL every process whose environment has `variable`=`marker` (only ours)."""
    needle = f"{variable}={marker}".encode()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        with contextlib.suppress(OSError):
            if needle in (entry / "environ").read_bytes().split(b"\0"):
                os.kill(int(entry.name), signal.SIGKILL)
