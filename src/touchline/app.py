"""The ASGI application: JSON API, pages, health, and the in-process worker when configured."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request, status
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from sqlalchemy import text
from starlette.exceptions import HTTPException
from starlette.middleware.sessions import SessionMiddleware
from starlette.types import ASGIApp, Receive, Scope, Send

from touchline import __version__, api_docs, demo_pages
from touchline.api_errors import declare_errors, problem_response, validation_problem
from touchline.body_limit import BodyLimitMiddleware, route_limits
from touchline.config import Settings
from touchline.db import answering_a_read, make_engine, make_sessionmaker, session_scope
from touchline.home import pages as home_pages
from touchline.inbound import endpoints as inbound_endpoints
from touchline.inbound import pages as inbound_pages
from touchline.inbound.readers import configure_readers
from touchline.inbound.receive import endpoints as receive_endpoints
from touchline.inbound.receive import pages as receive_pages
from touchline.inbound.receive.spool import backlog as log_spool_backlog
from touchline.jobs import declare, declare_all
from touchline.kit.crypto import SecretBox
from touchline.kit.errors import (
    ConflictError,
    InvalidInputError,
    NotFoundError,
    PermissionDeniedError,
    TooManyAttemptsError,
    TouchlineError,
)
from touchline.mailboxes import endpoints as mailbox_endpoints
from touchline.mailboxes import oauth_pages as mailbox_oauth_pages
from touchline.mailboxes import pages as mailbox_pages
from touchline.mailboxes import service as mailbox_service
from touchline.models.base import utcnow
from touchline.outbound.analytics import endpoints as analytics_endpoints
from touchline.outbound.analytics import pages as analytics_pages
from touchline.outbound.bulk import endpoints as bulk_endpoints
from touchline.outbound.bulk import pages as bulk_pages
from touchline.outbound.engagement import endpoints as engagement_endpoints
from touchline.outbound.engagement import service as engagement_service
from touchline.outbound.experiments import endpoints as experiment_endpoints
from touchline.outbound.experiments import pages as experiment_pages
from touchline.outbound.from_field import endpoints as from_field_endpoints
from touchline.outbound.from_field import pages as from_field_pages
from touchline.outbound.notify import endpoints as notify_endpoints
from touchline.outbound.notify import pages as notify_pages
from touchline.outbound.send import endpoints as outbox_endpoints
from touchline.outbound.send import pages as outbox_pages
from touchline.outbound.sequences import endpoints as sequence_endpoints
from touchline.outbound.sequences import pages as sequence_pages
from touchline.outbound.templates import endpoints as template_endpoints
from touchline.outbound.templates import pages as template_pages
from touchline.outbound.track.app import create_tracking_app
from touchline.outbound.unsubscribe import endpoints as unsubscribe_endpoints
from touchline.outbound.unsubscribe import pages as unsubscribe_pages
from touchline.security_headers import SecurityHeadersMiddleware
from touchline.ui import STATIC_DIR, error_page, redirect, validation_messages
from touchline.worker import Queue, configure_queue
from touchline.workspace import endpoints as workspace_endpoints
from touchline.workspace import pages as workspace_pages
from touchline.workspace import users_pages
from touchline.workspace.auth import LoginRequiredError

log = logging.getLogger(__name__)

_STATUS_BY_ERROR: dict[type[TouchlineError], int] = {
    NotFoundError: status.HTTP_404_NOT_FOUND,
    PermissionDeniedError: status.HTTP_403_FORBIDDEN,
    ConflictError: status.HTTP_409_CONFLICT,
    InvalidInputError: status.HTTP_422_UNPROCESSABLE_CONTENT,
    TooManyAttemptsError: status.HTTP_429_TOO_MANY_REQUESTS,
}

API_DESCRIPTION = """
touchline's JSON API. Authenticate with an API token: `Authorization: Bearer <token>`
(create one with `touchline token create` or `POST /api/v1/tokens`). Every call sees only the
caller's workspace; ids from another workspace answer 404.
"""


# Pages of the unassigned list come before the generic inbound pages, whose paths are broader.
ROUTERS = (
    api_docs.router,
    workspace_endpoints.router,
    mailbox_endpoints.router,
    inbound_endpoints.router,
    receive_endpoints.router,
    from_field_endpoints.router,
    unsubscribe_endpoints.router,
    outbox_endpoints.router,
    template_endpoints.router,
    bulk_endpoints.router,
    engagement_endpoints.router,
    experiment_endpoints.router,
    analytics_endpoints.router,
    home_pages.router,
    workspace_pages.router,
    users_pages.router,
    analytics_pages.router,
    mailbox_pages.router,
    mailbox_oauth_pages.router,
    receive_pages.router,
    inbound_pages.router,
    from_field_pages.router,
    unsubscribe_pages.router,
    outbox_pages.router,
    template_pages.router,
    sequence_endpoints.router,
    sequence_pages.router,
    bulk_pages.router,
    experiment_pages.router,
    notify_endpoints.router,
    notify_pages.router,
    demo_pages.router,
)

# Sections that features above the mailboxes layer add to the Email tab.
EMAIL_TAB_SECTIONS: tuple[mailbox_pages.EmailTabSection, ...] = (from_field_pages.email_tab_section,)


def _wants_html(request: Request) -> bool:
    return not request.url.path.startswith(("/api/", "/health", "/docs", "/openapi"))


def _add_middleware(app: FastAPI, settings: Settings, box: SecretBox) -> None:
    # Each call wraps the ones before it: the security headers come last so they reach every response.
    app.add_middleware(
        BodyLimitMiddleware,
        default_limit=settings.max_request_body_bytes,
        route_limits=route_limits(settings),
    )
    app.add_middleware(
        SessionMiddleware,
        secret_key=box.sign("page-sessions"),
        session_cookie="touchline_session",
        max_age=settings.session_max_age_seconds,
        same_site="lax",
        https_only=settings.base_url.startswith("https://"),
    )
    app.add_middleware(ReadRequestMiddleware)
    app.add_middleware(SecurityHeadersMiddleware)


class ReadRequestMiddleware:
    """GET and HEAD requests are answered `answering_a_read` (see touchline.db)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] in ("GET", "HEAD"):
            with answering_a_read():
                await self.app(scope, receive, send)
            return
        await self.app(scope, receive, send)


def create_app(settings: Settings | None = None, *, queue: Queue | None = None) -> FastAPI:  # noqa: PLR0915 -- the whole app, assembled in one place
    declare_all()  # the app's in-process worker may run any job, and its pages send many
    settings = settings or Settings()
    settings.ensure_data_dir()
    engine = make_engine(settings.resolved_database_url)
    box = SecretBox(settings.secret_keys)
    queue = queue or configure_queue(settings, declare=declare)
    sessions = make_sessionmaker(engine)
    tracking = create_tracking_app(settings, sessions, queue)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if settings.in_process_worker:
            configure_readers(settings.sync_reader_processes)
            queue.start_in_process(settings.worker_threads)
        try:
            yield
        finally:
            await tracking.writer.close()
            queue.stop_in_process()
            engine.dispose()

    app = FastAPI(
        title="touchline",
        version=__version__,
        description=API_DESCRIPTION,
        lifespan=lifespan,
        docs_url=None,  # api_docs serves /docs from the vendored Swagger UI, offline and CSP-clean
        redoc_url=None,
        openapi_url="/openapi.json",
    )
    app.state.settings = settings
    app.state.engine = engine
    app.state.sessions = sessions
    app.state.tracking = tracking
    app.state.secret_box = box
    app.state.queue = queue
    app.state.clock = utcnow
    app.state.email_tab_sections = EMAIL_TAB_SECTIONS
    app.state.sent_engagement = engagement_service.shown_for_sent_copies

    _add_middleware(app, settings, box)

    @app.exception_handler(TouchlineError)
    async def touchline_error(request: Request, error: TouchlineError) -> Response:
        code = next(
            (code for kind, code in _STATUS_BY_ERROR.items() if isinstance(error, kind)),
            status.HTTP_400_BAD_REQUEST,
        )
        headers = (
            {"Retry-After": str(error.retry_after_seconds)}
            if isinstance(error, TooManyAttemptsError)
            else None
        )
        if _wants_html(request):
            return error_page(request, code, str(error), headers=headers)
        return problem_response(code, str(error), headers)

    # Pages answer people with a page (an unknown path and Starlette's own errors included); the API
    # and the documentation keep their JSON.
    @app.exception_handler(HTTPException)
    async def http_error(request: Request, error: HTTPException) -> Response:
        if _wants_html(request) and error.status_code >= 400:
            unknown_path = error.status_code == status.HTTP_404_NOT_FOUND and error.detail == "Not Found"
            message = "There is no such page." if unknown_path else str(error.detail)
            return error_page(request, error.status_code, message)
        return problem_response(error.status_code, str(error.detail), error.headers)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, error: RequestValidationError) -> Response:
        if not _wants_html(request):
            return validation_problem(error.errors())
        # A malformed id in a page's address names no page: not found, as an unknown id is.
        if any(detail.get("loc", ("",))[0] == "path" for detail in error.errors()):
            return error_page(request, status.HTTP_404_NOT_FOUND, "There is no such page.")
        message = "; ".join(validation_messages(error.errors()))
        return error_page(request, status.HTTP_422_UNPROCESSABLE_CONTENT, message)

    @app.exception_handler(Exception)
    async def server_error(request: Request, error: Exception) -> Response:
        # Starlette logs the error and re-raises it after this answer.
        if _wants_html(request):
            return error_page(
                request,
                status.HTTP_500_INTERNAL_SERVER_ERROR,
                "touchline failed to show this page. The error was logged; try again in a moment.",
            )
        return problem_response(status.HTTP_500_INTERNAL_SERVER_ERROR, "Internal Server Error")

    @app.exception_handler(LoginRequiredError)
    async def login_required(request: Request, error: LoginRequiredError) -> Response:
        return redirect(f"/login?next={error.next_path}")

    @app.get("/health", tags=["operations"], summary="Database and queue status")
    def health() -> JSONResponse:
        database: dict[str, object] = {"engine": engine.dialect.name}
        try:
            with engine.connect() as connection:
                connection.execute(text("SELECT 1"))
            database["ok"] = True
            with session_scope(app.state.sessions) as session:
                database["log_spool"] = log_spool_backlog(session)
                # Stalled mailboxes do not make this process unhealthy (a load balancer must keep
                # it), so they are reported beside the status rather than in it.
                stalled = mailbox_service.count_stalled(
                    session, utcnow(), mailbox_service.stalled_after(settings)
                )
                database["mailbox_sync"] = {"stalled": stalled, "ok": stalled == 0}
        except Exception as error:
            database.update(ok=False, error=str(error))
        queue_status: dict[str, object] = {"backend": "redis" if settings.uses_redis_queue else "sqlite"}
        try:
            queue_status["pending"] = queue.pending_count()
            queue_status["ok"] = True
        except Exception as error:
            queue_status.update(ok=False, error=str(error))
        healthy = bool(database["ok"]) and bool(queue_status["ok"])
        return JSONResponse(
            {
                "status": "ok" if healthy else "unavailable",
                "version": __version__,
                "database": database,
                "queue": queue_status,
            },
            status_code=status.HTTP_200_OK if healthy else status.HTTP_503_SERVICE_UNAVAILABLE,
        )

    for router in ROUTERS:
        app.include_router(router)

    def openapi() -> dict[str, Any]:
        # FastAPI builds the document once and keeps it; the errors are declared on that one copy.
        if app.openapi_schema is None:
            declare_errors(FastAPI.openapi(app))
        return app.openapi_schema or {}

    app.openapi = openapi  # type: ignore[method-assign]
    app.mount("/static", StaticFiles(directory=str(STATIC_DIR)), name="static")
    app.mount("/t", tracking, name="tracking")
    return app
