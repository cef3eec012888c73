"""The keep-or-ignore rules one by one, their order, and the explanations they give."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from touchline.inbound.directory import Directory
from touchline.inbound.match import LOGGED_RULES, SYNCED_RULES, NewContact, match, match_logged
from touchline.inbound.parse import Address, ParsedEmail


def email(
    sender: str | None = "jane@acme.com",
    to: Sequence[str] = ("success@touchline.example",),
    cc: Sequence[str] = (),
    bcc: Sequence[str] = (),
    *,
    bulk: str | None = None,
    auto_reply: str | None = None,
) -> ParsedEmail:
    return ParsedEmail(
        dedup_key="m-1",
        from_=(Address(sender),) if sender else (),
        to=tuple(Address(address) for address in to),
        cc=tuple(Address(address) for address in cc),
        bcc=tuple(Address(address) for address in bcc),
        bulk=bulk,
        auto_reply=auto_reply,
    )


@pytest.fixture
def directory() -> Directory:
    directory = Directory()
    directory.set_internal_domains(["touchline.example"])
    directory.add_user("owner@partner.example")
    directory.add_company_domain("c-acme", "acme.com")
    directory.add_company_domain("c-acme-eu", "eu.acme.com")
    directory.add_company_domain("c-globex", "globex.com")
    directory.add_contact("jane@acme.com", "c-acme")
    directory.add_contact("pat@gmail.com", "c-globex")
    directory.add_contact("loner@nowhere.example", None)
    directory.set_blocklist(["spam.example", "noreply@acme.com"])
    return directory


def test_the_rule_chains_in_order() -> None:
    assert [rule.name for rule in SYNCED_RULES] == [
        "blocklisted-sender",
        "no-participants",
        "all-internal",
        "matched",
        "no-match",
    ]
    assert [rule.name for rule in LOGGED_RULES] == ["sender-not-user", "matched", "unassigned"]


def test_a_contact_keeps_the_email_for_its_company(directory: Directory) -> None:
    decision = match(email("jane@acme.com"), directory)
    assert (decision.action, decision.rule) == ("keep", "matched")
    assert decision.companies == ("c-acme",)
    assert decision.contacts == ("jane@acme.com",)
    assert decision.created_contacts == ()
    assert "jane@acme.com (contact of company c-acme)" in decision.reason


def test_a_domain_match_creates_a_named_contact(directory: Directory) -> None:
    decision = match(email("jane.o-doe@acme.com"), directory)
    assert decision.kept
    assert decision.companies == ("c-acme",)
    assert decision.created_contacts == (NewContact("jane.o-doe@acme.com", "Jane O-Doe", "c-acme"),)
    assert decision.contacts == ("jane.o-doe@acme.com",)
    created = next(m for m in decision.matches if m.address == "jane.o-doe@acme.com")
    assert created.created
    assert created.outcome == "company-domain"


def test_the_most_specific_company_domain_wins(directory: Directory) -> None:
    decision = match(email("max@mail.eu.acme.com"), directory)
    assert decision.companies == ("c-acme-eu",)
    assert "domain eu.acme.com of company c-acme-eu" in decision.reason


def test_a_subdomain_matches_its_parent_company_domain(directory: Directory) -> None:
    assert match(email("max@us.acme.com"), directory).companies == ("c-acme",)


def test_with_create_contacts_off_only_the_company_is_linked(directory: Directory) -> None:
    directory.create_contacts = False
    decision = match(email("new@acme.com"), directory)
    assert decision.kept
    assert decision.companies == ("c-acme",)
    assert decision.contacts == ()
    assert decision.created_contacts == ()
    assert "no contact created: creating contacts automatically is off" in decision.reason


@pytest.mark.parametrize(
    ("marks", "why"),
    [
        ({"bulk": "List-Id: <news.acme.com>"}, "bulk mail (List-Id: <news.acme.com>)"),
        ({"auto_reply": "Auto-Submitted: auto-replied"}, "automatic reply (Auto-Submitted: auto-replied)"),
    ],
)
def test_bulk_and_auto_replies_are_kept_but_create_no_contact(
    directory: Directory, marks: dict[str, str], why: str
) -> None:
    decision = match(email("news@acme.com", **marks), directory)
    assert decision.kept
    assert decision.companies == ("c-acme",)
    assert decision.created_contacts == ()
    assert why in decision.reason
    known = match(email("jane@acme.com", **marks), directory)
    assert known.contacts == ("jane@acme.com",)


def test_a_blocklisted_sender_is_ignored_before_anything_matches(directory: Directory) -> None:
    for sender in ("bot@spam.example", "x@mx.spam.example", "noreply@acme.com"):
        decision = match(email(sender, to=["jane@acme.com"]), directory)
        assert (decision.action, decision.rule) == ("ignore", "blocklisted-sender")
        assert decision.companies == ()


def test_a_blocklisted_recipient_neither_matches_nor_creates(directory: Directory) -> None:
    decision = match(email("owner@partner.example", to=["noreply@acme.com"]), directory)
    assert (decision.action, decision.rule) == ("ignore", "all-internal")
    blocked = next(m for m in decision.matches if m.address == "noreply@acme.com")
    assert blocked.outcome == "blocklisted"
    both = match(email("owner@partner.example", to=["noreply@acme.com", "new@acme.com"]), directory)
    assert both.created_contacts == (NewContact("new@acme.com", "New", "c-acme"),)


def test_only_blocklisted_participants_leave_nothing_to_match(directory: Directory) -> None:
    decision = match(email(None, to=["a@spam.example"]), directory)
    assert (decision.action, decision.rule) == ("ignore", "no-participants")
    assert match(email(None, to=[]), directory).reason == "no readable From, To or Cc address"


def test_all_internal_mail_is_ignored(directory: Directory) -> None:
    decision = match(
        email("a@touchline.example", to=["b@eu.touchline.example"], cc=["owner@partner.example"]), directory
    )
    assert (decision.action, decision.rule) == ("ignore", "all-internal")
    assert decision.reason == "all 3 participants are internal"


def test_internal_participants_never_match_even_as_contacts(directory: Directory) -> None:
    directory.add_contact("owner@partner.example", "c-globex")
    decision = match(email("owner@partner.example", to=["x@unknown.example"]), directory)
    assert (decision.action, decision.rule) == ("ignore", "no-match")


def test_free_mail_matches_only_as_a_known_contact(directory: Directory) -> None:
    known = match(email("pat@gmail.com"), directory)
    assert known.companies == ("c-globex",)
    stranger = match(email("someone@gmail.com"), directory)
    assert (stranger.action, stranger.rule) == ("ignore", "no-match")
    assert "free-mail domain gmail.com and not a contact" in stranger.reason


def test_a_contact_without_company_is_linked_alone(directory: Directory) -> None:
    decision = match(email("loner@nowhere.example"), directory)
    assert decision.kept
    assert decision.companies == ()
    assert decision.contacts == ("loner@nowhere.example",)


def test_bcc_is_not_a_participant(directory: Directory) -> None:
    decision = match(
        email("owner@partner.example", to=["a@touchline.example"], bcc=["jane@acme.com"]), directory
    )
    assert decision.rule == "all-internal"


def test_every_participant_is_explained_once_with_all_its_roles(directory: Directory) -> None:
    decision = match(
        email("jane@acme.com", to=["jane@acme.com", "b@globex.com"], cc=["x@touchline.example"]), directory
    )
    assert [(m.address, m.roles, m.outcome) for m in decision.matches] == [
        ("b@globex.com", ("to",), "company-domain"),
        ("jane@acme.com", ("from", "to"), "contact"),
        ("x@touchline.example", ("cc",), "internal"),
    ]
    assert decision.companies == ("c-acme", "c-globex")
    assert decision.contacts == ("b@globex.com", "jane@acme.com")


def test_changes_to_the_directory_apply_to_the_next_decision(directory: Directory) -> None:
    assert match(email("kim@initech.example"), directory).action == "ignore"
    directory.add_company_domain("c-initech", "initech.example")
    assert match(email("kim@initech.example"), directory).companies == ("c-initech",)
    directory.set_blocklist(["initech.example"])
    assert match(email("kim@initech.example"), directory).rule == "blocklisted-sender"


def test_logged_mail_from_a_user_is_linked_even_if_blocklisted(directory: Directory) -> None:
    decision = match_logged(
        email("owner@partner.example", to=["noreply@acme.com", "log@touchline.example"]),
        directory,
        "log@touchline.example",
    )
    assert (decision.action, decision.rule) == ("keep", "matched")
    assert decision.companies == ("c-acme",)
    assert all(m.address != "log@touchline.example" for m in decision.matches)


def test_logged_mail_without_a_match_is_unassigned(directory: Directory) -> None:
    decision = match_logged(email("owner@partner.example", to=["a@touchline.example"]), directory)
    assert (decision.action, decision.rule) == ("unassigned", "unassigned")


def test_logged_mail_from_a_stranger_is_refused(directory: Directory) -> None:
    refused = match_logged(email("jane@acme.com", to=["log@touchline.example"]), directory)
    assert (refused.action, refused.rule) == ("refuse", "sender-not-user")
    internal_but_no_user = match_logged(email("a@touchline.example"), directory)
    assert internal_but_no_user.action == "refuse"
    assert match_logged(email(None), directory).reason.startswith("no readable From")


def test_logged_bulk_mail_creates_no_contact(directory: Directory) -> None:
    decision = match_logged(
        email("owner@partner.example", to=["new@acme.com"], bulk="Precedence: bulk"), directory
    )
    assert decision.kept
    assert decision.created_contacts == ()
