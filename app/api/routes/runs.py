"""Saved runs: immutable snapshots behind a share link, the gallery, and their pages.

`POST /api/sessions/{id}/runs` (the session's owner) stores a snapshot: the worker writes the
full export (gzip), the summary and a boundary thumbnail (app/runs/snapshot.py); the row goes
into the `runs` table (app/storage/runs.py) through a database thread. A run never changes:
`GET /api/runs/{slug}` returns it whole, `/r/{slug}` opens the page on it (its first frame is
built by a worker from the export, a transient session nobody can command, and kept in a
bounded cache), `POST /api/runs/{slug}/fork` continues it as a new session of the caller's own,
bit-identically. `GET /api/runs` and `/gallery` list the public ones, best test loss first.
"""

from __future__ import annotations

import asyncio
import base64
import gzip
import html
import json
import re
import secrets
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Query, Request, Response, status
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates
from pydantic import BaseModel, ConfigDict, Field, field_validator

from app.api.deps import (
    CallerDep,
    CreatorDep,
    ManagerDep,
    OwnedSessionDep,
    SettingsDep,
    require_owner,
)
from app.api.routes.sessions import CREATE_ERRORS, OWNER_ERRORS, SessionCreated, created
from app.datasets import DATASETS
from app.sessions.config import Boolean, at_most
from app.sessions.export import SessionExport
from app.sessions.manager import SessionCallError, SessionManager
from app.settings import Settings, get_settings
from app.storage import runs as queries

TEMPLATES = Jinja2Templates(directory=Path(__file__).resolve().parents[3] / "templates")
SLUG = re.compile(r"^[A-Za-z0-9_-]{1,16}$")
SLUG_BYTES = 9  # secrets.token_urlsafe(9): 12 characters, 72 random bits
GZIP_LEVEL = 1  # of the stored export: see create_run
Problem = Literal["binary", "multiclass", "regression"]
Sort = Literal["test_loss", "created", "epochs"]
DATASET_NAMES = [*DATASETS, "user"]

ERRORS: dict[int | str, dict[str, Any]] = {
    404: {"description": "No such run (or session)"},
    422: {"description": "Invalid input: the detail names the field, the value and the limit"},
    503: {"description": "No worker is running"},
}
RUN_QUOTA: dict[int | str, dict[str, Any]] = {
    409: {"description": "The session diverged (its weights are not finite): nothing to save"},
    429: {"description": "max_runs_per_owner is reached (delete a run); see Retry-After"},
}

router = APIRouter(tags=["runs"], responses=ERRORS)
NOT_FOUND_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Run not found · nn-playground</title>
<link rel="stylesheet" href="/static/css/playground.css"></head>
<body><header class="masthead"><h1>nn-playground</h1></header>
<main style="padding: 24px"><h2>This run does not exist</h2><p>{detail}. Its owner may have
deleted it.</p><p><a href="/gallery">Browse the gallery</a> or <a href="/">open the
playground</a>.</p></main></body></html>
"""


class RunCreate(BaseModel):
    """What the saver chooses: a title (blank: one is made up) and whether the gallery lists it."""

    model_config = ConfigDict(extra="forbid")

    title: str = Field(default="", json_schema_extra=at_most("max_run_title_chars", "maxLength"))
    public: Boolean = False

    @field_validator("title")
    @classmethod
    def _title_fits(cls, title: str) -> str:
        limit = get_settings().max_run_title_chars
        if len(title) > limit:
            raise ValueError(f"title is {len(title)} characters; max_run_title_chars = {limit}")
        return " ".join(title.split())  # one line: no newlines or runs of spaces


class Thumbnail(BaseModel):
    """The decision boundary, size x size uint8 row-major (row 0 at the top), base64.

    binary: 255 * P(class 1); regression: the prediction in [-1, 1] mapped to 0..255;
    multiclass: the predicted class index.
    """

    size: int
    base64: str


class RunSummary(BaseModel):
    """A saved run as the gallery lists it."""

    slug: str
    url: str
    title: str
    public: bool
    dataset: str
    problem: str
    shape: str
    parameters: int
    epochs: int
    optimizer: str
    train_loss: float | None
    test_loss: float | None
    created_at: float
    thumbnail: Thumbnail


class RunPublic(RunSummary):
    """A saved run whole: its summary and the export it continues from."""

    export: SessionExport


# ---- helpers ---------------------------------------------------------------------------------


def storage_of(request: Request) -> Any:
    """The app's Storage (app/storage, created in the lifespan)."""
    return request.app.state.storage


def summary_of(row: dict[str, Any]) -> dict[str, Any]:
    """A runs row's summary columns as RunSummary's dict."""
    thumbnail = {"size": row["thumbnail_size"],
                 "base64": base64.b64encode(row["thumbnail"]).decode()}
    fields = {k: v for k, v in row.items() if k not in ("thumbnail", "thumbnail_size")}
    return {**fields, "url": f"/r/{row['slug']}", "thumbnail": thumbnail}


def not_found(slug: str) -> HTTPException:
    """404 naming the slug (a long one only by its length: never echo a large input)."""
    shown = repr(slug) if len(slug) <= 16 else f"of {len(slug)} characters"
    return HTTPException(404, f"run {shown} not found (slugs are 12 characters)")


async def read_row(request: Request, slug: str, with_export: bool) -> queries.RunRow:
    """The run of `slug` from the database (a thread), or 404."""
    if not SLUG.match(slug):
        raise not_found(slug)
    storage = storage_of(request)
    row: queries.RunRow | None = await storage.call(
        queries.read_run, storage.engine, slug, with_export
    )
    if row is None:
        raise not_found(slug)
    return row


def query_error(
    name: str, value: Any, message: str, where: str = "query"
) -> RequestValidationError:
    """FastAPI's 422 shape for a query (or path) parameter, naming it, its value and the limit."""
    return RequestValidationError(
        [{"loc": [where, name], "msg": message, "type": "value_error", "input": value}]
    )


def default_title(record: dict[str, Any]) -> str:
    """e.g. "circle 2-4-2-1, 300 epochs (adam)"."""
    return (f"{record['dataset']} {record['shape']}, {record['epochs']} epochs "
            f"({record['optimizer']})")


# ---- REST ------------------------------------------------------------------------------------


@router.post(
    "/api/sessions/{session_id}/runs",
    status_code=status.HTTP_201_CREATED,
    responses={**OWNER_ERRORS, **RUN_QUOTA},
)
async def create_run(
    handle: OwnedSessionDep, body: RunCreate, request: Request, manager: ManagerDep,
    settings: SettingsDep,
) -> RunSummary:
    """Save the session as it is now: an immutable run behind `/r/{slug}`. Owner only.

    Quota: max_runs_per_owner runs per owner token (429 with Retry-After).
    """
    storage = storage_of(request)
    held = await storage.call(queries.count_runs, storage.engine, handle.owner)
    if held >= settings.max_runs_per_owner:  # before the worker builds anything
        raise manager.quota_error(
            f"this owner has {held} saved runs; max_runs_per_owner = "
            f"{settings.max_runs_per_owner} (delete one: DELETE /api/runs/{{slug}})"
        )
    # Built by a worker job in slices (RunSaveJob): its other sessions keep training. It
    # stops when this call would time out anyway.
    record: dict[str, Any] = await manager.call(handle.session_id, "run", {
        "kind": "snapshot", "thumbnail_size": settings.run_thumbnail_size,
        "extent": settings.grid_extent, "max_seconds": settings.command_timeout_seconds,
    })
    # Level 1: 0.5 s and 6.4 MB for a 100,000-epoch export of 14.6 MB (level 6: 2.7 s, 5.9 MB).
    record["export"] = await asyncio.to_thread(
        gzip.compress, record.pop("export_json"), GZIP_LEVEL, mtime=0
    )
    if len(record["export"]) > settings.max_run_bytes:
        raise query_error("session_id", handle.session_id, (
            f"the session's export is {len(record['export'])} bytes compressed; "
            f"max_run_bytes = {settings.max_run_bytes} (a shorter run fits)"
        ), "path")
    record.update(
        owner_hash=handle.owner, source_session=handle.session_id,
        title=body.title or default_title(record), public=body.public, created_at=time.time(),
    )
    for _ in range(3):  # a slug collision (72 random bits) is retried with a new slug
        record["slug"] = secrets.token_urlsafe(SLUG_BYTES)
        held = await storage.call(
            queries.insert_run, storage.engine, record, settings.max_runs_per_owner
        )
        if held is None:
            break
        if held >= 0:
            raise manager.quota_error(
                f"this owner has {held} saved runs; max_runs_per_owner = "
                f"{settings.max_runs_per_owner} (delete one: DELETE /api/runs/{{slug}})"
            )
    else:
        raise HTTPException(503, "could not find a free slug; try again")
    columns = {name: record[name] for name in queries.SUMMARY_COLUMNS}
    return RunSummary.model_validate(summary_of(columns))


@router.get("/api/runs")
async def read_runs(
    request: Request,
    settings: SettingsDep,
    dataset: Annotated[str | None, Query(json_schema_extra={"enum": DATASET_NAMES})] = None,
    problem: Problem | None = None,
    sort: Sort = "test_loss",
    limit: Annotated[int, Query(ge=1, json_schema_extra=at_most("max_gallery_runs"))] = 50,
    offset: Annotated[int, Query(ge=0, json_schema_extra=at_most("max_gallery_offset"))] = 0,
) -> list[RunSummary]:
    """Public runs, lowest test loss first (or newest, or most epochs); filter by dataset and
    problem. Unlisted runs are never listed: only their link reaches them."""
    if dataset is not None and dataset not in DATASET_NAMES:
        raise query_error("dataset", dataset[:40], f"unknown dataset; expected one of: "
                          f"{', '.join(DATASET_NAMES)}")
    if limit > settings.max_gallery_runs:
        raise query_error("limit", limit, f"limit = {limit} exceeds max_gallery_runs = "
                          f"{settings.max_gallery_runs}")
    if offset > settings.max_gallery_offset:
        raise query_error("offset", offset, f"offset = {offset} exceeds max_gallery_offset = "
                          f"{settings.max_gallery_offset}")
    storage = storage_of(request)
    rows = await storage.call(
        queries.list_runs, storage.engine, dataset, problem, sort, limit, offset
    )
    return [RunSummary.model_validate(summary_of(row)) for row in rows]


@router.get("/api/runs/{slug}", response_model=RunPublic)
async def read_run(request: Request, slug: str) -> Response:
    """The run whole: summary, thumbnail and `export` (config, weights, optimizer and rng
    state, the whole history), which POST /api/sessions/import continues bit-identically."""
    row = await read_row(request, slug, with_export=True)
    assert row.export is not None
    summary = summary_of(row.summary)
    # The export's JSON goes in as saved (no parse: its 128-bit rng states stay exact, and a
    # long history costs no event-loop time); gunzip in a thread.
    exported = await asyncio.to_thread(gzip.decompress, row.export)
    head = json.dumps(summary, allow_nan=False).encode()
    return Response(head[:-1] + b', "export": ' + exported + b"}",
                    media_type="application/json")


@router.get(
    "/api/runs/{slug}/view",
    responses={200: {"content": {"application/octet-stream": {}},
                     "description": "hello JSON then the full-history frame, each prefixed "
                                    "by its 4-byte big-endian length"}},
    response_class=Response,
)
async def read_run_view(request: Request, slug: str, manager: ManagerDep) -> Response:
    """What the page draws at once for `/r/{slug}`: a hello (the run, SessionPublic) and the
    websocket's full-history frame (grids, weights, every epoch's losses and gradient norms),
    built by a worker from the saved export; no training."""
    cache: ViewCache = view_cache(request)
    body = cache.get(slug)
    if body is None:
        body = await cache.build(slug, lambda: build_view(request, manager, slug))
    return Response(body, media_type="application/octet-stream",
                    headers={"Cache-Control": "public, max-age=3600, immutable"})


@router.post(
    "/api/runs/{slug}/fork",
    status_code=status.HTTP_201_CREATED,
    responses=CREATE_ERRORS,
)
async def create_fork(
    request: Request, slug: str, creator: CreatorDep, manager: ManagerDep
) -> SessionCreated:
    """Continue the run: a new paused session of the caller's own (a new owner token without
    `Authorization`) at the run's epoch, weights, optimizer and rng state; trained n epochs it
    equals the original trained n more. Quotas as any create."""
    row = await read_row(request, slug, with_export=True)
    assert row.export is not None
    exported = await asyncio.to_thread(gzip.decompress, row.export)
    public = await manager.create("import", exported, creator.token_hash, creator.address)
    return created(public, creator)


@router.delete(
    "/api/runs/{slug}", status_code=status.HTTP_204_NO_CONTENT, responses=OWNER_ERRORS
)
async def delete_run(request: Request, slug: str, caller: CallerDep) -> Response:
    """Delete a saved run (its link stops working). Its owner only."""
    row = await read_row(request, slug, with_export=False)
    require_owner(caller, row.owner_hash, f"run {slug!r}")
    storage = storage_of(request)
    await storage.call(queries.delete_run, storage.engine, slug)
    view_cache(request).drop(slug)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


# ---- the view: a worker builds it, a bounded cache keeps it ----------------------------------


class ViewCache:
    """Built views by slug, least recently used out first, at most `budget` bytes in all.

    A run never changes, so a cached view is never stale (a deleted run's is dropped). Builds
    cost a worker up to ~1 s for a 100,000-epoch run: concurrent requests for one slug share
    one build, and at most `builds` run at once (a crowd of cold links waits its turn instead
    of filling every worker).
    """

    def __init__(self, budget: int, builds: int) -> None:
        self.budget = budget
        self.items: OrderedDict[str, bytes] = OrderedDict()
        self.size = 0
        self.building: dict[str, asyncio.Future[bytes]] = {}  # builds under way, by slug
        self.slots = asyncio.Semaphore(max(1, builds))
        self.dropped: set[str] = set()  # deleted while their view was being built

    async def build(self, slug: str, make: Callable[[], Awaitable[bytes]]) -> bytes:
        """The view of `slug` from `make()`, shared with concurrent callers, then kept.

        The build is a task of its own: a caller that goes away does not cancel it for the
        others (each awaits it shielded).
        """
        task = self.building.get(slug)
        if task is None:
            task = asyncio.ensure_future(self._build(slug, make))
            # Its error is read even when every caller went away (no "never retrieved").
            task.add_done_callback(lambda done: done.cancelled() or done.exception())
            self.building[slug] = task
        return await asyncio.shield(task)

    async def _build(self, slug: str, make: Callable[[], Awaitable[bytes]]) -> bytes:
        try:
            async with self.slots:
                body = await make()
            if slug in self.dropped:  # its run was deleted while it was built: do not keep it
                self.dropped.discard(slug)
            else:
                self.put(slug, body)
            return body
        finally:
            del self.building[slug]

    def get(self, slug: str) -> bytes | None:
        """The view of `slug`, if kept."""
        body = self.items.get(slug)
        if body is not None:
            self.items.move_to_end(slug)
        return body

    def put(self, slug: str, body: bytes) -> None:
        """Keep a view when it fits the budget, dropping the least recently used ones."""
        if len(body) > self.budget:
            return
        self._forget(slug)
        self.items[slug] = body
        self.size += len(body)
        while self.size > self.budget:
            _, old = self.items.popitem(last=False)
            self.size -= len(old)

    def drop(self, slug: str) -> None:
        """Forget a view (its run was deleted), also one being built now."""
        if slug in self.building:
            self.dropped.add(slug)
        self._forget(slug)

    def _forget(self, slug: str) -> None:
        body = self.items.pop(slug, None)
        if body is not None:
            self.size -= len(body)


def view_cache(request: Request) -> ViewCache:
    """The app's view cache, made on first use (on the event loop, so only once)."""
    cache: ViewCache | None = getattr(request.app.state, "run_views", None)
    if cache is None:
        settings: Settings = request.app.state.settings
        cache = ViewCache(settings.run_view_cache_bytes, settings.max_run_view_builds)
        request.app.state.run_views = cache
    return cache


async def build_view(request: Request, manager: SessionManager, slug: str) -> bytes:
    """The view's bytes, from the idlest worker (a transient session, never registered)."""
    row = await read_row(request, slug, with_export=True)
    summary = summary_of(row.summary)
    live = [w for w in manager.workers if w.alive]
    if not live:
        raise SessionCallError(503, "no worker is running")
    worker = min(live, key=lambda w: w.sessions)
    view: bytes = await manager.request(worker, "run", f"run-{row.slug}", {
        "kind": "view", "export": row.export, "session_id": f"run-{row.slug}", "run": summary,
    })
    return view


# ---- pages -----------------------------------------------------------------------------------


@router.get("/r/{slug}", response_class=HTMLResponse, include_in_schema=False)
async def read_run_page(request: Request, slug: str) -> HTMLResponse:
    """The playground page on a saved run (static/js/run_view.js draws it; 404 when unknown)."""
    try:
        await read_row(request, slug, with_export=False)
    except HTTPException as error:
        # A person followed the link: a page that says so (the API answers JSON).
        return HTMLResponse(NOT_FOUND_PAGE.format(detail=html.escape(str(error.detail))), 404)
    return TEMPLATES.TemplateResponse(request, "index.html")


@router.get("/gallery", response_class=HTMLResponse, include_in_schema=False)
async def read_gallery_page(request: Request) -> HTMLResponse:
    """The gallery of public runs (templates/gallery.html, static/js/gallery.js)."""
    return TEMPLATES.TemplateResponse(request, "gallery.html")
