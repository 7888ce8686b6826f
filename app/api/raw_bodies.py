"""The OpenAPI request bodies of routes that read their body raw (validated in the worker).

`POST /api/sessions`, `PATCH /api/sessions/{id}`, `.../commands` and `.../predict` take the raw
bytes and send them to the worker (parsing megabytes of JSON on the event loop froze every
client for seconds: issue 9), so FastAPI no longer sees a body model. The schema still
documents it: for each such route a stand-in route with the real body model is generated
alongside, its requestBody copied onto the real operation and its component schemas merged,
so /docs and schemathesis see exactly the models the worker validates with.
"""

from __future__ import annotations

import inspect
from typing import Annotated, Any

from fastapi import APIRouter, Body, FastAPI
from fastapi.openapi.utils import get_openapi

# (path, method) -> the body model the worker validates with (app/sessions/bodies.py)
RAW_BODIES: dict[tuple[str, str], Any] = {}


def raw_body(path: str, method: str, model: Any) -> dict[str, Any]:
    """Register a route's body model; returns the route's openapi_extra (a required body)."""
    RAW_BODIES[(path, method.lower())] = model
    return {"requestBody": {"required": True, "content": {"application/json": {}}}}


def _stand_in(model: Any) -> Any:
    async def endpoint(**_: Any) -> None:  # pragma: no cover - never served
        return None

    endpoint.__signature__ = inspect.Signature([  # type: ignore[attr-defined]
        inspect.Parameter("body", inspect.Parameter.KEYWORD_ONLY,
                          annotation=Annotated[model, Body()]),
    ])
    return endpoint


def install(app: FastAPI) -> None:
    """Wrap app.openapi so the raw-body routes get their request body schemas."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        schema = generate()
        stand_ins = APIRouter()
        for index, ((_, method), model) in enumerate(RAW_BODIES.items()):
            stand_ins.add_api_route(f"/raw-body-{index}", _stand_in(model), methods=[method])
        extra = get_openapi(title=app.title, version=app.version, routes=stand_ins.routes)
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        for name, definition in extra.get("components", {}).get("schemas", {}).items():
            components.setdefault(name, definition)
        for index, (path, method) in enumerate(RAW_BODIES):
            operation = schema.get("paths", {}).get(path, {}).get(method)
            if operation is not None:
                body = extra["paths"][f"/raw-body-{index}"][method]["requestBody"]
                operation["requestBody"] = body
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
