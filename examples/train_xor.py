"""Train XOR on a running playground: create a session over REST, drive it over the websocket.

    bash scripts/run.sh                     # in one terminal (serves http://127.0.0.1:8000)
    .venv/bin/python examples/train_xor.py  # in another; --url to point elsewhere

Prints the train and test loss as frames arrive (every epoch's losses are in the frames, see
docs/protocol.md), then the final accuracy. The create's `owner_token` is what lets this
script drive the session: it is sent as the websocket's first message (`auth`); REST calls that
change the session send it as `Authorization: Bearer <owner_token>`.
"""

from __future__ import annotations

import argparse
import json
import struct
import sys
import urllib.request
from typing import Any

import numpy as np
from websockets.sync.client import connect


def post(url: str, body: dict[str, Any]) -> dict[str, Any]:
    """POST JSON and return the JSON reply."""
    request = urllib.request.Request(
        url, json.dumps(body).encode(), {"content-type": "application/json"}
    )
    with urllib.request.urlopen(request) as response:
        reply: dict[str, Any] = json.load(response)
        return reply


def decode(message: bytes) -> tuple[dict[str, Any], np.ndarray]:
    """The frame's JSON header and its per-epoch rows (train_loss, test_loss, metrics)."""
    (length,) = struct.unpack(">I", message[:4])
    header: dict[str, Any] = json.loads(message[4:4 + length])
    entry = header["sections"]["epochs"]
    rows = np.frombuffer(message, "<f4", entry["length"], 4 + length + entry["offset"])
    return header, rows.reshape(entry["shape"])


def main() -> int:
    """Create an XOR session, train it for --epochs epochs, print the losses."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="http://127.0.0.1:8000")
    parser.add_argument("--epochs", type=int, default=300)
    args = parser.parse_args()

    config = {"dataset": "xor", "noise": 0.0, "layers": [{"units": 4}, {"units": 2}],
              "learning_rate": 0.03, "frame_rate": 10}
    session = post(f"{args.url}/api/sessions", config)
    print(f"session {session['id']}: {session['n_train']} training points")
    ws_url = args.url.replace("http", "ws", 1) + session["ws_url"]
    with connect(ws_url, compression=None) as ws:
        # Anyone with the id may watch; the owner token makes this connection its driver.
        ws.send(json.dumps({"type": "auth", "token": session["owner_token"]}))
        ws.send(json.dumps({"type": "step", "n": args.epochs}))
        while True:
            message = ws.recv()
            if isinstance(message, str):
                reply = json.loads(message)
                if reply["type"] == "error":
                    print("server:", reply["detail"], file=sys.stderr)
                continue
            header, rows = decode(message)
            if len(rows):
                last = header["epochs_first"] + len(rows) - 1
                print(f"epoch {last:5d}  train loss {rows[-1, 0]:.4f}  test loss {rows[-1, 1]:.4f}")
            if header["epoch"] >= args.epochs and header["status"] != "running":
                metrics = header["metrics"]
                print(f"done: test accuracy {metrics['test_metric']:.3f}, "
                      f"weights {header['weights_hash']}")
                return 0


if __name__ == "__main__":
    sys.exit(main())
