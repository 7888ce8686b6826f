"""Builds the FastAPI app and runs it (the `nn-playground` console script)."""

import asyncio
import gc
import os
import sys

# BLAS threads on 2 shared cores made small matmuls 5-15x slower (RECIPES); set before numpy.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path

import uvicorn
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from sqlalchemy.exc import OperationalError
from starlette.exceptions import HTTPException
from starlette.middleware.trustedhost import TrustedHostMiddleware

from app.api import errors, raw_bodies
from app.api import openapi as openapi_fixes
from app.api.limits import BodySizeLimit
from app.api.owners import OwnerRegistry
from app.api.routes import (
    classes,
    code,
    datasets,
    health,
    instruments,
    lessons,
    metrics,
    races,
    registry,
    runs,
    sessions,
    stream,
    timetravel,
)
from app.api.routes import jobs as jobs_routes
from app.api.ws_protocol import uvicorn_options
from app.cli import apply_flags, start_message
from app.engine import fast
from app.ops.logs import configure_logging, uvicorn_log_config
from app.ops.metrics import Metrics, RequestMetrics
from app.ops.ratelimit import RateLimit
from app.sessions.manager import SessionCallError, SessionManager
from app.settings import Settings, get_settings
from app.storage import SchemaTooNew, Storage

PROJECT_ROOT = Path(__file__).resolve().parent.parent
TEMPLATES_DIR = PROJECT_ROOT / "templates"
STATIC_DIR = PROJECT_ROOT / "static"

FALLBACK_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>nn-playground</title></head>
<body><h1>nn-playground</h1>
<p>The page is not built yet. The API is at <a href="/docs">/docs</a>.</p></body></html>
"""


def create_app(settings: Settings | None = None) -> FastAPI:
    """The playground app: page, REST API and websocket stream; workers live in the lifespan."""
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # The database (app/storage): created and migrated in a thread, off the event loop.
        storage = Storage(settings)
        try:
            await storage.call(storage.migrate)
            app.state.storage = storage
            manager = SessionManager(settings, app.state.owners, storage)
            await manager.start()
            app.state.manager = manager
            if app.state.freeze_gc_after_start:
                # What the start made (migrations, the manager) lives as long as the process
                # too: out of the collector's sight as well (see run()).
                gc.freeze()
            try:
                yield
            finally:
                await manager.stop()
        finally:
            await asyncio.to_thread(storage.close)

    # /docs is served from vendored Swagger UI assets (a CDN is unreachable offline); no ReDoc.
    app = FastAPI(
        title="nn-playground", version="0.1.0", lifespan=lifespan, docs_url=None, redoc_url=None
    )
    app.state.settings = settings
    app.state.freeze_gc_after_start = False  # run() sets it: tests build many apps per process
    app.add_middleware(BodySizeLimit, settings=settings)
    # Operations (app/ops, docs/operations.md): the rate limiter, then the metrics around
    # everything, so its latency and 429 counts include the limiter's answers.
    configure_logging(settings.log_level)
    app.state.metrics = Metrics(app)
    app.add_middleware(RateLimit, settings=settings)
    app.add_middleware(RequestMetrics, metrics=app.state.metrics)

    # Owners and hosts (docs/protocol.md "Owners, tokens and quotas"): the known owner hashes;
    # a Host allow-list, outermost, so a DNS-rebinding page (Host: evil.example) gets 400 on
    # REST and websocket alike; CORS only for configured origins (closed by default).
    app.state.owners = OwnerRegistry(settings.max_owners)
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST", "PATCH", "DELETE"],
            allow_headers=["Authorization", "Content-Type"],
        )
    app.add_middleware(TrustedHostMiddleware, allowed_hosts=allowed_hosts(settings))
    raw_bodies.install(app)  # request body schemas of the routes that read their body raw
    openapi_fixes.install(app)  # bounds, enums and statuses as the server enforces them

    app.add_exception_handler(SessionCallError, errors.session_call_error)
    app.add_exception_handler(RequestValidationError, errors.validation_error)
    app.add_exception_handler(405, errors.method_not_allowed)
    app.add_exception_handler(HTTPException, errors.http_error)

    # Routers are matched in this order, each route of a router before the next router: the
    # probe and the job polls (84 a second during 42 race steps) first (bench/request_cost.py).
    app.include_router(health.router)
    app.include_router(jobs_routes.router)
    if settings.metrics_enabled:
        app.include_router(metrics.router)
    app.include_router(registry.router)
    app.include_router(datasets.router)
    app.include_router(sessions.router)
    app.include_router(stream.router)
    app.include_router(lessons.router)
    app.include_router(instruments.router)
    app.include_router(races.router)
    app.include_router(timetravel.router)
    app.include_router(classes.router)  # the classroom, /class/{code} (issue 10)
    app.include_router(runs.router)  # saved runs, /r/{slug}, /gallery (issue 10)
    app.include_router(code.router)  # export code, /api/sessions/{id}/code (issue 11)
    if STATIC_DIR.is_dir():
        app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    templates = Jinja2Templates(directory=TEMPLATES_DIR)

    @app.get("/docs", response_class=HTMLResponse, include_in_schema=False)
    async def read_docs() -> HTMLResponse:
        """Swagger UI for the OpenAPI schema, from static/vendor/swagger-ui (works offline)."""
        return get_swagger_ui_html(
            openapi_url="/openapi.json",
            title="nn-playground API",
            swagger_js_url="/static/vendor/swagger-ui/swagger-ui-bundle.js",
            swagger_css_url="/static/vendor/swagger-ui/swagger-ui.css",
            swagger_favicon_url="data:,",
        )

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def read_page(request: Request) -> HTMLResponse:
        """The playground page (templates/index.html)."""
        if (TEMPLATES_DIR / "index.html").is_file():
            return templates.TemplateResponse(request, "index.html")
        return HTMLResponse(FALLBACK_PAGE)

    return app


def allowed_hosts(settings: Settings) -> list[str]:
    """The Host allow-list: allowed_hosts, plus the host we bind when it is a name or address
    (not 0.0.0.0 / ::, which accept any: then list the names clients use in allowed_hosts)."""
    hosts = list(settings.allowed_hosts)
    if settings.host not in ("0.0.0.0", "::", "") and settings.host not in hosts:
        hosts.append(settings.host)
    # A Host header writes an IPv6 address in brackets ("[::1]:8000").
    return hosts + [f"[{h}]" for h in hosts if ":" in h and not h.startswith("[")]


def check_database(settings: Settings) -> None:
    """Migrate the database before serving; a schema newer than this release, or a database
    that cannot be opened, exits with a one-line message instead of uvicorn's traceback."""
    try:
        storage = Storage(settings)
    except OSError as error:
        sys.exit(f"nn-playground: cannot create the data directory {settings.data_dir}: {error}")
    try:
        storage.migrate()
    except SchemaTooNew as error:
        sys.exit(f"nn-playground: {error}")
    except OperationalError as error:  # unreachable server, wrong password, unwritable file
        where = storage.engine.url.render_as_string(hide_password=True)
        sys.exit(f"nn-playground: cannot open the database {where}: {error.orig}")
    finally:
        storage.close()


app = create_app()


def run(argv: Sequence[str] | None = None) -> None:
    """Parse the command line, then serve the playground on the configured host and port."""
    apply_flags(argv)
    get_settings.cache_clear()  # the flags were just exported as NN_PLAYGROUND_* variables
    settings = get_settings()
    # Compile the numba kernel in a child process now (not in create_app: tests build many
    # apps), so the first session trains on the fast path instead of waiting ~10 s for it.
    fast.start_warm_up(load_here=settings.worker_processes == 0)
    check_database(settings)
    print(start_message(settings), flush=True)
    # Everything imported so far (numpy, pydantic, fastapi: ~135,000 objects) lives as long as
    # the process: out of the collector's sight, a full collection takes ~40 ms instead of
    # ~130 ms, the stall /health saw while 100 clients connected at once.
    app = create_app(settings)
    app.state.freeze_gc_after_start = True
    gc.freeze()
    # A bounded websocket send path and message size (app/api/ws_protocol.py).
    uvicorn.run(
        app, host=settings.host, port=settings.port,
        **uvicorn_options(settings),
        log_config=uvicorn_log_config(settings.log_level),  # JSON lines (app/ops/logs.py)
    )
