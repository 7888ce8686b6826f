"""app.main.run and the `nn-playground` command: flags, help, the start line, a real server."""

import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from app import cli, main
from app.settings import Settings

VENV_BIN = Path(sys.executable).parent


def test_run_starts_the_warm_up_before_uvicorn(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []
    # Worker processes (the default): the kernel is compiled for them, not loaded here.
    monkeypatch.setattr(main.fast, "start_warm_up",
                        lambda load_here=True: calls.append(f"warm_up load_here={load_here}"))

    def fake_uvicorn_run(app: Any, **options: Any) -> None:
        calls.append("uvicorn")
        assert options["ws_per_message_deflate"] is False
        assert (options["host"], options["port"]) == ("127.0.0.1", 8123)
        assert app.state.settings.port == 8123

    monkeypatch.setattr(main.uvicorn, "run", fake_uvicorn_run)
    monkeypatch.delenv("NN_PLAYGROUND_PORT", raising=False)
    try:
        main.run(["--port", "8123"])
    finally:
        os.environ.pop("NN_PLAYGROUND_PORT", None)
        main.get_settings.cache_clear()
    assert calls == ["warm_up load_here=False", "uvicorn"]


def test_help_prints_usage_and_starts_nothing() -> None:
    done = subprocess.run(
        [str(VENV_BIN / "nn-playground"), "--help"], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    for flag in ("--host", "--port", "--workers", "NN_PLAYGROUND_"):
        assert flag in done.stdout, done.stdout
    assert "Uvicorn running" not in done.stdout + done.stderr


@pytest.mark.parametrize(
    ("argv", "message"),
    [(["--port", "70000"], "--port 70000 is not a port number"),
     (["--workers", "-1"], "--workers -1 must be 0 or more"),
     (["--port", "eighty"], "invalid int value: 'eighty'")],
)
def test_bad_flags_exit_with_a_clear_message(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        cli.apply_flags(argv)
    assert exited.value.code == 2
    assert message in capsys.readouterr().err


def test_start_message_names_a_url_a_browser_can_open() -> None:
    assert cli.start_message(Settings(host="0.0.0.0", port=9000)) == (
        "nn-playground: open http://127.0.0.1:9000/ (API docs at http://127.0.0.1:9000/docs)"
    )
    assert "http://[::1]:8000/" in cli.start_message(Settings(host="::1", port=8000))


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def test_the_command_serves_on_the_given_port_and_prints_the_url() -> None:
    port = free_port()
    env = {**os.environ, "NN_PLAYGROUND_ALLOWED_ORIGINS": "[]"}
    with subprocess.Popen(
        [str(VENV_BIN / "nn-playground"), "--host", "127.0.0.1", "--port", str(port),
         "--workers", "1"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
    ) as server:
        serve_and_check(server, port)


def serve_and_check(server: "subprocess.Popen[str]", port: int) -> None:
    """The first line is the URL, /health answers with one worker; the server is stopped."""
    try:
        assert server.stdout is not None
        first = server.stdout.readline()
        assert first.strip() == (
            f"nn-playground: open http://127.0.0.1:{port}/ "
            f"(API docs at http://127.0.0.1:{port}/docs)"
        )
        deadline = time.monotonic() + 60
        while True:
            try:
                health = httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).json()
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, "the server did not answer within 60 s"
                assert server.poll() is None, "the server exited"
                time.sleep(0.2)
        assert health["workers"] == 1, health
    finally:
        server.terminate()
        server.wait(30)
