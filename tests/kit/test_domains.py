"""Domain and address normal forms, registrable domains and free-mail detection."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from touchline.kit.addresses import InvalidAddressError, name_from_address, normalise_address
from touchline.kit.domains import (
    InvalidDomainError,
    domain_covers,
    is_free_mail_domain,
    normalise_domain,
    parent_domains,
    registrable_domain,
)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("ACME.com", "acme.com"),
        ("@acme.com", "acme.com"),
        ("acme.com.", "acme.com"),
        ("Bücher.DE", "xn--bcher-kva.de"),
    ],
)
def test_domains_are_normalised(raw: str, expected: str) -> None:
    assert normalise_domain(raw) == expected


@pytest.mark.parametrize("raw", ["", "acme", "a..b.com", "two words.com", "jane@acme.com", "x" * 64 + ".com"])
def test_bad_domains_are_refused(raw: str) -> None:
    with pytest.raises(InvalidDomainError):
        normalise_domain(raw)


def test_registrable_domains_and_parents() -> None:
    assert registrable_domain("eu.mail.acme.com") == "acme.com"
    assert registrable_domain("mail.acme.co.uk") == "acme.co.uk"
    assert parent_domains("eu.mail.acme.com") == ["eu.mail.acme.com", "mail.acme.com", "acme.com"]
    assert domain_covers("acme.com", "eu.acme.com")
    assert not domain_covers("acme.com", "notacme.com")


@pytest.mark.parametrize(
    ("domain", "registrable"),
    [
        ("no.hostname.supplied", "hostname.supplied"),  # a suffix the bundled list does not name
        ("a.b.corp", "b.corp"),
        ("eu.mail.acme.internal", "acme.internal"),
        ("acme.internal", "acme.internal"),
        ("internal", "internal"),  # a suffix alone has no registrable domain
        ("www.ck", "www.ck"),  # an exception rule (!www.ck) under a wildcard (*.ck) still wins
        ("x.city.kawasaki.jp", "city.kawasaki.jp"),
        ("192.0.2.10", "192.0.2.10"),  # an address is not a name with a suffix
    ],
)
def test_suffixes_missing_from_the_list_follow_the_default_rule(domain: str, registrable: str) -> None:
    assert registrable_domain(domain) == registrable


def test_parents_under_an_unlisted_suffix_stop_above_it() -> None:
    assert parent_domains("no.hostname.supplied") == ["no.hostname.supplied", "hostname.supplied"]
    assert parent_domains("a.b.c.corp") == ["a.b.c.corp", "b.c.corp", "c.corp"]


def test_free_mail_domains() -> None:
    assert is_free_mail_domain("gmail.com")
    assert is_free_mail_domain("outlook.com")
    assert is_free_mail_domain("googlemail.com")
    assert not is_free_mail_domain("acme.com")


def test_addresses() -> None:
    assert normalise_address(" Jane.Doe@ACME.com ") == "jane.doe@acme.com"
    assert normalise_address("<ops@Bücher.de>") == "ops@xn--bcher-kva.de"
    assert name_from_address("jane.o-doe@acme.com") == "Jane O-Doe"
    for bad in ("jane", "@acme.com", "jane@", "ja ne@acme.com"):
        with pytest.raises(InvalidAddressError):
            normalise_address(bad)


@given(st.from_regex(r"[a-z0-9]{1,10}(\.[a-z0-9]{1,10}){1,3}", fullmatch=True))
def test_normalising_is_idempotent(domain: str) -> None:
    try:
        once = normalise_domain(domain)
    except InvalidDomainError:
        return
    assert normalise_domain(once) == once
