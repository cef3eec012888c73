"""Engagement on the pages people read: badges and the event list of each sent email in the outbox,
on the outbound email's page, and on the company and contact timelines and email page through its sent
copy; members see only their own emails' engagement, as the API's rule says."""

from __future__ import annotations

import re
import uuid
from datetime import timedelta

from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, sessionmaker

from tests.conftest import Team, sign_in_form
from tests.outbound.engagement.conftest import SENT_AT, add_contact, add_event, link_ids, sent_email
from touchline.db import session_scope
from touchline.kit.crypto import hash_password
from touchline.models import Email, EmailCompany, EmailContact, EngagementEvent, OutboundEmail, User
from touchline.outbound.engagement import service
from touchline.outbound.sequences import service as sequences
from touchline.outbound.templates import service as templates
from touchline.workspace import service as workspace_service
from touchline.workspace.permissions import Actor

MEMBER_PASSWORD = "member-password-123"


def sent_copy(
    sessions: sessionmaker[Session], team: Team, outbound_id: uuid.UUID, contact_id: uuid.UUID
) -> uuid.UUID:
    """The stored copy of a sent email, linked to the contact and its company as sync links it."""
    with session_scope(sessions) as session:
        row = session.get(OutboundEmail, outbound_id)
        assert row is not None
        email = Email(
            workspace_id=team.workspace_id,
            dedup_key=row.message_id.strip("<>"),
            message_id=row.message_id.strip("<>"),
            subject=row.subject,
            sent_at=SENT_AT,
            from_address=row.from_address,
            to_addresses=[r.address for r in row.recipients],
            source="sync",
        )
        session.add(email)
        session.flush()
        row.email_id = email.id
        session.add(EmailContact(email_id=email.id, contact_id=contact_id))
        contact_company = row.recipients[0].company_id
        assert contact_company is not None
        session.add(EmailCompany(email_id=email.id, company_id=contact_company))
        return email.id


def tracked(
    sessions: sessionmaker[Session], team: Team, sender_id: uuid.UUID | None = None
) -> tuple[uuid.UUID, uuid.UUID, uuid.UUID]:
    """A member's sent email to a customer: a scanner's open, a person's open and click, a reply and a
    soft bounce; and its stored sent copy."""
    customer = add_contact(sessions, team, "jo@customer.example", company="Customer Ltd")
    outbound_id = sent_email(
        sessions, team, [customer.address], sender_id=sender_id, links=1, subject="Renewal plans"
    )
    (link,) = link_ids(sessions, outbound_id)
    add_event(sessions, team, outbound_id, "open", timedelta(seconds=1))
    add_event(sessions, team, outbound_id, "open", timedelta(minutes=5))
    add_event(sessions, team, outbound_id, "click", timedelta(minutes=6), link_id=link)
    with session_scope(sessions) as session:
        session.add(
            EngagementEvent(
                workspace_id=team.workspace_id,
                outbound_email_id=outbound_id,
                kind="bounce",
                occurred_at=SENT_AT + timedelta(hours=1),
                detail={
                    "kind": "soft",
                    "status": "4.2.2",
                    "diagnostic": "mailbox full",
                    "address": customer.address,
                },
            )
        )
        service.refresh(session, [outbound_id])
    return outbound_id, sent_copy(sessions, team, outbound_id, customer.contact_id), customer.contact_id


def engagement_of(html: str) -> list[str]:
    return re.findall(r'<span class="badge [a-z]+"[^>]*>([^<]+)</span>', html)


def test_admins_see_badges_and_events_in_the_outbox_and_on_each_page(
    client: TestClient, team: Team, sessions: sessionmaker[Session]
) -> None:
    outbound_id, copy_id, contact_id = tracked(sessions, team)
    assert sign_in_form(client, "admin@team-a.example", "admin-password-123").status_code == 303
    outbox = client.get("/outbox?who=everyone").text
    assert engagement_of(outbox) == ["opened", "clicked", "bounced (soft)", "machine"]
    email_page = client.get(f"/outbox/{outbound_id}").text
    for page in (outbox, email_page):
        assert "open 1.0 s after sending (within 2 s)" in page  # the machine reason
        assert 'href="https://example.com/0"' in page
        assert "soft 4.2.2 jo@customer.example: mailbox full" in page
    with session_scope(sessions) as session:
        company_id = session.get(OutboundEmail, outbound_id).recipients[0].company_id  # type: ignore[union-attr]
    for path in (f"/companies/{company_id}", f"/contacts/{contact_id}", f"/emails/{copy_id}"):
        html = client.get(path).text
        assert engagement_of(html)[:3] == ["opened", "clicked", "bounced (soft)"], path
        assert "mailbox full" in html, path


def test_tracking_off_and_machine_only_are_shown_as_such(
    client: TestClient, team: Team, sessions: sessionmaker[Session]
) -> None:
    customer = add_contact(sessions, team, "jo@customer.example")
    untracked = sent_email(sessions, team, [customer.address], track_opens=False, track_clicks=False)
    scanned = sent_email(sessions, team, [customer.address], links=1)
    (link,) = link_ids(sessions, scanned)
    add_event(
        sessions, team, scanned, "open", timedelta(minutes=1), machine_reason="user agent GoogleImageProxy"
    )
    add_event(sessions, team, scanned, "click", timedelta(seconds=1), link_id=link)
    with session_scope(sessions) as session:
        service.refresh(session, [untracked, scanned])
    assert sign_in_form(client, "admin@team-a.example", "admin-password-123").status_code == 303
    assert engagement_of(client.get(f"/outbox/{untracked}").text) == [
        "opens not tracked",
        "clicks not tracked",
    ]
    scanned_page = client.get(f"/outbox/{scanned}").text
    assert engagement_of(scanned_page)[:2] == ["opened by machine only", "clicked by machine only"]
    assert "user agent GoogleImageProxy" in scanned_page


def test_members_see_the_engagement_of_their_own_emails_only(
    client: TestClient, team: Team, sessions: sessionmaker[Session]
) -> None:
    outbound_id, copy_id, contact_id = tracked(sessions, team, sender_id=team.admin_id)
    with session_scope(sessions) as session:
        session.get(User, team.member_id).password_hash = hash_password(MEMBER_PASSWORD)  # type: ignore[union-attr]
    assert sign_in_form(client, "member@team-a.example", MEMBER_PASSWORD).status_code == 303
    for path in (f"/contacts/{contact_id}", f"/emails/{copy_id}"):
        html = client.get(path).text
        assert "Renewal plans" in html
        assert engagement_of(html) == [], path
    assert client.get(f"/outbox/{outbound_id}").status_code == 404


def test_the_sequence_page_shows_each_step_s_outcomes(
    client: TestClient, team: Team, sessions: sessionmaker[Session]
) -> None:
    with session_scope(sessions) as session:
        operator = Actor.operator(team.workspace_id)
        member = workspace_service.actor_for(workspace_service.get_user(session, operator, team.member_id))
        template = templates.create_template(
            session, operator, "Welcome", templates.TemplateText("Hi", "<p>Hi</p>")
        )
        spec = sequences.SequenceSpec(
            "Onboarding",
            "member@team-a.example",
            [sequences.StepSpec(template.id), sequences.StepSpec(template.id)],
        )
        sequence_id = sequences.create_sequence(session, member, spec).id
    first = [add_contact(sessions, team, f"user{i}@customer.example") for i in range(3)]
    step_one = [
        sent_email(sessions, team, [one.address], links=1, sequence_id=sequence_id, sequence_step=1)
        for one in first
    ]
    step_two = sent_email(sessions, team, [first[0].address], sequence_id=sequence_id, sequence_step=2)
    (link,) = link_ids(sessions, step_one[0])
    add_event(sessions, team, step_one[0], "open", timedelta(minutes=3))
    add_event(sessions, team, step_one[0], "click", timedelta(minutes=4), link_id=link)
    add_event(sessions, team, step_one[1], "open", timedelta(seconds=1))  # a scanner's, within 2 s
    with session_scope(sessions) as session:
        session.add(
            EngagementEvent(
                workspace_id=team.workspace_id,
                outbound_email_id=step_two,
                kind="bounce",
                occurred_at=SENT_AT + timedelta(hours=1),
                detail={"kind": "hard", "status": "5.1.1", "diagnostic": "no such user"},
            )
        )
        service.refresh(session, [*step_one, step_two])
    assert sign_in_form(client, "admin@team-a.example", "admin-password-123").status_code == 303
    html = client.get(f"/sequences/{sequence_id}").text
    rows = {
        step: re.findall(r"<td>(\d+)</td>", row)
        for step, row in re.findall(r'<tr data-step="(\d)">(.*?)</tr>', html)
    }
    # step, sent, opened, opened by a person, clicked, clicked by a person, replied, bounced
    assert rows == {
        "1": ["1", "3", "2", "1", "1", "1", "0", "0"],
        "2": ["2", "1", "0", "0", "0", "0", "0", "1"],
    }
