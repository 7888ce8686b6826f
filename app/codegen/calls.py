"""The worker side of "Export code": op "code" reads a recipe where the session lives.

`code_call(session, payload)` runs in a worker process (app/sessions/worker_ops.py's op "code"),
never on the web process's event loop: a recipe copies the session's points and weights, and
checking an imported past replays it. {"kind": "session"} reads the live `session`;
{"kind": "run", "export": gzip bytes, "slug": ...} rebuilds a saved run from its export in a
transient session (nobody registers it) and reads that.
"""

from __future__ import annotations

import gzip
from typing import Any

from app.codegen.recipe import Recipe, checked, recipe_from_session
from app.sessions.export import SessionExport, import_session
from app.sessions.session import TrainingSession
from app.settings import get_settings


def code_call(session: TrainingSession | None, payload: dict[str, Any]) -> Recipe:
    """The recipe of the live `session` or of the saved run in `payload`; LookupError when
    the session is not here."""
    max_steps = get_settings().code_replay_max_steps
    kind = payload.get("kind")
    if kind == "session":
        if session is None:
            raise LookupError("no such session")
        recipe = recipe_from_session(session)
        if session.epochs_trained_here != session.epoch:
            recipe = checked(recipe, max_steps)
            # The verdict stands for this past: the next export reads it instead of replaying.
            session.code_changes = list(recipe.changes)
            session.epochs_trained_here = session.epoch
        return recipe
    if kind == "run":
        data = SessionExport.model_validate_json(gzip.decompress(payload["export"]))
        transient = import_session(data, str(payload["slug"]))
        return checked(recipe_from_session(transient, source="run"), max_steps)
    raise ValueError(f"unknown code operation {kind!r}; expected session or run")
