"""Who is calling: API tokens for the JSON API; for pages, a signed cookie carrying the id of a login
recorded in the database (touchline.workspace.user_sessions)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Annotated

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session, sessionmaker

from touchline.config import Settings
from touchline.db import session_scope
from touchline.ui import TIME_ZONE_STATE
from touchline.workspace import service, user_sessions
from touchline.workspace.permissions import Actor

SESSION_LOGIN_KEY = "login"

_bearer = HTTPBearer(auto_error=False, description="An API token: `touchline token create` or the Users page")


def sessions(request: Request) -> sessionmaker[Session]:
    factory: sessionmaker[Session] = request.app.state.sessions
    return factory


Sessions = Annotated[sessionmaker[Session], Depends(sessions)]


def current_time(request: Request) -> datetime:
    """The app's clock: expiry and throttling read it, and tests move it instead of waiting."""
    clock: Callable[[], datetime] = request.app.state.clock
    return clock()


Now = Annotated[datetime, Depends(current_time)]


def app_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


AppSettings = Annotated[Settings, Depends(app_settings)]


def client_address(request: Request) -> str:
    # Behind a proxy this is the proxy's address unless uvicorn trusts it (FORWARDED_ALLOW_IPS) and
    # takes the client's from X-Forwarded-For.
    return request.client.host if request.client else "unknown"


def api_actor(
    factory: Sessions, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
) -> Actor:
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "send an API token as `Authorization: Bearer <token>`",
            headers={"WWW-Authenticate": "Bearer"},
        )
    with session_scope(factory) as session:
        actor = service.actor_for_token(session, credentials.credentials)
    if actor is None:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "the API token is unknown or revoked; create a new one",
            headers={"WWW-Authenticate": "Bearer"},
        )
    return actor


ApiActor = Annotated[Actor, Depends(api_actor)]


class LoginRequiredError(Exception):
    """Raised by page dependencies; the app turns it into a redirect to the login page."""

    def __init__(self, next_path: str) -> None:
        super().__init__(next_path)
        self.next_path = next_path


def current_login(request: Request) -> str | None:
    """The login id in the request's cookie; only its database record says whether it still stands."""
    login = request.session.get(SESSION_LOGIN_KEY)
    return login if isinstance(login, str) and login else None


def page_actor(request: Request, factory: Sessions, settings: AppSettings, now: Now) -> Actor:
    login = current_login(request)
    if login is not None:
        with session_scope(factory) as session:
            found = user_sessions.resume(session, login, user_sessions.SessionLimits.of(settings), now)
            actor = service.actor_for(found[1]) if found is not None else None
            if actor is not None:
                # Every page shows times on the workspace's clock (`touchline.ui`'s `local` filter).
                setattr(request.state, TIME_ZONE_STATE, service.time_zone_name(session, actor.workspace_id))
        if actor is not None:
            return actor
    request.session.clear()
    raise LoginRequiredError(request.url.path)


PageActor = Annotated[Actor, Depends(page_actor)]
