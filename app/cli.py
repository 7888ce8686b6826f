"""The `nn-playground` command line: flags become settings, then the server starts."""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence

from app.settings import Settings

# Flags that override a setting, by the setting's environment variable (so worker processes,
# which re-read the environment, agree with the web process).
FLAG_SETTINGS = {
    "host": "NN_PLAYGROUND_HOST",
    "port": "NN_PLAYGROUND_PORT",
    "workers": "NN_PLAYGROUND_WORKER_PROCESSES",
}


def parser() -> argparse.ArgumentParser:
    """The command's flags; every other knob is an NN_PLAYGROUND_* environment variable."""
    defaults = Settings()
    command = argparse.ArgumentParser(
        prog="nn-playground",
        description=(
            "Serve the neural-network playground: the page at /, the REST API and its docs at "
            "/docs, the websocket stream at /ws/sessions/{id}."
        ),
        epilog=(
            "Every limit is a setting read from the environment as NN_PLAYGROUND_<NAME> "
            "(see app/settings.py), e.g. NN_PLAYGROUND_MAX_SESSIONS=50."
        ),
    )
    command.add_argument(
        "--host", default=None, help=f"address to listen on (default {defaults.host})"
    )
    command.add_argument(
        "--port", type=int, default=None, help=f"port to listen on (default {defaults.port})"
    )
    command.add_argument(
        "--workers",
        type=int,
        default=None,
        metavar="N",
        help="session worker processes that train the networks (default: one per CPU; "
        "0 = one worker thread inside the web process)",
    )
    command.add_argument("--version", action="version", version="nn-playground 0.1.0")
    return command


def apply_flags(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Parse argv (exits on --help or an error) and export the given flags as settings."""
    args = parser().parse_args(argv)
    if args.port is not None and not 0 < args.port < 65536:
        parser().error(f"--port {args.port} is not a port number (1..65535)")
    if args.workers is not None and args.workers < 0:
        parser().error(f"--workers {args.workers} must be 0 or more")
    for name, variable in FLAG_SETTINGS.items():
        value = getattr(args, name)
        if value is not None:
            os.environ[variable] = str(value)
    return args


def start_message(settings: Settings) -> str:
    """The line printed on start: where to open the playground."""
    host = settings.host
    shown = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host
    if ":" in shown:
        shown = f"[{shown}]"
    url = f"http://{shown}:{settings.port}/"
    return f"nn-playground: open {url} (API docs at {url}docs)"
