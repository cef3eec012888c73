"""The sequence pages in Chromium: build a sequence, see a refusal keep what was typed, enrol by
filter, then pause, resume and unenrol with a confirmation each; no Content-Security-Policy report."""

from __future__ import annotations

import pytest
from playwright.sync_api import Dialog, Page, expect
from sqlalchemy.orm import Session, sessionmaker

from tests.browser import console_csp_violations
from tests.conftest import Team
from tests.pages.test_companies_pages import log_in
from touchline.db import session_scope
from touchline.models import Contact
from touchline.outbound.templates import service as templates
from touchline.workspace import service as workspace_service
from touchline.workspace.permissions import Actor


@pytest.mark.browser
def test_build_a_sequence_enrol_by_filter_and_steer_the_enrolment(
    page: Page, live_server: str, team: Team, sessions: sessionmaker[Session]
) -> None:
    with session_scope(sessions) as session:
        admin = workspace_service.actor_for(
            workspace_service.get_user(session, Actor.operator(team.workspace_id), team.admin_id)
        )
        for name in ("Welcome", "Nudge"):
            templates.create_template(session, admin, name, templates.TemplateText(name, f"<p>{name}</p>"))
        session.add(Contact(workspace_id=team.workspace_id, email="jane@acme.example", name="Jane Doe"))
        berlin = workspace_service.SettingsChange(time_zone="Europe/Berlin")
        workspace_service.update_settings(session, Actor.operator(team.workspace_id), berlin)
    problems = console_csp_violations(page)
    questions: list[str] = []

    def confirm(dialog: Dialog) -> None:
        questions.append(dialog.message)
        dialog.accept()

    page.on("dialog", confirm)
    log_in(page, live_server, "admin@team-a.example", "admin-password-123")

    page.get_by_role("link", name="Sequences").click()
    new = page.locator("#new-sequence")
    new.get_by_label("Name", exact=True).fill("Onboarding")
    expect(new.get_by_label("Time zone")).to_have_value("Europe/Berlin")  # the workspace's, to start from
    new.get_by_label("Template of step 1").select_option(label="Welcome")
    new.get_by_role("button", name="Create sequence").click()
    expect(page.get_by_role("heading", name="Onboarding")).to_be_visible()
    expect(page.get_by_text("Sequence created.")).to_be_visible()

    builder = page.locator("#sequence-builder")
    builder.get_by_label("Template of step 2").select_option(label="Nudge")
    builder.get_by_label("Delay of step 2").fill("2")
    builder.get_by_label("Condition of step 2").fill("step 3 opened")
    builder.get_by_role("button", name="Save sequence").click()
    expect(page.get_by_role("alert")).to_contain_text(
        "step 2: step 2 can only depend on the outcome of an earlier step"
    )
    expect(builder.get_by_label("Condition of step 2")).to_have_value("step 3 opened")
    builder.get_by_label("Condition of step 2").fill("step 1 not opened")
    builder.get_by_role("button", name="Save sequence").click()
    expect(page.get_by_text("Sequence saved.")).to_be_visible()
    expect(builder.get_by_label("Template of step 2")).to_have_value(
        builder.get_by_label("Template of step 2").locator("option", has_text="Nudge").get_attribute("value")
        or ""
    )
    expect(builder.get_by_label("Condition of step 2")).to_have_value("step 1 not opened")

    by_hand = page.locator("#enrol-by-hand")
    by_hand.get_by_label("Or these endusers").fill("nobody@acme.example")
    by_hand.get_by_role("button", name="Enrol", exact=True).click()
    expect(page.get_by_role("alert")).to_contain_text("no contact with the address nobody@acme.example")
    expect(page.locator("#enrol-by-hand").get_by_label("Or these endusers")).to_have_value(
        "nobody@acme.example"
    )

    enrol = page.locator("#enrol-by-filter")
    enrol.get_by_label("Every enduser where").fill("enduser.email~jane")
    enrol.get_by_role("button", name="Enrol matching endusers").click()
    expect(page.get_by_text("1 enduser enrolled.")).to_be_visible()
    row = page.locator("#enrolments tr[data-enrolment='jane@acme.example']")
    expect(row.locator(".state")).to_have_text("active")
    expect(row).to_contain_text("Europe/Berlin")  # when its next step leaves, on the workspace's clock

    row.get_by_role("button", name="Pause").click()
    expect(row.locator(".state")).to_have_text("paused")
    row.get_by_role("button", name="Resume").click()
    expect(row.locator(".state")).to_have_text("active")
    row.get_by_role("button", name="Unenrol").click()
    expect(row.locator(".state")).to_contain_text("unenrolled by admin@team-a.example")
    assert questions == [
        "Pause jane@acme.example?",
        "Resume jane@acme.example? An overdue step goes at the next window.",
        "Unenrol jane@acme.example? No further step is sent.",
    ]

    page.get_by_role("link", name="Sequences").click()
    expect(page.locator("#sequence-list")).to_contain_text("Onboarding")
    expect(page.locator("#sequence-list")).to_contain_text("1 unenrolled")
    assert problems == []
