"""Sessions over REST: create, read, update, delete, commands, predict, export/import, CSV.

Owners (docs/protocol.md "Owners, tokens and quotas"): a create returns an `owner_token`;
changing or copying a session needs it (`Authorization: Bearer`); anyone with the id may read
it. Bodies that may be megabytes (create, PATCH, commands, predict, import) are read raw and
validated in the worker (app/sessions/bodies.py), never parsed on the event loop.
"""

import asyncio
import json
import math
from collections.abc import Awaitable
from typing import Annotated, Any, Literal, TypeVar

from fastapi import APIRouter, Query, Request, Response, status
from fastapi.exceptions import RequestValidationError
from fastapi.responses import PlainTextResponse
from pydantic import BaseModel, Field

from app.api.deps import CallerDep, CreatorDep, ManagerDep, OwnedSessionDep, SessionDep
from app.api.raw_bodies import raw_body
from app.api.routes.jobs import ACCEPTED, command_answer
from app.api.schemas import (
    Command,
    MetricsPublic,
    PredictPublic,
    PredictRequest,
    SessionCreate,
    SessionImport,
    SessionPublic,
    SessionUpdate,
)
from app.sessions.bodies import RAW, command_dict
from app.sessions.config import SessionConfig
from app.sessions.export_binary import MEDIA_TYPE as COMPACT_TYPE
from app.sessions.export_binary import SUFFIX as COMPACT_SUFFIX
from app.sessions.manager import SessionCallError
from app.storage import Storage
from app.storage.store import StoredRow

ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"description": "Malformed JSON body"},
    404: {"description": "No such session"},
    409: {"description": "Command not allowed in the session's state"},
    422: {"description": "Invalid input: the detail names the field, the value and the limit"},
    429: {"description": "A quota (max_sessions, max_sessions_per_owner, "
                         "max_sessions_per_address, max_running_per_owner, "
                         "max_running_per_address) is reached; see Retry-After"},
    503: {"description": "No worker is running"},
    504: {"description": "The worker did not answer within command_timeout_seconds"},
}
OWNER_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"description": "No owner token (Authorization: Bearer <owner_token>)"},
    403: {"description": "The session belongs to another owner"},
}
CREATE_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"description": "Authorization is malformed or names a token this server did not issue"},
}

router = APIRouter(prefix="/api/sessions", tags=["sessions"], responses=ERRORS)
T = TypeVar("T")


class SessionCreated(SessionPublic):
    """A new session, and the owner token that changes it (the one presented, or a new one).

    Keep the token: it is shown once, and only its hash is stored.
    """

    owner_token: str


async def validated_in_worker(call: Awaitable[T]) -> T:
    """A worker call on a raw body; its pydantic errors become FastAPI's own 422 (or 400 for
    malformed JSON, as errors.py answers), located in the body, never echoing the input."""
    try:
        return await call
    except SessionCallError as error:
        if error.status == 422 and isinstance(error.detail, list):
            raise RequestValidationError(
                [{**e, "loc": ["body", *e.get("loc", [])]} for e in error.detail]
            ) from None
        raise


def created(public: dict[str, Any], creator: Any) -> SessionCreated:
    """The create answer: the session plus its owner token."""
    return SessionCreated.model_validate({**public, "owner_token": creator.token})


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    responses=CREATE_ERRORS,
    openapi_extra=raw_body("/api/sessions", "post", SessionCreate),
)
async def create_session(
    request: Request, creator: CreatorDep, manager: ManagerDep
) -> SessionCreated:
    """A new paused session from a config (`{}` gives TensorFlow Playground's defaults).

    Without `Authorization` a new owner token is issued; with one, the session joins that
    owner's (quotas: max_sessions_per_owner, max_sessions_per_address).
    """
    body = await request.body()
    public = await validated_in_worker(
        manager.create("create", body, creator.token_hash, creator.address)
    )
    return created(public, creator)


class LiveSessionListed(SessionPublic):
    """One of the caller's sessions in memory (a worker holds it)."""

    state: Literal["live"] = "live"


class StoredSessionListed(BaseModel):
    """One of the caller's sessions that idle expiry stored in the database: any request to
    it (GET /api/sessions/{id}, its websocket...) restores it, paused."""

    id: str
    state: Literal["stored"] = "stored"
    status: Literal["paused", "finished", "diverged"]  # as it comes back (running: paused)
    status_reason: str | None
    epoch: int
    config: SessionConfig
    metrics: MetricsPublic
    updated_at: float  # Unix seconds of its last checkpoint
    ws_url: str


SessionListed = Annotated[LiveSessionListed | StoredSessionListed, Field(discriminator="state")]


def stored_listed(storage: Storage, owner: str, ids: list[str]) -> list[dict[str, Any]]:
    """The caller's stored sessions among `ids` as StoredSessionListed dicts (in a database
    thread: it reads the rows and parses their snapshots)."""
    listed = []
    for row in storage.stored_sessions(owner, ids):
        try:
            snapshot = json.loads(row.snapshot)
            config = SessionConfig.model_validate(snapshot["config"])
        except (ValueError, KeyError, TypeError):
            continue  # a row this release cannot read is not listed (nor restorable)
        accuracy = config.resolved_problem() != "regression"

        def metric(name: str, row: StoredRow = row) -> float | None:
            value = row.last.get(name)
            return value if value is not None and math.isfinite(value) else None

        listed.append({
            "id": row.session_id,
            "state": "stored",
            "status": "paused" if row.status == "running" else row.status,
            "status_reason": snapshot.get("status_reason"),
            "epoch": row.epoch,
            "config": config,
            "metrics": {
                "train_loss": metric("train_loss"),
                "test_loss": metric("test_loss"),
                "train_accuracy": metric("train_metric") if accuracy else None,
                "test_accuracy": metric("test_metric") if accuracy else None,
            },
            "updated_at": row.updated_at,
            "ws_url": f"/ws/sessions/{row.session_id}",
        })
    return listed


@router.get("")
async def read_sessions(caller: CallerDep, manager: ManagerDep) -> list[SessionListed]:
    """The caller's own sessions (those of the presented owner token; [] without one): the
    live ones (`state` "live", oldest first), then those idle expiry stored in the database
    (`state` "stored", most recently checkpointed first), which come back on their next
    request."""
    owner = caller.token_hash
    if owner is None:
        return []
    replies = await asyncio.gather(
        *(manager.call(session_id, "get") for session_id in manager.sessions_of(owner)),
        return_exceptions=True,
    )
    # A session removed while we asked is simply not listed.
    listed: list[SessionListed] = [
        LiveSessionListed.model_validate(r) for r in replies if not isinstance(r, BaseException)
    ]
    persistence = manager.persistence
    if persistence is not None:
        live = {entry.id for entry in listed}
        ids = [s for s, o in list(persistence.stored.items()) if o == owner and s not in live]
        if ids:
            rows = await persistence.storage.call(stored_listed, persistence.storage, owner, ids)
            listed += [StoredSessionListed.model_validate(r) for r in rows]
    return listed


@router.post(
    "/import",
    status_code=status.HTTP_201_CREATED,
    responses=CREATE_ERRORS,
    openapi_extra={"requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": {"$ref": "#/components/schemas/SessionExport"}},
            COMPACT_TYPE: {"schema": {"type": "string", "format": "binary"}},
        },
    }},
)
async def create_imported_session(
    request: Request, creator: CreatorDep, manager: ManagerDep
) -> SessionCreated:
    """A new session from an export (SessionExport JSON, or the compact format, told apart by
    its gzip magic bytes); it continues bit-identically.

    The body goes to the worker as raw bytes: a long history is megabytes, parsed and
    validated there rather than on the event loop (both formats within max_import_bytes).
    """
    body = await request.body()
    public = await manager.create("import", body, creator.token_hash, creator.address)
    return created(public, creator)


@router.get("/{session_id}")
async def read_session(handle: SessionDep, manager: ManagerDep) -> SessionPublic:
    """The session's state, config and latest metrics (anyone with the id may read it)."""
    return SessionPublic.model_validate(await manager.call(handle.session_id, "get"))


@router.patch(
    "/{session_id}",
    responses=OWNER_ERRORS,
    openapi_extra=raw_body("/api/sessions/{session_id}", "patch", SessionUpdate),
)
async def update_session(
    handle: OwnedSessionDep, request: Request, manager: ManagerDep
) -> SessionPublic:
    """Change config fields (hyper-parameters keep the weights; others rebuild). Owner only."""
    body = await request.body()
    reply = await validated_in_worker(manager.call(handle.session_id, "update", body))
    return SessionPublic.model_validate(reply)


@router.delete(
    "/{session_id}", status_code=status.HTTP_204_NO_CONTENT, responses=OWNER_ERRORS
)
async def delete_session(handle: OwnedSessionDep, manager: ManagerDep) -> Response:
    """Remove the session; its websocket clients get {"type": "removed"}. Owner only."""
    await manager.delete(handle.session_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post(
    "/{session_id}/commands",
    responses={**OWNER_ERRORS, **ACCEPTED},
    openapi_extra=raw_body("/api/sessions/{session_id}/commands", "post", Command),
)
async def create_command(
    handle: OwnedSessionDep, request: Request, manager: ManagerDep
) -> SessionPublic | PredictPublic:
    """Run a command; `step` answers once its epochs are done (or it was interrupted).

    Owner only; `play`/`step` count against max_running_per_owner and max_running_per_address.
    """
    payload = {RAW: await request.body(), "wait": True}
    # A `step` is a job (docs/protocol.md "Jobs"): its answer, or 202 after job_wait_seconds.
    result = await validated_in_worker(
        command_answer(manager, handle.session_id, handle.owner, payload)
    )
    if isinstance(result, Response):
        return result  # type: ignore[return-value]
    if isinstance(result, dict) and "outputs" in result:
        return PredictPublic.model_validate(result)
    return SessionPublic.model_validate(result)


@router.post(
    "/{session_id}/predict",
    responses=OWNER_ERRORS,
    openapi_extra=raw_body("/api/sessions/{session_id}/predict", "post", PredictRequest),
)
async def create_prediction(
    handle: OwnedSessionDep, request: Request, manager: ManagerDep
) -> PredictPublic:
    """The model's outputs at the given points. Owner only."""
    body = await request.body()
    outputs = await validated_in_worker(manager.call(handle.session_id, "predict", body))
    return PredictPublic(outputs=outputs)


@router.get(
    "/{session_id}/export", response_model=SessionImport,
    responses={**OWNER_ERRORS, 200: {"content": {COMPACT_TYPE: {}}, "description": (
        "The export: JSON (SessionExport), or with format=compact the compact format "
        "(docs/protocol.md \"Export and import\")")}},
)
async def read_session_export(
    handle: OwnedSessionDep, manager: ManagerDep,
    format: Literal["json", "compact"] = Query(
        "json", description="json: SessionExport; compact: gzip'd, the history as float64 "
        "columns (~3x smaller; what the page downloads)"),
) -> Response:
    """The whole session: config, weights, optimizer and rng state, history. Owner only.

    The worker writes it itself (JSON with exact floats, or the compact binary columns):
    nothing heavy on the loop.
    """
    if format == "compact":
        body = await manager.call(handle.session_id, "export_compact")
        return Response(body, media_type=COMPACT_TYPE, headers={
            "Content-Disposition": f'attachment; filename="{handle.session_id}{COMPACT_SUFFIX}"'
        })
    body = await manager.call(handle.session_id, "export_json")
    return Response(body, media_type="application/json")


@router.get("/{session_id}/data.csv", response_class=PlainTextResponse,
            responses={200: {"content": {"text/csv": {}}}, **OWNER_ERRORS})
async def read_session_data(handle: OwnedSessionDep, manager: ManagerDep) -> PlainTextResponse:
    """The session's points as CSV (x1,x2,label; train rows then test rows). Owner only."""
    text = await manager.call(handle.session_id, "data_csv")
    return PlainTextResponse(text, media_type="text/csv")


def command_payload(command: Any) -> dict[str, Any]:
    """A validated command as the plain dict the worker expects (the websocket's commands)."""
    return command_dict(command)
