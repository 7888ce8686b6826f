"""Dependencies named as types (FastAPI's full-stack template style).

Every dependency is async and cheap: a sync one takes a threadpool slot, and when race steps
filled the threadpool, every route waited up to 28.8 s for `get_manager` (issue 9).
"""

from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, HTTPException, Request

from app.api.owners import Caller, OwnerRegistry, bearer_token, new_token, token_hash
from app.instruments.store import ExpiringStore
from app.ops.ratelimit import CLIENT, address_key
from app.sessions.manager import SessionCallError, SessionHandle, SessionManager
from app.settings import Settings


async def get_manager(request: Request) -> SessionManager:
    """The app's session manager (started in the lifespan)."""
    manager: SessionManager = request.app.state.manager
    return manager


async def get_app_settings(request: Request) -> Settings:
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


async def get_session(session_id: str, manager: ManagerDep) -> SessionHandle:
    """The handle of a live session (which worker owns it), or 404. A session stored by idle
    expiry is restored first, and one whose worker died is waited for (manager.ensure)."""
    try:
        return await manager.ensure(session_id)
    except SessionCallError as error:
        raise HTTPException(error.status, error.detail) from None


SessionDep = Annotated[SessionHandle, Depends(get_session)]

# ---- owners (app/api/owners.py, docs/protocol.md "Owners, tokens and quotas") ---------------

BEARER = {"WWW-Authenticate": "Bearer"}


def client_address(request: Request) -> str:
    """The client's address as the per-address quotas count it: the rate limiter's (the
    X-Forwarded-For client behind trusted_proxies), an IPv6 address by its /64 (one host)."""
    address = request.scope.get(CLIENT)
    if not isinstance(address, str):
        address = request.client.host if request.client is not None else "unknown"
    return address_key(address)


async def get_caller(request: Request) -> Caller:
    """Who asks: the hash of the `Authorization: Bearer` token (None without one) and address."""
    token = bearer_token(request.headers.get("authorization"))
    return Caller(token_hash(token) if token is not None else None, client_address(request))


CallerDep = Annotated[Caller, Depends(get_caller)]


def owners_of(request: Request) -> OwnerRegistry:
    """The app's registry of known owner hashes (app.state.owners)."""
    registry: OwnerRegistry = request.app.state.owners
    return registry


@dataclass(frozen=True)
class Creator:
    """The owner of something being created: the token to hand back, its hash, the address."""

    token: str
    token_hash: str
    address: str


async def get_creator(request: Request) -> Creator:
    """The owner of a new session, race or job: a new token without `Authorization`, else the
    presented one, which must be a token this server issued (401 otherwise).

    Register the hash (`request.app.state.owners.add(creator.token_hash)`) once the create
    succeeded; SessionManager.create does it for sessions.
    """
    header = request.headers.get("authorization")
    address = client_address(request)
    if header is None:
        fresh = new_token()
        return Creator(fresh, token_hash(fresh), address)
    token = bearer_token(header)
    if token is None:
        raise HTTPException(401, "malformed Authorization header: expected 'Bearer <owner "
                            "token>', or none to get a new token", headers=BEARER)
    hashed = token_hash(token)
    if not owners_of(request).touch(hashed):
        raise HTTPException(401, "unknown owner token: it was not issued by this server or was "
                            "forgotten; send no Authorization header to get a new one",
                            headers=BEARER)
    return Creator(token, hashed, address)


CreatorDep = Annotated[Creator, Depends(get_creator)]


def require_owner(caller: Caller, owner: str, what: str) -> None:
    """401 (with WWW-Authenticate: Bearer) without a token, 403 with another owner's."""
    if caller.token_hash is None:
        raise HTTPException(401, f"{what} needs its owner token: send "
                            "'Authorization: Bearer <owner_token>'", headers=BEARER)
    if not caller.owns(owner):
        raise HTTPException(403, f"{what} belongs to another owner; anyone may watch it, "
                            "only its owner may change or copy it")


async def get_owned_session(handle: SessionDep, caller: CallerDep) -> SessionHandle:
    """The handle of a live session the caller owns: 404, then 401 or 403."""
    require_owner(caller, handle.owner, f"session {handle.session_id!r}")
    return handle


OwnedSessionDep = Annotated[SessionHandle, Depends(get_owned_session)]
