"""Every response carries the Content-Security-Policy; no page of ours breaks it; /docs works offline.

The policy is the second wall behind escaping (tests/pages/test_xss.py): it must reach every page,
error pages included, and it can only stay strict while no page needs an inline script.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from playwright.sync_api import ConsoleMessage, Frame, Page, Route, expect
from sqlalchemy.orm import Session, sessionmaker

import touchline
from tests.conftest import Team, sign_in_form
from tests.pages.test_companies_pages import log_in
from tests.pages.test_xss import ADMIN_EMAIL, ADMIN_PASSWORD, World, build_world
from touchline.app import ROUTERS
from touchline.db import session_scope
from touchline.models import Template
from touchline.models.base import utcnow
from touchline.outbound.experiments import service as experiments
from touchline.outbound.unsubscribe.service import unsubscribe_url
from touchline.workspace import account_links
from touchline.workspace.account_links import INVITATION, RESET
from touchline.workspace.permissions import Actor

# The directives a page must have, and what no directive may allow.
REQUIRED = {
    "default-src": "'self'",
    "script-src": "'self'",
    "object-src": "'none'",
    "base-uri": "'none'",
    "frame-ancestors": "'none'",
    "form-action": "'self'",
}
FORBIDDEN_SOURCES = ("'unsafe-inline'", "'unsafe-eval'", "*", "data:", "http:", "https:")


def assert_strict(headers: dict[str, str] | object, what: str) -> None:
    policy = headers.get("content-security-policy")  # type: ignore[attr-defined]
    assert policy, f"{what} has no Content-Security-Policy"
    directives = {
        name: sources for name, *sources in (part.split() for part in policy.split(";") if part.strip())
    }
    for name, value in REQUIRED.items():
        assert directives.get(name) == [value], f"{what}: {name} is {directives.get(name)}"
    assert not set(directives["script-src"]) & set(FORBIDDEN_SOURCES), f"{what}: {policy}"
    assert headers.get("x-content-type-options") == "nosniff", what  # type: ignore[attr-defined]
    assert headers.get("referrer-policy"), what  # type: ignore[attr-defined]


@dataclass
class Site:
    world: World
    task_id: str
    pages: list[str]  # every GET route that is not the JSON API, with example ids


def _task(client: TestClient) -> str:
    page = client.get("/settings")
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert token
    response = client.post(
        "/settings/default-synced-labels/apply", data={"csrf_token": token[1]}, follow_redirects=False
    )
    assert response.status_code == 303, response.text
    return response.headers["location"].rsplit("/", 1)[1]


def page_paths(
    app: FastAPI, world: World, task_id: str, experiment_id: str, link_tokens: dict[str, str]
) -> list[str]:
    """The app's GET routes outside the JSON API (its routers are included without a prefix), their path
    parameters filled in. A route with a new parameter fails here until it is given an example.
    `link_tokens` holds a working token of each account link page, by its path's first part."""
    paths = []
    for route in [*app.routes, *(route for router in ROUTERS for route in router.routes)]:
        if not isinstance(route, APIRoute) or "GET" not in route.methods:
            continue
        if route.path.startswith("/api/") or route.path in {"/health", "/openapi.json"}:
            continue
        if (
            route.path == "/notifications/stream"
        ):  # an event stream never ends; tests/outbound/notify reads it
            continue
        if route.path.endswith(".csv"):  # a download, not a page
            continue
        emails = world.unassigned_ids if route.path.startswith("/unassigned/") else world.email_ids
        examples = {
            "company_id": world.company_ids[0],
            "contact_id": world.contact_ids[0],
            "email_id": emails[0],
            "conversation_id": world.conversation_ids[0],
            "task_id": task_id,
            "outbound_id": world.outbound_ids[0],
            "template_id": world.template_ids[0],
            "sequence_id": world.sequence_ids[0],
            "bulk_id": world.bulk_ids[0],
            "experiment_id": experiment_id,
            "provider": "google",
            "message_name": DEMO_SENT_MESSAGE,
            "token": link_tokens.get(route.path.split("/")[1])
            or unsubscribe_url("", app.state.secret_box, world.team.workspace_id, world.contact_ids[0])[3:],
            "user_id": world.team.member_id,
        }
        paths.append(route.path.format(**examples))
    # A sent email's page, with its engagement badges and events.
    paths.extend(f"/outbox/{outbound_id}" for outbound_id in world.sent_ids)
    return paths


DEMO_SENT_MESSAGE = "1765000000000000000-0123abcd.eml"


@pytest.fixture
def site(
    app: FastAPI, client: TestClient, sessions: sessionmaker[Session], team: Team, tmp_path: Path
) -> Site:
    world = build_world(sessions, team)
    # As under `touchline demo`, so that its Sent by the demo pages are among those visited.
    sent = tmp_path / "demo-sent"
    sent.mkdir()
    (sent / DEMO_SENT_MESSAGE).write_bytes(b"From: a@team-a.example\r\nSubject: Hello\r\n\r\nHi\r\n")
    app.state.settings.demo_sent_folder = sent
    response = sign_in_form(client, ADMIN_EMAIL, ADMIN_PASSWORD)
    assert response.status_code == 303, response.text
    task_id = _task(client)
    experiment_id = _experiment(sessions, team, world)
    return Site(
        world, task_id, page_paths(app, world, task_id, experiment_id, _link_tokens(app, sessions, team))
    )


def _link_tokens(app: FastAPI, sessions: sessionmaker[Session], team: Team) -> dict[str, str]:
    """A pending invitation (the member's) and password reset link (the viewer's), by page."""
    tokens = {}
    with session_scope(sessions) as session:
        operator = Actor.operator(team.workspace_id)
        for user_id, purpose in ((team.member_id, INVITATION), (team.viewer_id, RESET)):
            issued = account_links.issue(session, operator, app.state.settings, user_id, purpose, utcnow())
            tokens[issued.url.split("/")[-2]] = issued.url.rsplit("/", 1)[1]
    return tokens


def _experiment(sessions: sessionmaker[Session], team: Team, world: World) -> str:
    """An A/B test between the world's first and last templates (whose names are planted text)."""
    with session_scope(sessions) as session:
        operator = Actor.operator(team.workspace_id)
        chosen = [session.get_one(Template, one) for one in (world.template_ids[0], world.template_ids[-1])]
        return str(
            experiments.create(session, operator, chosen, name="Subject lines", bulk_id=world.bulk_ids[0]).id
        )


def test_every_response_carries_the_policy(client: TestClient, site: Site) -> None:
    html = 0
    for path in site.pages:
        response = client.get(path, follow_redirects=False)
        assert_strict(response.headers, f"GET {path} ({response.status_code})")
        html += response.headers.get("content-type", "").startswith("text/html")
    assert html >= 14, site.pages  # the pages, /docs and the task page; redirects are not HTML
    for path in (f"/companies/{uuid.uuid4()}", "/no-such-page", "/static/app.js", "/openapi.json", "/health"):
        assert_strict(client.get(path).headers, f"GET {path}")
    refused = client.post("/companies", data={"csrf_token": "forged", "name": "X"})
    assert refused.status_code == 403
    assert refused.headers["content-type"].startswith("text/html")
    assert_strict(refused.headers, "a refused form")
    client.post("/logout", data={"csrf_token": "forged"})
    assert_strict(client.get("/login").headers, "the login page")


# Script written into the markup: event-handler attributes, <script> without src, javascript: URLs.
INLINE_SCRIPT = re.compile(r"""\son[a-z]+\s*=|<script(?![^>]*\ssrc=)|javascript:""", re.IGNORECASE)
INLINE_SCRIPT_IN_DOM = """() => Array.from(document.querySelectorAll("*")).flatMap((element) => [
  ...Array.from(element.attributes)
    .filter((attribute) => attribute.name.startsWith("on")
      || (["href", "src", "action", "formaction"].includes(attribute.name)
          && /^\\s*javascript:/i.test(attribute.value)))
    .map((attribute) => `${element.tagName} ${attribute.name}="${attribute.value}"`),
  ...(element.tagName === "SCRIPT" && !element.src ? ["an inline <script>"] : []),
])"""


def test_templates_hold_no_inline_script() -> None:
    """Chromium reports an inline handler only when it fires, so the templates are read as well."""
    templates = sorted((Path(touchline.__file__).parent / "templates").glob("*.html"))
    assert templates
    for template in templates:
        found = INLINE_SCRIPT.findall(template.read_text())
        assert found == [], f"{template.name}: {found}"


@dataclass
class Violations:
    """CSP violations a page reported, from the DOM event and from the console."""

    reported: list[str] = field(default_factory=list)

    def on_report(self, source: Mapping[str, object], report: str) -> None:
        frame = source["frame"]
        assert isinstance(frame, Frame)
        self.reported.append(f"{frame.url}: {report}")

    def on_console(self, message: ConsoleMessage) -> None:
        if "Content Security Policy" in message.text:
            self.reported.append(f"console on {message.page.url if message.page else '?'}: {message.text}")


REPORT_VIOLATIONS = """window.__cspViolations = [];
document.addEventListener("securitypolicyviolation", (event) => {
  const report = [event.violatedDirective, event.blockedURI, event.sourceFile, event.lineNumber].join(" ");
  window.__cspViolations.push(report);
  window.reportViolation(report);
});"""


@pytest.fixture
def guarded(page: Page) -> tuple[Page, Violations, list[str]]:
    """A page under the policy, reporting violations, that may not reach beyond this machine: a request
    to any other host is refused and remembered."""
    violations = Violations()
    off_site: list[str] = []

    def only_loopback(route: Route) -> None:
        if urlsplit(route.request.url).hostname == "127.0.0.1":
            route.continue_()
        else:
            off_site.append(route.request.url)
            route.abort()

    page.route("**/*", only_loopback)
    page.expose_binding("reportViolation", violations.on_report)
    page.add_init_script(REPORT_VIOLATIONS)
    page.on("console", violations.on_console)
    return page, violations, off_site


def test_no_page_breaks_the_policy(
    guarded: tuple[Page, Violations, list[str]], live_server: str, site: Site
) -> None:
    page, violations, off_site = guarded
    log_in(page, live_server, ADMIN_EMAIL, ADMIN_PASSWORD)
    visited = 0
    for path in site.pages:
        response = page.goto(f"{live_server}{path}")
        assert response is not None
        if urlsplit(page.url).hostname == "127.0.0.1":
            page.wait_for_load_state("load")
            assert page.evaluate(INLINE_SCRIPT_IN_DOM) == [], page.url
            visited += 1
    assert visited >= 14
    page.goto(f"{live_server}/companies/{uuid.uuid4()}")  # an error page
    assert violations.reported == []
    assert off_site == []

    # The policy is really there: markup that escaped into a page would not run.
    page.goto(f"{live_server}/companies")
    page.evaluate(
        """document.body.insertAdjacentHTML("beforeend", '<img src="x" onerror="window.__ran = 1">')"""
    )
    page.wait_for_function("() => window.__cspViolations.length > 0")
    assert page.evaluate("window.__ran") is None
    assert any("script-src" in report for report in violations.reported), violations.reported


def test_api_docs_render_offline_under_the_policy(
    guarded: tuple[Page, Violations, list[str]], live_server: str
) -> None:
    page, violations, off_site = guarded
    page.goto(f"{live_server}/docs")
    expect(page.get_by_text("Database and queue status")).to_be_visible()  # GET /health's summary
    expect(page.locator(".opblock").first).to_be_visible()
    assert page.locator(".opblock").count() > 20
    page.get_by_text("Database and queue status").click()  # an operation opens, as a reader would
    expect(page.get_by_role("button", name="Try it out")).to_be_visible()
    assert off_site == []
    assert violations.reported == []
