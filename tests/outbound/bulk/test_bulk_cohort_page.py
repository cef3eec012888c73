"""The cohort page: the recipients of a template who did not reply, their CSV, and "send a follow-up to
these" making a bulk send to exactly them (the form checks CSRF)."""

from __future__ import annotations

import csv
import io
import re
import uuid

from fastapi import FastAPI
from fastapi.testclient import TestClient

from tests.conftest import csrf_of, sign_in_form
from tests.outbound.bulk.conftest import Crowd
from tests.outbound.bulk.test_bulk_cohort import _sent_news
from tests.outbound.bulk.test_bulk_pages import ADMIN, PASSWORD, _through_relay
from touchline.config import Settings
from touchline.db import session_scope
from touchline.models import BulkSend


def test_cohort_page_csv_and_follow_up(client: TestClient, crowd: Crowd, relay_settings: Settings) -> None:
    app = client.app
    assert isinstance(app, FastAPI)
    _through_relay(app, crowd, relay_settings)
    template_id = _sent_news(crowd, {"user1@acme.example": True, "user2@acme.example": False})
    assert sign_in_form(client, ADMIN, PASSWORD).status_code == 303
    query = {"template": str(template_id), "outcome": "reply"}
    page = client.get("/analytics/cohort", params=query)
    assert page.status_code == 200, page.text
    members = re.search(r'<table id="cohort-members">.*?</table>', page.text, re.S)
    assert members is not None
    assert "user2@acme.example" in members[0]
    assert "user1@acme.example" not in members[0]
    download = client.get("/analytics/cohort.csv", params=query)
    assert [row[0] for row in csv.reader(io.StringIO(download.text))] == ["address", "user2@acme.example"]

    action = re.search(r'action="(/analytics/cohort/follow-up\?[^"]+)"', page.text)
    assert action is not None
    form = {"sender": ADMIN, "template_id": str(template_id)}
    url = action[1].replace("&amp;", "&")
    assert client.post(url, data={"csrf_token": "forged", **form}).status_code == 403
    sent = client.post(url, data={"csrf_token": csrf_of(page.text), **form}, follow_redirects=False)
    assert sent.status_code == 303, sent.text
    bulk_id = uuid.UUID(sent.headers["location"].rsplit("/", 1)[1])
    with session_scope(crowd.world.sessions) as session:
        bulk = session.get(BulkSend, bulk_id)
        assert bulk is not None
        assert bulk.contact_ids == [str(crowd.contacts["user2@acme.example"])]
