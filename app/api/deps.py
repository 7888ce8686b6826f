"""Dependencies named as types (FastAPI's full-stack template style)."""

from typing import Annotated

from fastapi import Depends, HTTPException, Request

from app.sessions.export import SessionExport, import_session
from app.sessions.manager import SessionCallError, SessionHandle, SessionManager
from app.sessions.session import TrainingSession
from app.settings import Settings


def get_manager(request: Request) -> SessionManager:
    """The app's session manager (started in the lifespan)."""
    manager: SessionManager = request.app.state.manager
    return manager


def get_app_settings(request: Request) -> Settings:
    """The settings the app was built with."""
    settings: Settings = request.app.state.settings
    return settings


ManagerDep = Annotated[SessionManager, Depends(get_manager)]
SettingsDep = Annotated[Settings, Depends(get_app_settings)]


def get_session(session_id: str, manager: ManagerDep) -> SessionHandle:
    """The handle of a live session (which worker owns it), or 404."""
    try:
        return manager.get(session_id)
    except SessionCallError as error:
        raise HTTPException(error.status, error.detail) from None


SessionDep = Annotated[SessionHandle, Depends(get_session)]


async def get_session_copy(handle: SessionDep, manager: ManagerDep) -> TrainingSession:
    """A bit-identical local copy of a session (model, optimizer, rng), for read-only tools.

    The live session belongs to a worker process; this rebuilds it from its JSON export, so
    instruments (e.g. a backprop trace) can read or step the copy without touching the original.
    """
    exported = await manager.call(handle.session_id, "export")
    return import_session(SessionExport.model_validate(exported), handle.session_id)


SessionCopyDep = Annotated[TrainingSession, Depends(get_session_copy)]
