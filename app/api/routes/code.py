"""Export code (issue 11): a session or a saved run as a stand-alone Python script.

The worker that holds the session reads the recipe (op "code", app/codegen/calls.py); the
script is rendered in a thread (app/codegen), never on the event loop. A session's code is its
owner's, as its export is; a saved run's code is public, as the run is.
"""

from __future__ import annotations

import asyncio
from typing import Any, Literal

from fastapi import APIRouter, HTTPException, Query, Request, Response

from app.api.deps import ManagerDep, OwnedSessionDep
from app.api.routes.runs import read_row
from app.api.routes.sessions import ERRORS, OWNER_ERRORS
from app.codegen import FRAMEWORKS, render
from app.codegen.recipe import Recipe
from app.codegen.source import file_name
from app.sessions.manager import SessionCallError

router = APIRouter(tags=["code"], responses=ERRORS)

Framework = Literal["numpy", "keras", "pytorch"]
MEDIA_TYPE = "text/x-python"
CODE_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"content": {MEDIA_TYPE: {}}, "description": (
        "The script (UTF-8), as an attachment named like circle_2-4-2-1_numpy.py. "
        "X-Code-Exact: true when the script lands on the playground's weights; false when "
        "training draws or mid-run changes make it differ (its docstring says why).")},
    501: {"description": "the framework's renderer is not written yet"},
}
FRAMEWORK_QUERY = Query(
    "numpy", description="numpy (numpy only), keras (Keras 3) or pytorch (torch)"
)
assert set(FRAMEWORKS) == {"numpy", "keras", "pytorch"}, "Framework lists every renderer"


async def script_response(recipe: Recipe, framework: str) -> Response:
    """The rendered script as a download (rendered in a thread: a large dataset is ~0.1 s)."""
    try:
        text = await asyncio.to_thread(render, recipe, framework)
    except NotImplementedError as error:
        raise HTTPException(501, str(error)) from None
    # The numpy script redoes the playground's draws (dropout, RReLU, augmentation) exactly.
    exact = recipe.exact if framework != "numpy" else not recipe.changes
    return Response(text, media_type=f"{MEDIA_TYPE}; charset=utf-8", headers={
        "Content-Disposition": f'attachment; filename="{file_name(recipe, framework)}"',
        "X-Code-Exact": "true" if exact else "false",
    })


@router.get(
    "/api/sessions/{session_id}/code", response_class=Response,
    responses={**OWNER_ERRORS, **CODE_RESPONSES},
)
async def read_session_code(
    handle: OwnedSessionDep, manager: ManagerDep, framework: Framework = FRAMEWORK_QUERY
) -> Response:
    """The session as a script that trains the same network on the same points from the
    same initial weights in the same minibatch order, for its epochs so far. Owner only."""
    recipe: Recipe = await manager.call(handle.session_id, "code", {"kind": "session"})
    return await script_response(recipe, framework)


@router.get("/api/runs/{slug}/code", response_class=Response, responses=CODE_RESPONSES)
async def read_run_code(
    request: Request, slug: str, manager: ManagerDep, framework: Framework = FRAMEWORK_QUERY
) -> Response:
    """A saved run as a script (its past checked by a replay when affordable). Public, as
    the run is."""
    row = await read_row(request, slug, with_export=True)
    cache = run_recipes(request)
    recipe = cache.pop(row.slug, None)
    if recipe is None:
        live = [w for w in manager.workers if w.alive]
        if not live:
            raise SessionCallError(503, "no worker is running")
        worker = min(live, key=lambda w: w.sessions)
        recipe = await manager.call_worker(worker, "code", {
            "kind": "run", "export": row.export, "slug": row.slug,
        })
    cache[row.slug] = recipe  # the most recently used last
    while len(cache) > request.app.state.settings.code_run_recipes:
        cache.pop(next(iter(cache)))
    return await script_response(recipe, framework)


def run_recipes(request: Request) -> dict[str, Recipe]:
    """Recipes of saved runs by slug (runs never change: a replay vouching for a run's past
    runs once, not at every request), least recently used first; made on first use."""
    cache: dict[str, Recipe] | None = getattr(request.app.state, "code_run_recipes", None)
    if cache is None:
        cache = request.app.state.code_run_recipes = {}
    return cache
