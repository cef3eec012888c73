"""Properties of the rules over generated workspaces and messages."""

from __future__ import annotations

from dataclasses import dataclass, replace
from random import Random

from hypothesis import given, settings
from hypothesis import strategies as st

from touchline.inbound.directory import Directory
from touchline.inbound.match import match
from touchline.inbound.parse import Address, ParsedEmail
from touchline.kit.domains import is_free_mail_domain

INTERNAL = ("touchline.example", "eu.touchline.example")
COMPANY_DOMAINS = ("acme.com", "eu.acme.com", "globex.com", "initech.co.uk")
FREE_MAIL = ("gmail.com", "yahoo.com", "outlook.com")
OTHER = ("unknown.example", "mail.unknown.example", "spam.example", "x.spam.example")
LOCALS = ("jane", "bob", "kim", "noreply", "pat")
ADDRESSES = tuple(
    f"{local}@{domain}" for local in LOCALS for domain in (*INTERNAL, *COMPANY_DOMAINS, *FREE_MAIL, *OTHER)
)


@dataclass(frozen=True)
class Workspace:
    internal_domains: tuple[str, ...]
    users: tuple[str, ...]
    company_domains: tuple[tuple[str, str], ...]
    contacts: tuple[tuple[str, str | None], ...]
    blocklist: tuple[str, ...]
    create_contacts: bool

    def directory(self) -> Directory:
        directory = Directory(create_contacts=self.create_contacts)
        directory.set_internal_domains(self.internal_domains)
        for user in self.users:
            directory.add_user(user)
        for company, domain in self.company_domains:
            directory.add_company_domain(company, domain)
        for address, contact_company in self.contacts:
            directory.add_contact(address, contact_company)
        directory.set_blocklist(self.blocklist)
        return directory


@st.composite
def workspaces(draw: st.DrawFn) -> Workspace:
    domains = draw(st.lists(st.sampled_from(COMPANY_DOMAINS), unique=True))
    companies = ("c-1", "c-2", "c-3")
    return Workspace(
        internal_domains=tuple(draw(st.lists(st.sampled_from(INTERNAL), unique=True))),
        users=tuple(draw(st.lists(st.sampled_from(ADDRESSES), max_size=3, unique=True))),
        company_domains=tuple((draw(st.sampled_from(companies)), domain) for domain in domains),
        contacts=tuple(
            draw(
                st.lists(
                    st.tuples(st.sampled_from(ADDRESSES), st.sampled_from((*companies, None))),
                    max_size=8,
                    unique_by=lambda pair: pair[0],
                )
            )
        ),
        blocklist=tuple(
            draw(
                st.lists(st.sampled_from(("spam.example", "noreply@acme.com", "jane@gmail.com")), unique=True)
            )
        ),
        create_contacts=draw(st.booleans()),
    )


def addresses(pool: tuple[str, ...] = ADDRESSES, max_size: int = 5) -> st.SearchStrategy[list[str]]:
    return st.lists(st.sampled_from(pool), max_size=max_size)


@st.composite
def emails(draw: st.DrawFn, pool: tuple[str, ...] = ADDRESSES) -> ParsedEmail:
    sender = draw(st.one_of(st.none(), st.sampled_from(pool)))
    return ParsedEmail(
        dedup_key="m",
        from_=(Address(sender),) if sender else (),
        to=tuple(Address(a) for a in dict.fromkeys(draw(addresses(pool)))),
        cc=tuple(Address(a) for a in dict.fromkeys(draw(addresses(pool)))),
        bulk=draw(st.sampled_from((None, "Precedence: bulk"))),
        auto_reply=draw(st.sampled_from((None, "Auto-Submitted: auto-replied"))),
    )


def outcome(email: ParsedEmail, directory: Directory) -> tuple[object, ...]:
    decision = match(email, directory)
    return (decision.action, decision.rule, decision.companies, decision.contacts, decision.created_contacts)


@settings(max_examples=300, deadline=None)
@given(workspaces(), emails(tuple(a for a in ADDRESSES if a.endswith(INTERNAL))))
def test_an_all_internal_email_is_never_kept(workspace: Workspace, email: ParsedEmail) -> None:
    directory = workspace.directory()
    directory.set_internal_domains(INTERNAL)
    assert not match(email, directory).kept


@settings(max_examples=300, deadline=None)
@given(workspaces(), emails(), st.sampled_from(("bot@spam.example", "a@x.spam.example", "noreply@acme.com")))
def test_a_blocklisted_sender_is_never_kept(workspace: Workspace, email: ParsedEmail, sender: str) -> None:
    directory = workspace.directory()
    directory.set_blocklist(["spam.example", "noreply@acme.com"])
    decision = match(replace(email, from_=(Address(sender),)), directory)
    assert not decision.kept
    assert decision.rule == "blocklisted-sender"


@settings(max_examples=300, deadline=None)
@given(workspaces(), emails(), st.sampled_from(COMPANY_DOMAINS), st.sampled_from(("c-1", "c-new")))
def test_adding_a_company_domain_never_turns_keep_into_ignore(
    workspace: Workspace, email: ParsedEmail, domain: str, company: str
) -> None:
    directory = workspace.directory()
    before = match(email, directory)
    if directory.company_of_domain(domain) is None:
        directory.add_company_domain(company, domain)
    after = match(email, directory)
    if before.kept:
        assert after.kept
        assert set(before.contacts) - {new.email for new in before.created_contacts} <= set(after.contacts)


@settings(max_examples=300, deadline=None)
@given(workspaces(), emails(), st.randoms(use_true_random=False), st.booleans())
def test_the_order_of_participants_never_changes_a_decision(
    workspace: Workspace, email: ParsedEmail, shuffler: Random, swap_to_and_cc: bool
) -> None:
    directory = workspace.directory()
    to, cc = list(email.to), list(email.cc)
    shuffler.shuffle(to)
    shuffler.shuffle(cc)
    reordered = replace(email, to=tuple(to), cc=tuple(cc))
    assert match(reordered, directory) == match(email, directory)
    if swap_to_and_cc:
        assert outcome(replace(email, to=email.cc, cc=email.to), directory) == outcome(email, directory)


@settings(max_examples=300, deadline=None)
@given(workspaces(), emails())
def test_a_free_mail_address_matches_only_as_a_known_contact(
    workspace: Workspace, email: ParsedEmail
) -> None:
    directory = workspace.directory()
    decision = match(email, directory)
    for participant in decision.matches:
        if is_free_mail_domain(participant.address.rpartition("@")[2]) and participant.matched:
            assert participant.outcome == "contact"
            assert directory.has_contact(participant.address)
    assert all(not is_free_mail_domain(new.email.rpartition("@")[2]) for new in decision.created_contacts)


@settings(max_examples=200, deadline=None)
@given(workspaces(), emails())
def test_kept_mail_links_exactly_what_matched(workspace: Workspace, email: ParsedEmail) -> None:
    decision = match(email, workspace.directory())
    matched = [participant for participant in decision.matches if participant.matched]
    if decision.rule != "blocklisted-sender":
        assert decision.kept == bool(matched)
    if decision.kept:
        assert set(decision.companies) == {p.company for p in matched if p.company is not None}
        if email.bulk or email.auto_reply or not workspace.create_contacts:
            assert decision.created_contacts == ()
