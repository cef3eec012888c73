"""Page plumbing shared by every feature: one Jinja2 environment, CSRF, flash messages, redirects,
and times shown on the workspace's clock."""

from __future__ import annotations

import secrets
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, Final
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

from fastapi import Depends, HTTPException, Request, status
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.templating import Jinja2Templates
from jinja2 import pass_context
from jinja2.runtime import Context
from starlette.datastructures import FormData

from touchline.config import Settings
from touchline.kit.zones import DEFAULT_ZONE, on_wall_clock, zone_or_default

TEMPLATES_DIR = Path(__file__).parent / "templates"
STATIC_DIR = Path(__file__).parent / "static"

templates = Jinja2Templates(directory=str(TEMPLATES_DIR))

_FLASH_KEY = "flash"
_CSRF_KEY = "csrf"
TIME_ZONE_STATE = "time_zone"
"""The request's `state` attribute holding the signed-in user's workspace time zone (its IANA name),
set where the page's actor is found; pages show every time on its clock."""


SHOWN_TIME: Final = "%Y-%m-%d %H:%M"


def request_zone(request: Request) -> ZoneInfo:
    """The time zone this request's pages read and show times in: the signed-in user's workspace's
    (read once, where the page's actor is found), else UTC."""
    return zone_or_default(getattr(request.state, TIME_ZONE_STATE, DEFAULT_ZONE))


def local_time(moment: datetime, zone: ZoneInfo, form: str = SHOWN_TIME) -> str:
    """A stored moment as the wall clock of `zone` shows it (`%Z` in `form` names the zone's
    abbreviation, such as CET). A moment without a zone is UTC's."""
    aware = moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
    return on_wall_clock(aware, zone).strftime(form)


@pass_context
def _local(context: Context, moment: datetime, form: str = SHOWN_TIME) -> str:
    """`{{ email.sent_at|local }}` in a page: `local_time` in the zone the page was rendered for."""
    return local_time(moment, zone_or_default(context.get("time_zone")), form)


templates.env.filters["local"] = _local


def csrf_token(request: Request) -> str:
    token = request.session.get(_CSRF_KEY)
    if not token:
        token = secrets.token_urlsafe(24)
        request.session[_CSRF_KEY] = token
    return str(token)


def check_csrf(request: Request, submitted: str) -> None:
    """Every form that changes something calls this: the token from the page, and where it came from."""
    _check_origin(request)
    expected = request.session.get(_CSRF_KEY)
    if not expected or not secrets.compare_digest(str(expected), submitted):
        raise HTTPException(status.HTTP_403_FORBIDDEN, "the form expired; reload the page and try again")


async def submitted_form(request: Request) -> FormData:
    """The form a page posted, read on the event loop.

    A dependency, so that the endpoint taking it can be a plain function: FastAPI runs those in its
    thread pool, where their database work cannot hold up the event loop that answers every other
    request of the process (the tracking endpoint included, under `touchline serve`)."""
    return await request.form()


async def checked_form(request: Request, form: Annotated[FormData, Depends(submitted_form)]) -> FormData:
    """The posted form, once its CSRF token (`check_csrf`) stands."""
    token = form.get("csrf_token")
    check_csrf(request, token if isinstance(token, str) else "")
    return form


SubmittedForm = Annotated[FormData, Depends(submitted_form)]
CheckedForm = Annotated[FormData, Depends(checked_form)]


def _check_origin(request: Request) -> None:
    # Browsers name the site a form was sent from (Origin, or at least Referer); a form on another site
    # is refused even if it carries a token. Clients that send neither still need the token.
    source = request.headers.get("origin") or request.headers.get("referer")
    if source is None:
        return
    sent_from = urlsplit(source)
    settings: Settings = request.app.state.settings
    configured = urlsplit(settings.base_url)
    own_host = request.headers.get("host", "")
    if sent_from.netloc and (
        (sent_from.scheme, sent_from.netloc) == (configured.scheme, configured.netloc)
        or sent_from.netloc == own_host
    ):
        return
    raise HTTPException(
        status.HTTP_403_FORBIDDEN, "this form was sent from another site; nothing was changed"
    )


def flash(request: Request, message: str, kind: str = "info") -> None:
    request.session.setdefault(_FLASH_KEY, []).append({"kind": kind, "message": message})


def render(
    request: Request, template: str, actor: Any, context: dict[str, Any], status_code: int = 200
) -> HTMLResponse:
    messages = request.session.pop(_FLASH_KEY, [])
    return templates.TemplateResponse(
        request,
        template,
        {
            "actor": actor,
            "csrf_token": csrf_token(request),
            "messages": messages,
            "time_zone": request_zone(request).key,
            **context,
        },
        status_code=status_code,
    )


def error_page(
    request: Request, status_code: int, message: str, headers: Mapping[str, str] | None = None
) -> HTMLResponse:
    """The HTML answer of a page that failed: what happened, in words, and a way home."""
    return templates.TemplateResponse(
        request,
        "error.html",
        {"actor": None, "status": status_code, "message": message},
        status_code=status_code,
        headers=headers,
    )


def validation_messages(errors: Sequence[Mapping[str, Any]]) -> list[str]:
    """Pydantic's errors as the API shows them ("port: Input should be ..."), one line each."""
    return [f"{_field_of(error)}: {error.get('msg', 'invalid')}" for error in errors]


def field_errors(errors: Sequence[Mapping[str, Any]]) -> dict[str, str]:
    """The first error of each field, by field name, to show beside the field in a form (an error
    about one line of a list field marks the whole field)."""
    found: dict[str, str] = {}
    for error in errors:
        found.setdefault(_field_of(error).split(".")[0], str(error.get("msg", "invalid")))
    return found


def _field_of(error: Mapping[str, Any]) -> str:
    # The API's locations start with where the value came from (body, query, path); a model's do not.
    location = [str(part) for part in error.get("loc", ()) if part not in ("body", "query", "path", "form")]
    return ".".join(location) or "request"


def redirect(path: str) -> RedirectResponse:
    return RedirectResponse(path, status_code=303)
