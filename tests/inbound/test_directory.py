"""The in-memory directory: normalised entries, subdomain coverage, incremental changes, loading."""

from __future__ import annotations

import json
from pathlib import Path

import idna
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from touchline.inbound.directory import Directory, DirectoryError
from touchline.kit.domains import InvalidDomainError, covering_entry, normalise_domain


def test_covering_entry_walks_up_every_label() -> None:
    entries = {"acme.com", "b.example.co.uk"}
    assert covering_entry("acme.com", entries) == "acme.com"
    assert covering_entry("eu.mail.acme.com", entries) == "acme.com"
    assert covering_entry("a.b.example.co.uk", entries) == "b.example.co.uk"
    assert covering_entry("example.co.uk", entries) is None
    assert covering_entry("notacme.com", entries) is None


def _through_idna(text: str) -> str:
    """What the IDNA codec makes of a lower-case ASCII domain, keeping what it rejects as written."""
    try:
        return idna.encode(text, uts46=True).decode("ascii")
    except idna.IDNAError:
        return text


@settings(max_examples=500, deadline=None)
@given(st.text(st.sampled_from("abcxyzAZ019-_.~+"), min_size=1, max_size=30))
def test_ascii_domains_skip_the_idna_codec_without_changing_the_result(text: str) -> None:
    try:
        normal = normalise_domain(text)
    except InvalidDomainError:
        return
    assert normal == _through_idna(text.strip().strip(".").lower())


@pytest.mark.parametrize(
    "domain", ["Acme.COM", "a_b.acme.com", "xn--bcher-kva.example", "9x.acme.io", "-x.acme.io"]
)
def test_ascii_domains_keep_their_form(domain: str) -> None:
    assert normalise_domain(domain) == domain.lower()


def test_standing_of_an_address() -> None:
    directory = Directory()
    directory.set_internal_domains(["Enron.com"])
    directory.add_user("success@touchline.example")
    directory.add_company_domain("c-acme", "acme.com")
    directory.add_company_domain("c-acme-eu", "eu.acme.com")
    directory.add_contact("Jane@Acme.com", "c-acme")
    directory.set_blocklist(["spam.example", "Bad@acme.com"])

    internal = directory.standing("kay@london.enron.com")
    assert internal.internal_by == "enron.com"
    user = directory.standing("success@touchline.example")
    assert user.internal_by == "success@touchline.example"
    assert directory.standing("ops@touchline.example").internal_by == "touchline.example"
    contact = directory.standing("jane@acme.com")
    assert (contact.is_contact, contact.contact_company) == (True, "c-acme")
    deep = directory.standing("x@mail.eu.acme.com")
    assert (deep.company_domain, deep.domain_company) == ("eu.acme.com", "c-acme-eu")
    assert directory.standing("x@www.spam.example").blocked_by == "spam.example"
    assert directory.standing("bad@acme.com").blocked_by == "bad@acme.com"
    assert directory.standing("x@gmail.com").free_mail_domain == "gmail.com"


def test_company_domains_stop_at_the_registrable_domain() -> None:
    directory = Directory()
    directory.add_company_domain("c-suffix", "co.uk")
    directory.add_company_domain("c-acme", "acme.co.uk")
    assert directory.standing("x@eu.acme.co.uk").domain_company == "c-acme"
    assert directory.standing("x@other.co.uk").domain_company is None


def test_company_domains_under_a_suffix_missing_from_the_list_cover_their_subdomains() -> None:
    directory = Directory()
    directory.add_company_domain("c-hostname", "hostname.supplied")
    directory.add_company_domain("c-acme", "acme.internal")
    assert directory.standing("x@no.hostname.supplied").domain_company == "c-hostname"
    assert directory.standing("x@eu.mail.acme.internal").domain_company == "c-acme"
    assert directory.standing("x@other.supplied").domain_company is None


def test_a_free_mail_users_domain_is_not_internal() -> None:
    directory = Directory()
    directory.add_user("someone@gmail.com")
    assert directory.standing("someone@gmail.com").internal_by == "someone@gmail.com"
    assert directory.standing("stranger@gmail.com").internal_by is None


def test_free_mail_and_taken_domains_are_refused_as_company_domains() -> None:
    directory = Directory()
    with pytest.raises(DirectoryError, match="free-mail"):
        directory.add_company_domain("c-1", "GMail.com")
    directory.add_company_domain("c-1", "acme.com")
    directory.add_company_domain("c-1", "acme.com")
    with pytest.raises(DirectoryError, match="already belongs to company c-1"):
        directory.add_company_domain("c-2", "acme.com")


def test_incremental_changes_are_seen_at_once() -> None:
    directory = Directory()
    assert directory.standing("jane@acme.com").domain_company is None
    generation = directory.generation
    directory.add_company_domain("c-acme", "acme.com")
    assert directory.generation > generation
    assert directory.standing("jane@acme.com").domain_company == "c-acme"
    directory.add_contact("jane@acme.com", None)
    assert directory.standing("jane@acme.com").is_contact
    directory.remove_contact("JANE@acme.com")
    assert not directory.standing("jane@acme.com").is_contact
    directory.remove_company_domain("c-acme", "acme.com")
    assert directory.standing("jane@acme.com").domain_company is None
    directory.add_user("me@acme.com")
    assert directory.standing("jane@acme.com").internal_by == "acme.com"
    directory.remove_user("me@acme.com")
    assert directory.standing("jane@acme.com").internal_by is None
    directory.set_internal_domains(["acme.com"])
    assert directory.standing("jane@acme.com").internal_by == "acme.com"
    directory.set_blocklist(["jane@acme.com"])
    assert directory.standing("jane@acme.com").blocked_by == "jane@acme.com"


def test_a_user_domain_stays_internal_while_any_user_has_it() -> None:
    directory = Directory()
    directory.add_user("a@acme.com")
    directory.add_user("b@acme.com")
    directory.remove_user("a@acme.com")
    assert directory.standing("x@acme.com").internal_by == "acme.com"
    directory.remove_user("b@acme.com")
    assert directory.standing("x@acme.com").internal_by is None


def test_contacts_share_one_string_per_company() -> None:
    directory = Directory()
    directory.add_contact("a@acme.com", "".join(["c-", "acme"]))
    directory.add_contact("b@acme.com", "".join(["c-", "acme"]))
    assert directory.contact_company("a@acme.com") is directory.contact_company("b@acme.com")


SAMPLE = {
    "internal_domains": ["enron.com"],
    "users": ["success@touchline.example"],
    "companies": [{"id": "c-1", "domains": ["acme.com", "acme.co.uk"]}, {"id": "c-2", "domains": []}],
    "contacts": [
        {"email": "Jane@Gmail.com", "company": "c-1"},
        {"email": "solo@nowhere.example", "company": None},
    ],
    "blocklist": ["spam.example", "bad@acme.com"],
    "create_contacts": False,
}


def test_from_json_and_load_build_the_same_directory(tmp_path: Path) -> None:
    path = tmp_path / "directory.json"
    path.write_text(json.dumps(SAMPLE, indent=2))
    loaded = Directory.load(path)
    built = Directory.from_json(SAMPLE)
    for directory in (loaded, built):
        assert directory.create_contacts is False
        assert directory.counts == {
            "internal_domains": 1,
            "users": 1,
            "contacts": 2,
            "company_domains": 2,
            "companies": 1,
            "blocklist": 2,
        }
        assert directory.contact_company("jane@gmail.com") == "c-1"
        assert directory.has_contact("solo@nowhere.example")
        assert directory.company_of_domain("acme.co.uk") == "c-1"


def test_load_reads_in_small_chunks(tmp_path: Path) -> None:
    contacts = [{"email": f"p{n}@acme.com", "company": "c-1"} for n in range(500)]
    path = tmp_path / "directory.json"
    path.write_text(json.dumps({**SAMPLE, "contacts": contacts, "create_contacts": True}))
    from touchline.inbound import directory as module

    with path.open(encoding="utf-8") as handle:
        members = list(
            module._JsonStream(handle, chunk_size=7).top_level(frozenset({"contacts", "companies"}))
        )
    assert sum(key == "contacts" for key, _, _ in members) == 500
    assert ("create_contacts", False, True) in members


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ("[]", "not valid JSON .expected '{'"),
        ('{"contacts": [{"company": "c-1"}]}', "email string"),
        ('{"companies": [{"domains": ["acme.com"]}]}', "string id"),
        ('{"companies": [{"id": "c", "domains": ["gmail.com"]}]}', "free-mail"),
        ('{"users": ["not an address"]}', "user"),
        ('{"blocklist": [5]}', "list of strings"),
        ('{"create_contacts": "yes"}', "true or false"),
        ('{"colour": "blue"}', "unknown directory key"),
        ('{"contacts": [', "not valid JSON"),
        ('{"contacts": 5}', "must be a list"),
        ('{"internal_domains": ["a..b"]}', "internal domain"),
    ],
)
def test_bad_directory_files_give_clear_errors(tmp_path: Path, document: str, message: str) -> None:
    path = tmp_path / "directory.json"
    path.write_text(document)
    with pytest.raises(DirectoryError, match=message):
        Directory.load(path)
