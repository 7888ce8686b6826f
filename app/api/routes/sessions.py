"""Sessions over REST: create, read, update, delete, commands, predict, export/import, CSV."""

import asyncio
from typing import Any

from fastapi import APIRouter, Request, Response, status
from fastapi.responses import PlainTextResponse

from app.api.deps import ManagerDep, SessionDep
from app.api.schemas import (
    Command,
    PredictPublic,
    PredictRequest,
    SessionCreate,
    SessionImport,
    SessionPublic,
    SessionUpdate,
)

ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"description": "Malformed JSON body"},
    404: {"description": "No such session"},
    409: {"description": "Command not allowed in the session's state"},
    422: {"description": "Invalid input: the detail names the field, the value and the limit"},
    429: {"description": "max_sessions sessions exist"},
    503: {"description": "No worker is running"},
    504: {"description": "The worker did not answer within command_timeout_seconds"},
}

router = APIRouter(prefix="/api/sessions", tags=["sessions"], responses=ERRORS)


@router.post("", status_code=status.HTTP_201_CREATED)
async def create_session(config: SessionCreate, manager: ManagerDep) -> SessionPublic:
    """A new paused session from a config (`{}` gives TensorFlow Playground's defaults)."""
    return SessionPublic.model_validate(await manager.create("create", config.model_dump()))


@router.get("")
async def read_sessions(manager: ManagerDep) -> list[SessionPublic]:
    """Every live session."""
    replies = await asyncio.gather(
        *(manager.call(session_id, "get") for session_id in list(manager.handles)),
        return_exceptions=True,
    )
    # A session removed while we asked is simply not listed.
    return [SessionPublic.model_validate(r) for r in replies if not isinstance(r, BaseException)]


@router.post(
    "/import",
    status_code=status.HTTP_201_CREATED,
    openapi_extra={"requestBody": {
        "required": True,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/SessionExport"}}},
    }},
)
async def create_imported_session(request: Request, manager: ManagerDep) -> SessionPublic:
    """A new session from an export (SessionExport); it continues bit-identically.

    The body goes to the worker as raw bytes: a long history is megabytes of JSON, parsed and
    validated there rather than on the event loop.
    """
    body = await request.body()
    return SessionPublic.model_validate(await manager.create("import", body))


@router.get("/{session_id}")
async def read_session(handle: SessionDep, manager: ManagerDep) -> SessionPublic:
    """The session's state, config and latest metrics."""
    return SessionPublic.model_validate(await manager.call(handle.session_id, "get"))


@router.patch("/{session_id}")
async def update_session(
    handle: SessionDep, changes: SessionUpdate, manager: ManagerDep
) -> SessionPublic:
    """Change config fields (hyper-parameters keep the weights; others rebuild)."""
    payload = changes.model_dump(exclude_unset=True)
    return SessionPublic.model_validate(await manager.call(handle.session_id, "update", payload))


@router.delete("/{session_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_session(handle: SessionDep, manager: ManagerDep) -> Response:
    """Remove the session; its websocket clients get {"type": "removed"}."""
    await manager.delete(handle.session_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post("/{session_id}/commands")
async def create_command(
    handle: SessionDep, command: Command, manager: ManagerDep
) -> SessionPublic | PredictPublic:
    """Run a command; `step` answers once its epochs are done (or it was interrupted)."""
    payload = command_payload(command)
    payload["wait"] = True
    result = await manager.call(handle.session_id, "command", payload)
    if command.type == "predict":
        return PredictPublic.model_validate(result)
    return SessionPublic.model_validate(result)


@router.post("/{session_id}/predict")
async def create_prediction(
    handle: SessionDep, request: PredictRequest, manager: ManagerDep
) -> PredictPublic:
    """The model's outputs at the given points."""
    outputs = await manager.call(handle.session_id, "predict", request.points)
    return PredictPublic(outputs=outputs)


@router.get("/{session_id}/export", response_model=SessionImport)
async def read_session_export(handle: SessionDep, manager: ManagerDep) -> Response:
    """The whole session as JSON: config, weights, optimizer and rng state, history.

    The worker writes the JSON itself (exact floats, repr precision): nothing heavy on the loop.
    """
    body = await manager.call(handle.session_id, "export_json")
    return Response(body, media_type="application/json")


@router.get("/{session_id}/data.csv", response_class=PlainTextResponse,
            responses={200: {"content": {"text/csv": {}}}})
async def read_session_data(handle: SessionDep, manager: ManagerDep) -> PlainTextResponse:
    """The session's points as CSV (x1,x2,label; train rows then test rows)."""
    text = await manager.call(handle.session_id, "data_csv")
    return PlainTextResponse(text, media_type="text/csv")


def command_payload(command: Any) -> dict[str, Any]:
    """A validated command as the plain dict the worker expects."""
    payload: dict[str, Any] = command.model_dump(exclude_unset=False)
    if command.type == "set":
        payload["config"] = command.config.model_dump(exclude_unset=True)
    payload.pop("id", None)
    return payload
