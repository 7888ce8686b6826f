"""Dependencies named as types (FastAPI's full-stack template style)."""

from typing import Annotated, Any

from fastapi import Depends, HTTPException, Request

from app.instruments.store import ExpiringStore
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


def app_store(request: Request, attribute: str, what: str) -> ExpiringStore[Any]:
    """An instrument's store on app.state, made on first use (on the event loop, so only once).

    Bounded like sessions: at most max_sessions items, dropped after session_idle_seconds unused.
    """
    store: ExpiringStore[Any] | None = getattr(request.app.state, attribute, None)
    if store is None:
        settings: Settings = request.app.state.settings
        store = ExpiringStore(
            settings.max_sessions, settings.session_idle_seconds, what, "max_sessions"
        )
        setattr(request.app.state, attribute, store)
    return store


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
