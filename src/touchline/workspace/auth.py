"""Who is calling: API tokens for the JSON API, a signed session cookie for pages, CSRF for forms."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session, sessionmaker

from touchline.db import session_scope
from touchline.models import User
from touchline.workspace import service
from touchline.workspace.permissions import Actor

SESSION_USER_KEY = "user_id"

_bearer = HTTPBearer(auto_error=False, description="An API token: `touchline token create` or the Users page")


def sessions(request: Request) -> sessionmaker[Session]:
    factory: sessionmaker[Session] = request.app.state.sessions
    return factory


Sessions = Annotated[sessionmaker[Session], Depends(sessions)]


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


def page_actor(request: Request, factory: Sessions) -> Actor:
    raw_id = request.session.get(SESSION_USER_KEY)
    user: User | None = None
    if raw_id:
        with session_scope(factory) as session:
            try:
                user = session.get(User, uuid.UUID(raw_id))
            except ValueError:
                user = None
            actor = service.actor_for(user) if user is not None and user.active else None
        if actor is not None:
            return actor
    request.session.clear()
    raise LoginRequiredError(request.url.path)


PageActor = Annotated[Actor, Depends(page_actor)]
