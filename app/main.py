"""Builds the FastAPI app and runs it (the `nn-playground` console script)."""

from pathlib import Path

import uvicorn
from fastapi import FastAPI

from app.settings import get_settings

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def create_app() -> FastAPI:
    """The playground app: page, REST API and websocket stream."""
    app = FastAPI(title="nn-playground", version="0.1.0")

    @app.get("/health")
    def read_health() -> dict[str, str]:
        """Liveness probe."""
        return {"status": "ok"}

    return app


app = create_app()


def run() -> None:
    """Serve the playground on the configured host and port."""
    settings = get_settings()
    uvicorn.run("app.main:app", host=settings.host, port=settings.port, ws_per_message_deflate=False)
