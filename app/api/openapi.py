"""The OpenAPI schema, corrected so that it says what the server enforces.

- pydantic writes a bound on an optional number whose type has a BeforeValidator (our strict
  `Integer`/`Number`) as the non-standard `ge`/`gt`/`le`/`lt`, which JSON Schema tools ignore:
  they become `minimum`/`exclusiveMinimum`/`maximum`/`exclusiveMaximum`.
- A registry enum on an optional field (`anyOf: [string, null]`) keeps null allowed.
- Every operation documents the statuses any route may answer: 400 (malformed JSON or a lone
  surrogate escape) and 413 (body over its limit) where there is a body, 422, and 429 (the
  per-address rate limit, app/ops/ratelimit.py).
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

from app.settings import Settings

BOUNDS = {"ge": "minimum", "gt": "exclusiveMinimum", "le": "maximum", "lt": "exclusiveMaximum"}
BODY_METHODS = ("post", "put", "patch")
COMMON: dict[str, dict[str, Any]] = {
    "429": {"description": "Too many requests (rate_limit_per_second or a quota); see "
            "Retry-After"},
}
WITH_BODY: dict[str, dict[str, Any]] = {
    "400": {"description": "Malformed JSON (or a lone UTF-16 surrogate escape in a string)"},
    "413": {"description": "Body over the route's limit (max_body_bytes, max_upload_bytes "
            "for parse-csv, max_import_bytes for import)"},
}


def fix_bounds(node: Any) -> None:
    """Rename pydantic's raw ge/gt/le/lt on numeric schemas to their JSON Schema keywords."""
    if isinstance(node, dict):
        if node.get("type") in ("integer", "number"):
            for raw, keyword in BOUNDS.items():
                if raw in node and not isinstance(node[raw], dict):
                    node.setdefault(keyword, node.pop(raw))
        branches = node.get("anyOf")
        nullable = isinstance(branches, list) and {"type": "null"} in branches
        if nullable and "enum" in node and None not in node["enum"]:
            node["enum"] = [*node["enum"], None]
        for value in node.values():
            fix_bounds(value)
    elif isinstance(node, list):
        for value in node:
            fix_bounds(value)


# (component, property) -> (keyword, setting): limits checked in code (the worker, the
# instruments) against settings, stated here from the app's own settings.
SETTING_BOUNDS: dict[tuple[str, str], tuple[str, str]] = {
    ("StepCommand", "n"): ("maximum", "max_step_epochs"),
    ("PredictCommand", "points"): ("maxItems", "max_predict_points"),
    ("PredictRequest", "points"): ("maxItems", "max_predict_points"),
    ("RaceStep", "epochs"): ("maximum", "max_race_step_epochs"),
    ("RaceCreate", "racers"): ("maxItems", "max_racers"),
    ("PerceptronRequest", "epochs"): ("maximum", "max_perceptron_epochs"),
    ("BackpropRequest", "batch_size"): ("maximum", "max_batch_size"),
    ("CsvUpload", "text"): ("maxLength", "max_upload_bytes"),
}


def setting_bounds(schema: dict[str, Any], settings: Settings) -> None:
    """Write SETTING_BOUNDS into the components (onto the non-null branch of an optional)."""
    components = schema.get("components", {}).get("schemas", {})
    for (component, name), (keyword, setting) in SETTING_BOUNDS.items():
        field = components.get(component, {}).get("properties", {}).get(name)
        if field is None:
            continue
        target = next((b for b in field.get("anyOf", []) if b.get("type") != "null"), field)
        target[keyword] = getattr(settings, setting)


def racer_bounds(schema: dict[str, Any]) -> None:
    """A racer's optimizer settings are merged into a SessionConfig: the same bounds apply."""
    components = schema.get("components", {}).get("schemas", {})
    config = components.get("SessionConfig", {}).get("properties", {})
    racer = components.get("RacerCreate", {}).get("properties", {})
    for name, field in racer.items():
        source = config.get(name)
        if source is None:
            continue
        if "enum" in source and field.get("type") == "string":
            field["enum"] = source["enum"]  # e.g. the optimizer's name
        bounds = {k: v for k, v in _numeric(source).items() if k in BOUNDS.values()}
        target = _numeric(field)
        if bounds and target:
            target.update(bounds)


def _numeric(field: dict[str, Any]) -> dict[str, Any]:
    """The number/integer schema of a field (itself, or its non-null anyOf branch)."""
    if field.get("type") in ("integer", "number"):
        return field
    for branch in field.get("anyOf", []):
        if branch.get("type") in ("integer", "number"):
            return branch  # type: ignore[no-any-return]
    return {}


def document_statuses(schema: dict[str, Any]) -> None:
    """Add the statuses every route may answer to each operation's responses."""
    for item in schema.get("paths", {}).values():
        for method, operation in item.items():
            if not isinstance(operation, dict) or "responses" not in operation:
                continue
            responses = operation["responses"]
            extra = dict(COMMON)
            if method in BODY_METHODS:
                extra |= WITH_BODY
            for status, response in extra.items():
                responses.setdefault(status, response)


def install(app: FastAPI) -> None:
    """Wrap app.openapi (after any other wrapper) with the corrections above."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if getattr(app.state, "truthful_openapi", None) is not None:
            return app.state.truthful_openapi  # type: ignore[no-any-return]
        schema = generate()
        fix_bounds(schema)
        racer_bounds(schema)
        setting_bounds(schema, app.state.settings)
        document_statuses(schema)
        app.state.truthful_openapi = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
