"""Raw MIME posted to a log address by a mail provider's inbound routing, authenticated per workspace."""

from __future__ import annotations

import base64
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from tests.conftest import Team
from tests.receive.conftest import CUSTOMER, FakeDns, LogWorld, Signer, message, team_signer
from touchline.config import Settings
from touchline.inbound.receive.endpoints import sender_checks


def credentials(client: TestClient, team: Team) -> dict[str, str]:
    response = client.get("/api/v1/inbound/credentials", headers=team.headers("admin"))
    assert response.status_code == 200, response.text
    return dict(response.json())


@pytest.fixture(autouse=True)
def dkim_signed_by_the_team(client: TestClient, dns: FakeDns, signer: Signer) -> Iterator[None]:
    """The team's mail server signs its mail with DKIM, and the app looks its key up in `dns`."""
    signer.publish(dns, "team-a.example")
    overrides = client.app.dependency_overrides  # type: ignore[attr-defined]
    checks = dns.checks()
    overrides[sender_checks] = lambda: checks
    yield
    overrides.pop(sender_checks, None)


def post(client: TestClient, world: LogWorld, raw: bytes, **headers: str) -> tuple[int, dict[str, object]]:
    """Post `raw` as the provider would, DKIM-signed by team-a.example's server."""
    response = client.post(
        f"/api/v1/inbound/{world.log_address}/messages",
        content=team_signer().sign(raw, "team-a.example"),
        headers={"Content-Type": "message/rfc822", **headers},
    )
    return response.status_code, response.json()


def test_a_provider_posts_raw_mime_with_the_secret(client: TestClient, world: LogWorld) -> None:
    secret = credentials(client, world.team)
    assert secret["log_address"] == world.log_address
    assert secret["http_endpoint"].endswith(f"/api/v1/inbound/{world.log_address}/messages")
    raw = message("Posted by the provider")
    code, body = post(client, world, raw, **{secret["secret_header"]: secret["inbound_secret"]})
    assert code == 201, body
    assert body["outcome"] == "logged"
    assert body["unassigned"] is False
    # The same message again (a provider retry) is stored once and answered 200.
    code, again = post(client, world, raw, **{secret["secret_header"]: secret["inbound_secret"]})
    assert (code, again["email_id"]) == (200, body["email_id"])
    records = world.emails()
    assert len(records) == 1
    assert records[0]["source"] == "log"
    assert records[0]["companies"] == [str(world.company_id)]
    assert world.email(str(body["email_id"])).decision["log"][-1]["channel"] == "http"


def test_basic_authentication_in_the_url_works_too(client: TestClient, world: LogWorld) -> None:
    secret = credentials(client, world.team)["inbound_secret"]
    token = base64.b64encode(f"{world.log_address}:{secret}".encode()).decode()
    code, body = post(client, world, world.forwarded("gmail.eml"), Authorization=f"Basic {token}")
    assert code == 201, body
    assert body["unassigned"] is True
    assert body["suggested_company_ids"] == [str(world.company_id)]


@pytest.mark.parametrize("secret", ["", "tlin_wrong", "x" * 500])
def test_a_wrong_or_missing_secret_is_401(client: TestClient, world: LogWorld, secret: str) -> None:
    headers = {"X-Touchline-Inbound-Secret": secret} if secret else {}
    code, body = post(client, world, message("Nope"), **headers)
    assert code == 401
    assert body["detail"] == "unknown log address or wrong inbound secret"
    assert world.emails() == []


def test_the_secret_belongs_to_one_workspace_and_can_be_rotated(
    client: TestClient, world: LogWorld, other_team: Team
) -> None:
    other = credentials(client, other_team)
    code, _ = post(client, world, message("Cross"), **{other["secret_header"]: other["inbound_secret"]})
    assert code == 401
    old = credentials(client, world.team)
    response = client.post("/api/v1/inbound/credentials/rotate", headers=world.team.headers("admin"))
    assert response.status_code == 200
    new = response.json()
    assert new["inbound_secret"] != old["inbound_secret"]
    code, _ = post(client, world, message("Old"), **{old["secret_header"]: old["inbound_secret"]})
    assert code == 401
    code, _ = post(client, world, message("New"), **{new["secret_header"]: new["inbound_secret"]})
    assert code == 201
    for who in ("member", "viewer"):
        assert client.get("/api/v1/inbound/credentials", headers=world.team.headers(who)).status_code == 403


def test_refusals_and_sizes(client: TestClient, world: LogWorld, settings: Settings) -> None:
    secret = credentials(client, world.team)
    auth = {secret["secret_header"]: secret["inbound_secret"]}
    stranger = message("Spam", sender="Mallory <mallory@stranger.example>")
    code, body = post(client, world, stranger, **auth)
    assert (code, body["code"]) == (422, "sender-not-user")
    # The envelope sender the provider reports is checked like SMTP's MAIL FROM.
    response = client.post(
        f"/api/v1/inbound/{world.log_address}/messages",
        params={"envelope_from": "mallory@stranger.example"},
        content=message("Relayed"),
        headers=auth,
    )
    assert (response.status_code, response.json()["code"]) == (422, "envelope-not-user")
    response = client.post(
        f"/api/v1/inbound/{world.log_address}/messages",
        params={"envelope_from": "member@team-a.example\r\nBcc: mallory@stranger.example"},
        content=message("Injected"),
        headers=auth,
    )
    assert response.status_code == 422
    too_big = b"x" * (settings.inbound_max_message_bytes + 1)
    response = client.post(f"/api/v1/inbound/{world.log_address}/messages", content=too_big, headers=auth)
    assert response.status_code == 413
    assert world.emails() == []
    refused = client.get("/api/v1/inbound/refusals", headers=world.team.headers("admin")).json()
    assert [item["code"] for item in refused["items"]] == [
        "envelope-not-user",
        "envelope-not-user",
        "sender-not-user",
    ]
    assert all(item["channel"] == "http" for item in refused["items"])
    assert client.get("/api/v1/inbound/refusals", headers=world.team.headers("member")).status_code == 403


def test_contacts_are_created_like_synced_mail(client: TestClient, world: LogWorld) -> None:
    secret = credentials(client, world.team)
    raw = message("Hello Pat", to=f"Pat Doe <pat.doe@{CUSTOMER}>")
    code, _ = post(client, world, raw, **{secret["secret_header"]: secret["inbound_secret"]})
    assert code == 201
    contacts = client.get("/api/v1/contacts", headers=world.team.headers("admin")).json()["items"]
    assert [(c["email"], c["name"]) for c in contacts] == [(f"pat.doe@{CUSTOMER}", "Pat Doe")]
