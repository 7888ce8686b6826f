"""Exception handlers: worker refusals and validation errors as short JSON that always encodes.

A 422 never echoes a large input: strings are cut to a short prefix, containers are summarised
(a 3.6 MB `points` list once came back whole). Malformed JSON is a 400, as docs/protocol.md says.
"""

import math
from typing import Any

from fastapi import Request
from fastapi.encoders import jsonable_encoder
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException
from starlette.routing import Match

from app.sessions.manager import SessionCallError

MAX_ECHO_CHARS = 64  # of a string input echoed in a 422
MAX_ECHO_ITEMS = 8  # items of a list or dict input echoed in a 422 (else a summary)
MAX_MESSAGE_CHARS = 500  # of an error message (ours may quote the value)
MAX_ERRORS = 20  # entries of a 422's detail (20,000 bad rows are 20 entries and a count)


def _finite(value: Any) -> Any:
    """NaN/inf (echoed back from a bad input) as strings, so the 422 itself is valid JSON."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, list):
        return [_finite(v) for v in value]
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    return value


def _text(value: str, limit: int) -> str:
    """A string cut to `limit` characters, encodable as UTF-8 whatever it holds."""
    if len(value) > limit:
        value = f"{value[:limit]}... ({len(value)} characters)"
    return value.encode("utf-8", "backslashreplace").decode("utf-8")


def short_echo(value: Any, depth: int = 0) -> Any:
    """A bounded copy of an input: short strings and small containers, else a summary string."""
    if isinstance(value, str):
        return _text(value, MAX_ECHO_CHARS)
    if isinstance(value, bool | int | float) or value is None:
        return _finite(value)
    if isinstance(value, list | tuple | dict):
        if depth >= 2 or len(value) > MAX_ECHO_ITEMS:
            return f"<{type(value).__name__} of {len(value)} items>"
        if isinstance(value, dict):
            return {_text(str(k), MAX_ECHO_CHARS): short_echo(v, depth + 1)
                    for k, v in value.items()}
        return [short_echo(v, depth + 1) for v in value]
    return _text(str(value), MAX_ECHO_CHARS)


def short_errors(errors: Any) -> list[dict[str, Any]]:
    """Pydantic/FastAPI error entries with bounded `input`, `msg` and `loc`."""
    shown = []
    errors = list(errors)
    for error in errors[:MAX_ERRORS]:
        entry = {
            "loc": [p if isinstance(p, int) else _text(str(p), MAX_ECHO_CHARS)
                    for p in error.get("loc", ())],
            "msg": _text(str(error.get("msg", "")), MAX_MESSAGE_CHARS),
            "type": str(error.get("type", "value_error")),
        }
        if "input" in error:
            entry["input"] = short_echo(error["input"])
        if error.get("ctx"):
            entry["ctx"] = short_echo(jsonable_encoder(error["ctx"], custom_encoder={
                Exception: str, ValueError: str,
            }))
        shown.append(entry)
    if len(errors) > MAX_ERRORS:
        shown.append({"loc": [], "msg": f"... and {len(errors) - MAX_ERRORS} more errors "
                      f"(the first {MAX_ERRORS} are listed)", "type": "too_many_errors"})
    return shown


def malformed_json(errors: Any) -> JSONResponse | None:
    """A 400 naming the JSON syntax error, when the errors are one (FastAPI's or pydantic's)."""
    if not isinstance(errors, list):
        return None
    for error in errors:
        if isinstance(error, dict) and error.get("type") == "json_invalid":
            reason = str((error.get("ctx") or {}).get("error") or error.get("msg") or "")
            where = [p for p in error.get("loc", ()) if isinstance(p, int)]
            detail = f"malformed JSON body: {reason}" + (f" at byte {where[-1]}" if where else "")
            return JSONResponse({"detail": _text(detail, MAX_MESSAGE_CHARS)}, status_code=400)
    return None


async def validation_error(request: Request, error: Exception) -> JSONResponse:
    """FastAPI's 422 shape, bounded and safe for non-finite inputs; malformed JSON is a 400."""
    assert isinstance(error, RequestValidationError)
    errors = list(error.errors())
    return malformed_json(errors) or JSONResponse(
        {"detail": short_errors(errors)}, status_code=422
    )


async def session_call_error(request: Request, error: Exception) -> JSONResponse:
    """A worker's refusal as the HTTP error it names."""
    assert isinstance(error, SessionCallError)
    detail = error.detail
    if error.status == 422 and (malformed := malformed_json(detail)) is not None:
        return malformed
    if error.status == 422 and isinstance(detail, str):
        detail = [{"loc": ["body"], "msg": detail, "type": "value_error"}]
    if isinstance(detail, list):
        detail = short_errors(detail)
    elif isinstance(detail, str):
        detail = _text(detail, MAX_MESSAGE_CHARS)
    headers = getattr(error, "headers", None)
    return JSONResponse({"detail": _finite(detail)}, status_code=error.status, headers=headers)


def _leaf_routes(routes: Any) -> Any:
    """Every route, inside FastAPI's included-router wrappers too."""
    for route in routes:
        if hasattr(route, "effective_candidates"):  # fastapi's _IncludedRouter
            yield from _leaf_routes(route.effective_candidates())
        elif hasattr(route, "routes") and not hasattr(route, "methods"):
            yield from _leaf_routes(route.routes)
        else:
            yield route


async def method_not_allowed(request: Request, error: Exception) -> JSONResponse:
    """405 with `Allow` naming every method of the path (Starlette names only one route's)."""
    static: set[str] = set()
    templated: set[str] = set()
    for route in _leaf_routes(request.app.router.routes):
        for method in getattr(route, "methods", None) or ():
            match, _ = route.matches({**request.scope, "method": method})
            if match == Match.FULL:
                is_static = "{" not in getattr(route, "path", "{")
                (static if is_static else templated).add(method)
    # A path that names a resource of its own (/api/sessions/import) is that resource, as the
    # schema documents it, even though /api/sessions/{session_id} would also match its text.
    allowed = static or templated
    detail = error.detail if isinstance(error, HTTPException) else "Method Not Allowed"
    return JSONResponse({"detail": detail}, status_code=405,
                        headers={"Allow": ", ".join(sorted(allowed))})


async def http_error(request: Request, error: Exception) -> Response:
    """FastAPI's HTTPException answer, with a long detail cut (e.g. a 404 naming a 5,000-character
    id in the path)."""
    assert isinstance(error, HTTPException)
    if isinstance(error.detail, str) and len(error.detail) > MAX_MESSAGE_CHARS:
        error = HTTPException(error.status_code, _text(error.detail, MAX_MESSAGE_CHARS),
                              error.headers)
    elif isinstance(error.detail, list):
        error = HTTPException(error.status_code, short_errors(error.detail), error.headers)
    return await http_exception_handler(request, error)
