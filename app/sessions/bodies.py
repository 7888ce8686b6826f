"""Request bodies parsed and validated in the worker, not on the web process's event loop.

A 3.9 MB `POST /api/sessions` took 4 s of `json.loads` and pydantic, holding the GIL, so a
thread would not have helped: the REST routes send the raw bytes and the worker (a process)
turns them into the plain values its operations already take. Errors are pydantic's
ValidationError, which the worker answers as FastAPI's 422 shape without the input.
"""

from __future__ import annotations

from typing import Any

from pydantic import TypeAdapter

from app.api.schemas import Command, PredictRequest
from app.sessions.config import SessionConfig, SessionConfigUpdate
from app.sessions.export_binary import import_compact, is_compact

COMMANDS: TypeAdapter[Any] = TypeAdapter(Command)
RAW = "raw"  # a command payload {"raw": <bytes>, **extra}: the body plus the server's own keys


def command_dict(command: Any) -> dict[str, Any]:
    """A validated command as the plain dict the worker expects (its `id` dropped)."""
    payload: dict[str, Any] = command.model_dump(exclude_unset=False)
    if command.type == "set":
        payload["config"] = command.config.model_dump(exclude_unset=True)
    payload.pop("id", None)
    return payload


def decode(op: str, payload: Any) -> Any:
    """The payload of `op` as the worker takes it: raw JSON bytes parsed and validated here.

    create: a SessionConfig; update: the set fields of a SessionConfigUpdate; predict: the
    points; import in the compact format (export_binary.py): a SessionExport (a JSON import
    stays bytes: the worker validates it); command: {"raw": bytes, ...} -> the command's dict
    plus the other keys. Anything else (already validated by the web process, e.g. a
    websocket command) is returned as is.
    """
    if isinstance(payload, bytes):
        if op == "import" and is_compact(payload):
            return import_compact(payload)  # a SessionExport (the worker validates JSON itself)
        if op == "create":
            return SessionConfig.model_validate_json(payload)
        if op == "update":
            return SessionConfigUpdate.model_validate_json(payload).model_dump(exclude_unset=True)
        if op == "predict":
            return PredictRequest.model_validate_json(payload).points
    if op == "command" and isinstance(payload, dict) and isinstance(payload.get(RAW), bytes):
        extra = {k: v for k, v in payload.items() if k != RAW}
        return {**command_dict(COMMANDS.validate_json(payload[RAW])), **extra}
    return payload
