"""Mail to the log address is logged only when it is authenticated for its From domain (SPEC §4).

A From header naming a workspace's user proves nothing: DKIM aligned with the From domain, SPF for
an aligned envelope domain, a trusted forwarder's ARC seal, or one of the operator's relays must
vouch for it, unless an admin relaxed the rule for that domain.
"""

from __future__ import annotations

import re
import smtplib
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from hypothesis import assume, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from tests.conftest import sign_in_form
from tests.receive.conftest import CUSTOMER, FakeDns, LogWorld, Signer, message, serve
from touchline.config import Settings
from touchline.db import session_scope
from touchline.inbound.parse import header_block
from touchline.inbound.receive import service
from touchline.inbound.receive.authentication import Evidence, SenderChecks, judge
from touchline.inbound.receive.endpoints import sender_checks
from touchline.inbound.receive.signatures import (
    ArcResult,
    DkimResult,
    SignatureResult,
    SpfResult,
    verify_arc,
    verify_spf,
)
from touchline.inbound.receive.smtp import InboundServer
from touchline.models import AuditEntry, Contact
from touchline.workspace import service as workspace_service

USER = "member@team-a.example"
FORWARDER = "forwarder.example"
DKIM_FOUND = "dkim=pass header.d=team-a.example header.s=s1"


def send(server: InboundServer, raw: bytes, recipient: str, sender: str = USER) -> tuple[int, str]:
    with smtplib.SMTP("127.0.0.1", server.port, timeout=30) as client:
        client.ehlo("client.test")
        client.mail(sender)
        code, reply = client.rcpt(recipient)
        assert code == 250, reply
        code, reply = client.data(raw)
        return code, reply.decode()


@pytest.fixture
def arc_server(settings: Settings, sessions: sessionmaker[Session], dns: FakeDns) -> Iterator[InboundServer]:
    """Trusts no network, and believes the ARC seals of forwarder.example."""
    with serve(settings, sessions, dns.checks(sealers=frozenset({FORWARDER}))) as server:
        yield server


def test_forged_mail_from_a_users_address_is_refused_and_recorded_with_why(
    world: LogWorld, strict_server: InboundServer
) -> None:
    # Anyone can write a colleague's address in From and MAIL FROM: nothing vouches for it.
    forged = message("Please wire the money", sender=f"Mia Member <{USER}>")
    code, reply = send(strict_server, forged, world.log_address)
    assert code == 550, reply
    assert reply.startswith("5.7.26 not authenticated")
    assert world.emails() == []
    [refusal] = world.refusals()
    assert (refusal.code, refusal.stage, refusal.subject) == (
        "not-authenticated",
        "data",
        "Please wire the money",
    )
    assert "no DKIM signature aligned with team-a.example" in refusal.reason
    assert "SPF none for 127.0.0.1 sending as team-a.example" in refusal.reason


def test_a_forger_on_another_network_is_refused_with_the_spf_result_for_its_address(
    world: LogWorld, dns: FakeDns
) -> None:
    dns.spf_records["team-a.example"] = "v=spf1 ip4:198.51.100.0/24 ~all"
    result = service.log_message(
        world.sessions,
        world.team.workspace_id,
        message("Forged from outside"),
        service.Envelope("smtp", USER, "203.0.113.5"),
        max_bytes=1_000_000,
        checks=dns.checks(),
    )
    assert (result.outcome, result.code, result.reason_code) == ("refused", 550, "not-authenticated")
    [refusal] = world.refusals()
    assert refusal.remote == "203.0.113.5"
    assert refusal.reason.startswith(
        "not authenticated: no DKIM signature aligned with team-a.example (none at all), "
        "SPF softfail for 203.0.113.5 sending as team-a.example"
    )


def test_an_aligned_dkim_signature_authenticates(
    world: LogWorld, strict_server: InboundServer, dns: FakeDns, signer: Signer
) -> None:
    signer.publish(dns, "team-a.example")
    signer.publish(dns, "mail.team-a.example")
    code, reply = send(strict_server, signer.sign(message("Signed"), "team-a.example"), world.log_address)
    assert code == 250, reply
    # A subdomain of the From domain is aligned too (DMARC's relaxed mode).
    code, reply = send(strict_server, signer.sign(message("Sub"), "mail.team-a.example"), world.log_address)
    assert code == 250, reply
    assert sorted(str(r["subject"]) for r in world.emails()) == ["Signed", "Sub"]
    assert world.refusals() == []


def test_a_valid_signature_of_another_domain_does_not(
    world: LogWorld, strict_server: InboundServer, dns: FakeDns, signer: Signer
) -> None:
    signer.publish(dns, "bulk-mailer.example")
    raw = signer.sign(message("Signed by someone else"), "bulk-mailer.example")
    code, reply = send(strict_server, raw, world.log_address)
    assert code == 550, reply
    [refusal] = world.refusals()
    assert "no DKIM signature aligned with team-a.example (d=bulk-mailer.example pass)" in refusal.reason
    assert refusal.dkim["status"] == "unaligned"


def test_spf_for_an_aligned_envelope_domain_authenticates(
    world: LogWorld, strict_server: InboundServer, dns: FakeDns
) -> None:
    dns.spf_records["team-a.example"] = "v=spf1 ip4:127.0.0.0/8 -all"
    code, reply = send(strict_server, message("Sent by our own server"), world.log_address)
    assert code == 250, reply
    [logged] = world.emails()
    record = world.email(str(logged["id"])).decision["log"][-1]
    assert record["spf"] == {
        "status": "pass",
        "client": "127.0.0.1",
        "domain": "team-a.example",
        "detail": "sender SPF authorized",
    }


def test_spf_for_an_envelope_domain_not_aligned_with_from_does_not(dns: FakeDns) -> None:
    dns.spf_records["bulk-mailer.example"] = "v=spf1 ip4:203.0.113.0/24 -all"
    spf = verify_spf("203.0.113.5", "bounces@bulk-mailer.example", lookup=dns.spf)
    assert (spf.status, spf.domain) == ("pass", "bulk-mailer.example")
    verdict = judge(["team-a.example"], "203.0.113.5", Evidence(spf=spf), dns.checks())
    assert not verdict.authenticated
    assert "SPF pass for 203.0.113.5 sending as bulk-mailer.example (not aligned with team-a.example)" in (
        verdict.reason
    )
    aligned = SpfResult("pass", "203.0.113.5", "mail.team-a.example")
    assert judge(["team-a.example"], "203.0.113.5", Evidence(spf=aligned), dns.checks()).by == "spf"


def test_the_operators_own_relays_count_as_authenticated(world: LogWorld, smtp_server: InboundServer) -> None:
    # smtp_server trusts 127.0.0.0/8, as TOUCHLINE_INBOUND_TRUSTED_NETWORKS=127.0.0.0/8 would.
    code, reply = send(smtp_server, message("From the office relay"), world.log_address)
    assert code == 250, reply
    checks = SenderChecks.of(Settings(inbound_trusted_networks="10.0.0.0/8, 2001:db8::/32"))  # type: ignore[arg-type]
    assert checks.trusts_client("10.1.2.3")
    assert checks.trusts_client("2001:db8::25")
    assert not checks.trusts_client("203.0.113.5")
    assert not checks.trusts_client("not an address")
    # Only the address that connected to the SMTP server counts: over HTTP it is a provider's relay.
    assert judge(["team-a.example"], "10.1.2.3", Evidence(), checks).by == "trusted-network"
    assert not judge(["team-a.example"], None, Evidence(), checks).authenticated
    assert not SenderChecks.of(Settings()).trusted_networks  # none by default


def test_an_arc_seal_of_a_trusted_forwarder_authenticates(
    world: LogWorld, arc_server: InboundServer, dns: FakeDns, signer: Signer
) -> None:
    signer.publish(dns, FORWARDER)
    # The forwarder checked team-a.example's signature, then changed the message (a list footer)
    # and sealed what it had found.
    sealed = signer.seal(message("Through the list"), FORWARDER, DKIM_FOUND)
    code, reply = send(arc_server, sealed, world.log_address)
    assert code == 250, reply
    [logged] = world.emails()
    record = world.email(str(logged["id"])).decision["log"][-1]
    assert record["arc"]["status"] == "pass"
    assert record["arc"]["sealer"] == FORWARDER
    assert record["arc"]["passes"] == [["dkim", "team-a.example"]]


def test_an_arc_seal_of_anyone_else_does_not(
    world: LogWorld, arc_server: InboundServer, dns: FakeDns, signer: Signer
) -> None:
    signer.publish(dns, "mallory-forwards.example")
    signer.publish(dns, FORWARDER)
    sealed = signer.seal(message("Sealed by a stranger"), "mallory-forwards.example", DKIM_FOUND)
    code, reply = send(arc_server, sealed, world.log_address)
    assert code == 550, reply
    # A trusted forwarder that found nothing aligned vouches for nothing either.
    unaligned = signer.seal(message("Found nothing"), FORWARDER, "dkim=pass header.d=bulk-mailer.example")
    code, reply = send(arc_server, unaligned, world.log_address)
    assert code == 550, reply
    reasons = [refusal.reason for refusal in world.refusals()]
    assert "ARC sealed by mallory-forwards.example, not a trusted forwarder" in reasons[0]
    assert "ARC sealed by forwarder.example records no pass aligned with team-a.example" in reasons[1]
    assert world.emails() == []


def test_a_broken_arc_chain_is_a_failure(dns: FakeDns, signer: Signer) -> None:
    signer.publish(dns, FORWARDER)
    sealed = signer.seal(message("Sealed"), FORWARDER, DKIM_FOUND)
    assert verify_arc(sealed, header_block(sealed), lookup=dns).status == "pass"
    tampered = sealed.replace(b"Sealed", b"Changed", 1)
    assert verify_arc(tampered, header_block(tampered), lookup=dns).status == "fail"
    dns.failing = True
    assert verify_arc(sealed, header_block(sealed), lookup=dns).status == "temperror"


def test_lookups_that_fail_for_now_defer_rather_than_refuse(
    world: LogWorld, strict_server: InboundServer, dns: FakeDns, signer: Signer
) -> None:
    signer.publish(dns, "team-a.example")
    dns.failing = True
    code, reply = send(strict_server, signer.sign(message("Later"), "team-a.example"), world.log_address)
    assert (code, reply[:5]) == (451, "4.7.5")  # the sender's server retries
    assert world.refusals() == []


def test_an_admin_can_relax_a_domain_with_a_warning_and_it_is_audited(
    client: TestClient, world: LogWorld, strict_server: InboundServer
) -> None:
    admin = world.team.headers("admin")
    patched = client.patch(
        "/api/v1/workspace/settings",
        json={"unauthenticated_sender_domains": ["Team-A.example"]},
        headers=admin,
    )
    assert patched.status_code == 200, patched.text
    body = patched.json()
    assert body["unauthenticated_sender_domains"] == ["team-a.example"]
    assert body["unauthenticated_senders_warning"].startswith("Anyone can forge mail from team-a.example")
    forbidden = client.patch(
        "/api/v1/workspace/settings",
        json={"unauthenticated_sender_domains": []},
        headers=world.team.headers("member"),
    )
    assert forbidden.status_code == 403
    code, reply = send(strict_server, message("Unsigned but relaxed"), world.log_address)
    assert code == 250, reply
    with session_scope(world.sessions) as session:
        [entry] = session.scalars(select(AuditEntry).where(AuditEntry.action == "settings.update")).all()
        assert entry.details == {"unauthenticated_sender_domains": ["team-a.example"]}
    page = _page(client, "admin@team-a.example", "admin-password-123", "/settings")
    assert 'id="unauthenticated-senders-warning"' in page
    assert "Anyone can forge mail from team-a.example" in page
    # Another domain stays strict.
    assert send(strict_server, message("Other", sender="x@elsewhere.example"), world.log_address)[0] == 550


def test_a_viewers_logged_mail_creates_no_contacts(world: LogWorld, smtp_server: InboundServer) -> None:
    to_new_person = f"Jane Doe <jane.doe@{CUSTOMER}>"
    viewer = "viewer@team-a.example"
    raw = message("From a viewer", sender=f"Val Viewer <{viewer}>", to=to_new_person)
    code, reply = send(smtp_server, raw, world.log_address, sender=viewer)
    assert code == 250, reply
    [logged] = world.emails()
    assert logged["companies"] == [str(world.company_id)]
    assert contacts(world) == []
    decision = world.email(str(logged["id"])).decision
    assert "no contact created: the sender's role may not edit customers" in decision["reason"]
    # The same mail from a member creates the contact.
    code, reply = send(smtp_server, message("From a member", to=to_new_person), world.log_address)
    assert code == 250, reply
    assert contacts(world) == [f"jane.doe@{CUSTOMER}"]


def contacts(world: LogWorld) -> list[str]:
    with session_scope(world.sessions) as session:
        return list(
            session.scalars(select(Contact.email).where(Contact.workspace_id == world.team.workspace_id))
        )


def test_viewers_are_not_shown_the_log_address(client: TestClient, world: LogWorld) -> None:
    def shown(who: str) -> object:
        response = client.get("/api/v1/workspace/settings", headers=world.team.headers(who))
        assert response.status_code == 200
        return response.json()["log_address"]

    assert shown("viewer") is None
    assert shown("member") == world.log_address
    assert shown("admin") == world.log_address
    with session_scope(world.sessions) as session:
        workspace_service.add_user(
            session, world.operator, "vera@team-a.example", role="Viewer", password="viewer-password-123"
        )
    page = _page(client, "vera@team-a.example", "viewer-password-123", "/unassigned")
    assert world.log_address not in page
    assert "the log address" in page
    client.cookies.clear()
    page = _page(client, "admin@team-a.example", "admin-password-123", "/unassigned")
    assert world.log_address in page


def test_the_http_channel_checks_spf_only_for_what_the_provider_tells(
    client: TestClient, world: LogWorld, dns: FakeDns
) -> None:
    secret = client.get("/api/v1/inbound/credentials", headers=world.team.headers("admin")).json()
    auth = {secret["secret_header"]: secret["inbound_secret"], "Content-Type": "message/rfc822"}
    checks = dns.checks()
    client.app.dependency_overrides[sender_checks] = lambda: checks  # type: ignore[attr-defined]
    dns.spf_records["team-a.example"] = "v=spf1 ip4:203.0.113.0/24 -all"
    url = f"/api/v1/inbound/{world.log_address}/messages"
    # The provider relays anyone's mail: its own address vouches for nothing.
    response = client.post(url, content=message("No client told"), headers=auth)
    assert (response.status_code, response.json()["code"]) == (422, "not-authenticated")
    assert "SPF not checked" in response.json()["detail"]
    told = {"envelope_from": USER, "client_ip": "203.0.113.5"}
    response = client.post(url, params=told, content=message("Client told"), headers=auth)
    assert response.status_code == 201, response.text
    elsewhere = {"envelope_from": USER, "client_ip": "198.51.100.7"}
    response = client.post(url, params=elsewhere, content=message("Elsewhere"), headers=auth)
    assert response.status_code == 422
    assert "SPF fail for 198.51.100.7" in response.json()["detail"]
    assert [r["subject"] for r in world.emails()] == ["Client told"]
    client.app.dependency_overrides.pop(sender_checks, None)  # type: ignore[attr-defined]


def test_the_decision_reads_every_from_domain() -> None:
    passed = SignatureResult("team-a.example", "s1", "pass", True)
    dkim = DkimResult("pass", (passed,))
    checks = SenderChecks()
    assert judge(["team-a.example"], None, Evidence(dkim=dkim), checks).by == "dkim"
    # A second From domain must be authenticated too.
    verdict = judge(["team-a.example", "team-b.example"], None, Evidence(dkim=dkim), checks)
    assert not verdict.authenticated
    assert "aligned with team-b.example" in verdict.reason
    assert judge(
        ["team-a.example", "team-b.example"], None, Evidence(dkim=dkim), checks, ["team-b.example"]
    ).by == ("dkim, relaxed")
    assert not judge([], None, Evidence(), checks).authenticated
    trusted = SenderChecks(trusted_sealers=frozenset({"google.com"}))
    sealed = ArcResult("pass", "arc.google.com", (("dmarc", "team-a.example"),))
    assert judge(["team-a.example"], None, Evidence(arc=sealed), trusted).by == "arc"


def _page(client: TestClient, email: str, password: str, path: str) -> str:
    response = sign_in_form(client, email, password)
    assert response.status_code == 303, response.text
    page = client.get(path)
    assert page.status_code == 200
    return re.sub(r"\s+", " ", page.text)


_LABEL = st.text(alphabet="abcdefghijklmnopqrstuvwxyz", min_size=1, max_size=8)
_DOMAIN = st.builds(lambda a, b: f"{a}.{b}.example", _LABEL, _LABEL)


@given(
    from_domain=_DOMAIN,
    other=_DOMAIN,
    dkim_result=st.sampled_from(["pass", "fail", "temperror", "permerror"]),
    spf_status=st.sampled_from(["pass", "fail", "softfail", "neutral", "none", "temperror", "permerror"]),
    arc_status=st.sampled_from(["pass", "fail", "none", "temperror"]),
    method=st.sampled_from(["dkim", "spf", "dmarc"]),
)
@hypothesis_settings(max_examples=200, deadline=None)
def test_nothing_of_another_registrable_domain_authenticates(
    from_domain: str, other: str, dkim_result: str, spf_status: str, arc_status: str, method: str
) -> None:
    # Whatever another domain's signatures, SPF and forwarder say, they vouch for nobody else.
    assume(from_domain.split(".")[1] != other.split(".")[1])
    evidence = Evidence(
        dkim=DkimResult("fail", (SignatureResult(other, "s1", dkim_result, False),)),  # type: ignore[arg-type]
        spf=SpfResult(spf_status, "203.0.113.5", other),  # type: ignore[arg-type]
        arc=ArcResult(arc_status, other, ((method, other),)),  # type: ignore[arg-type]
    )
    checks = SenderChecks(trusted_sealers=frozenset({other}))
    verdict = judge([from_domain], "203.0.113.5", evidence, checks)
    assert not verdict.authenticated
    assert verdict.reason.startswith(f"not authenticated: no DKIM signature aligned with {from_domain}")
    # The same evidence from the From domain itself, passing, does.
    own = Evidence(spf=SpfResult("pass", "203.0.113.5", from_domain))
    assert judge([from_domain], "203.0.113.5", own, checks).by == "spf"
