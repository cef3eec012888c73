"""Page plumbing shared by every feature: one Jinja2 environment, CSRF, flash messages, redirects."""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any

from fastapi import HTTPException, Request, status
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.templating import Jinja2Templates

TEMPLATES_DIR = Path(__file__).parent / "templates"
STATIC_DIR = Path(__file__).parent / "static"

templates = Jinja2Templates(directory=str(TEMPLATES_DIR))

_FLASH_KEY = "flash"
_CSRF_KEY = "csrf"


def csrf_token(request: Request) -> str:
    token = request.session.get(_CSRF_KEY)
    if not token:
        token = secrets.token_urlsafe(24)
        request.session[_CSRF_KEY] = token
    return str(token)


def check_csrf(request: Request, submitted: str) -> None:
    expected = request.session.get(_CSRF_KEY)
    if not expected or not secrets.compare_digest(str(expected), submitted):
        raise HTTPException(status.HTTP_403_FORBIDDEN, "the form expired; reload the page and try again")


def flash(request: Request, message: str, kind: str = "info") -> None:
    request.session.setdefault(_FLASH_KEY, []).append({"kind": kind, "message": message})


def render(
    request: Request, template: str, actor: Any, context: dict[str, Any], status_code: int = 200
) -> HTMLResponse:
    messages = request.session.pop(_FLASH_KEY, [])
    return templates.TemplateResponse(
        request,
        template,
        {"actor": actor, "csrf_token": csrf_token(request), "messages": messages, **context},
        status_code=status_code,
    )


def redirect(path: str) -> RedirectResponse:
    return RedirectResponse(path, status_code=303)
