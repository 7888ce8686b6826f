"""Exception handlers: worker refusals and validation errors as JSON that always encodes."""

import math
from typing import Any

from fastapi import Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from app.sessions.manager import SessionCallError


def _finite(value: Any) -> Any:
    """NaN/inf (echoed back from a bad input) as strings, so the 422 itself is valid JSON."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, list):
        return [_finite(v) for v in value]
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    return value


async def validation_error(request: Request, error: Exception) -> JSONResponse:
    """FastAPI's 422 shape, safe for non-finite inputs."""
    assert isinstance(error, RequestValidationError)
    return JSONResponse({"detail": _finite(jsonable_encoder(error.errors()))}, status_code=422)


async def session_call_error(request: Request, error: Exception) -> JSONResponse:
    """A worker's refusal as the HTTP error it names."""
    assert isinstance(error, SessionCallError)
    detail = error.detail
    if error.status == 422 and isinstance(detail, str):
        detail = [{"loc": ["body"], "msg": detail, "type": "value_error"}]
    return JSONResponse({"detail": _finite(detail)}, status_code=error.status)
