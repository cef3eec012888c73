"""A bulk send carries its template's UTM parameters, merge fields filled in for each enduser, as a
single send does: both come through the outbox's one rendering of a template."""

from __future__ import annotations

from sqlalchemy import select, update

from tests.outbound.bulk.conftest import Crowd
from tests.outbound.bulk.helpers import emails_of, request, start
from touchline.db import session_scope
from touchline.models import Template, TrackedLink

UTM = {"utm_source": "touchline", "utm_medium": "email", "utm_campaign": "news for {{ company.name }}"}


def test_each_email_of_a_bulk_send_carries_the_template_s_utm(crowd: Crowd) -> None:
    with session_scope(crowd.world.sessions) as session:
        session.execute(
            update(Template)
            .where(Template.name == "news")
            .values(
                utm=UTM,
                html='<p>Hi {{ enduser.first_name }}, <a href="https://acme.example/plans">plans</a></p>',
            )
        )
    bulk_id = start(crowd, request("company.name=Globex"))
    rows = emails_of(crowd, bulk_id)
    assert len(rows) == 5  # Globex's first enduser has no name to greet
    assert {row.utm["utm_campaign"] for row in rows if row.utm} == {"news for Globex"}
    assert all(row.utm == {**UTM, "utm_campaign": "news for Globex"} for row in rows)
    crowd.world.deliver(rows[0].id)
    with session_scope(crowd.world.sessions) as session:
        urls = session.scalars(
            select(TrackedLink.url).where(
                TrackedLink.outbound_email_id == rows[0].id, TrackedLink.kind == "click"
            )
        ).all()
    assert urls
    assert all("utm_campaign=news+for+Globex" in (url or "") for url in urls)
