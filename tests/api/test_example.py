"""examples/train_xor.py against a real server: it trains XOR and prints the losses."""

import subprocess
import sys
from pathlib import Path

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "train_xor.py"


def test_train_xor_example_reaches_high_accuracy(live_server: str) -> None:
    result = subprocess.run(
        [sys.executable, str(EXAMPLE), "--url", live_server, "--epochs", "300"],
        capture_output=True, text=True, timeout=120, check=True,
    )
    lines = result.stdout.strip().splitlines()
    assert lines[0].startswith("session ") and lines[0].endswith("training points")
    assert any(line.startswith("epoch   300  train loss") for line in lines)
    # XOR with a 4-2 tanh net and TFP's defaults is learned well within 300 epochs.
    accuracy = float(lines[-1].split("test accuracy ")[1].split(",")[0])
    assert accuracy >= 0.9
