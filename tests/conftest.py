"""Shared fixtures: an in-process app client and a real uvicorn server on a free port."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import uvicorn
from fastapi import FastAPI
from fastapi.testclient import TestClient

from app.api.ws_protocol import uvicorn_options
from app.main import create_app
from app.settings import Settings


def make_settings(**overrides: Any) -> Settings:
    """Test settings: one worker thread in-process (fast start) unless overridden."""
    # rate_limit_per_second: only tests/ops and tests/abuse meet the per-address rate limit.
    values: dict[str, Any] = {"worker_processes": 0, "rate_limit_per_second": 1e6, **overrides}
    return Settings(**values)


@pytest.fixture
def app() -> FastAPI:
    """A fresh app whose sessions live in one in-process worker thread."""
    return create_app(make_settings())


@pytest.fixture
def client(app: FastAPI) -> Iterator[TestClient]:
    """A TestClient with the lifespan running (workers started, stopped after the test)."""
    with TestClient(app) as test_client:
        yield test_client


class LiveServer:
    """A uvicorn server of create_app() running in a thread on a pre-bound loopback socket."""

    def __init__(self, **overrides: Any) -> None:
        self.socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.socket.bind(("127.0.0.1", 0))
        self.port: int = self.socket.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        origins = [self.url, f"http://localhost:{self.port}"]
        self.app = create_app(make_settings(allowed_origins=origins, **overrides))
        config = uvicorn.Config(
            self.app, log_level="warning", lifespan="on",
            **uvicorn_options(self.app.state.settings),
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(
            target=self.server.run, kwargs={"sockets": [self.socket]}, daemon=True
        )

    def __enter__(self) -> LiveServer:
        self.thread.start()
        deadline = time.monotonic() + 30.0
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("uvicorn did not start within 30 s")
            time.sleep(0.01)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(30.0)
        self.socket.close()


@pytest.fixture(scope="session")
def live_server() -> Iterator[str]:
    """Base URL of a real server (one worker process) shared by the whole test session.

    Its allowed_origins are its own URL (127.0.0.1 and localhost), so a browser page served by
    it may open the websocket. Browser tests reuse this fixture.
    """
    with LiveServer(worker_processes=1) as server:
        yield server.url
