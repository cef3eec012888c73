"""The home page, where the logo and a sign-in lead. Thin."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from touchline.db import session_scope
from touchline.home import service
from touchline.ui import render
from touchline.workspace.auth import PageActor, Sessions

router = APIRouter(include_in_schema=False)


@router.get("/", response_class=HTMLResponse)
def home_page(request: Request, actor: PageActor, sessions: Sessions) -> HTMLResponse:
    with session_scope(sessions) as session:
        return render(request, "home.html", actor, {"home": service.home_view(session, actor)})
