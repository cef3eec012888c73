"""Where a connection to a user-typed host may go: every resolved address classified, refusals explained."""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Sequence

import pytest
from hypothesis import given
from hypothesis import strategies as st

from touchline.kit.errors import InvalidInputError
from touchline.kit.net import (
    AddressKind,
    AddressPolicy,
    CheckedTarget,
    ForbiddenAddressError,
    InvalidHostNameError,
    UnresolvableHostError,
    address_kind,
)

HINT = "an operator can allow private mail hosts with TOUCHLINE_ALLOW_PRIVATE_MAIL_HOSTS"
STRICT = AddressPolicy(private_hint=HINT)
PERMISSIVE = AddressPolicy(allow_private=True, private_hint=HINT)


def resolving(answers: dict[str, Sequence[str]]) -> AddressPolicy:
    def resolver(host: str, port: int) -> Sequence[str]:
        if host not in answers:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return answers[host]

    return AddressPolicy(private_hint=HINT, resolver=resolver)


@pytest.mark.parametrize(
    ("host", "kind"),
    [
        ("127.0.0.1", AddressKind.LOOPBACK),
        ("127.8.9.10", AddressKind.LOOPBACK),
        ("::1", AddressKind.LOOPBACK),
        ("[::1]", AddressKind.LOOPBACK),
        ("10.1.2.3", AddressKind.PRIVATE),
        ("172.16.0.9", AddressKind.PRIVATE),
        ("192.168.1.1", AddressKind.PRIVATE),
        ("100.64.0.1", AddressKind.PRIVATE),  # carrier-grade NAT
        ("fd12:3456::1", AddressKind.PRIVATE),  # unique local
        ("fec0::1", AddressKind.PRIVATE),  # site-local
        ("169.254.169.254", AddressKind.LINK_LOCAL),  # cloud metadata
        ("fe80::1", AddressKind.LINK_LOCAL),
        ("::ffff:127.0.0.1", AddressKind.LOOPBACK),  # IPv4-mapped
        ("::ffff:169.254.169.254", AddressKind.LINK_LOCAL),
        ("64:ff9b::a9fe:a9fe", AddressKind.LINK_LOCAL),  # NAT64 of 169.254.169.254
        ("64:ff9b:1::a00:1", AddressKind.PRIVATE),  # local-use NAT64
        ("2002:a00:1::1", AddressKind.PRIVATE),  # 6to4 of 10.0.0.1
        ("224.0.0.1", AddressKind.MULTICAST),
        ("ff02::1", AddressKind.MULTICAST),
        ("0.0.0.0", AddressKind.UNSPECIFIED),  # noqa: S104 -- a target, not a bind address
        ("::", AddressKind.UNSPECIFIED),
        ("240.0.0.1", AddressKind.RESERVED),
        ("255.255.255.255", AddressKind.RESERVED),
    ],
)
def test_addresses_that_are_not_public_are_refused(host: str, kind: AddressKind) -> None:
    with pytest.raises(ForbiddenAddressError) as refused:
        STRICT.check(host, 993)
    assert str(refused.value).startswith(f"{host} is {kind.value}")


@pytest.mark.parametrize("host", ["127.0.0.1", "10.1.2.3", "169.254.169.254", "::1", "fd00::5"])
def test_a_refused_private_address_says_how_an_operator_allows_it(host: str) -> None:
    with pytest.raises(ForbiddenAddressError, match=HINT):
        STRICT.check(host, 993)
    assert PERMISSIVE.check(host, 993).addresses == (ipaddress.ip_address(host),)


@pytest.mark.parametrize("host", ["224.0.0.1", "0.0.0.0", "240.0.0.1", "::"])  # noqa: S104
def test_addresses_that_are_never_a_mail_server_are_refused_even_when_private_ones_are_allowed(
    host: str,
) -> None:
    with pytest.raises(ForbiddenAddressError) as refused:
        PERMISSIVE.check(host, 993)
    assert HINT not in str(refused.value)


@pytest.mark.parametrize("host", ["93.184.215.14", "2606:4700::6810:84e5", "64:ff9b::808:808"])
def test_public_addresses_are_checked_through(host: str) -> None:
    target = STRICT.check(host, 993)
    assert target == CheckedTarget(host, 993, (ipaddress.ip_address(host),))


def test_a_name_resolving_to_a_private_address_is_refused_naming_the_address() -> None:
    policy = resolving({"mail.attacker.example": ["10.0.0.5"]})
    with pytest.raises(ForbiddenAddressError) as refused:
        policy.check("mail.attacker.example", 993)
    assert str(refused.value) == (
        f"mail.attacker.example resolves to 10.0.0.5, which is a private address; {HINT}"
    )


def test_a_name_with_any_private_address_among_public_ones_is_refused() -> None:
    policy = resolving({"mixed.example": ["93.184.215.14", "2606:4700::1", "::ffff:127.0.0.1"]})
    with pytest.raises(ForbiddenAddressError, match="loopback"):
        policy.check("mixed.example", 993)


def test_a_public_name_gives_every_address_it_resolved_to_once() -> None:
    policy = resolving({"mail.example": ["93.184.215.14", "2606:4700::1"]})
    target = policy.check("mail.example", 143)
    assert target.host == "mail.example"
    assert target.addresses == (ipaddress.ip_address("93.184.215.14"), ipaddress.ip_address("2606:4700::1"))


def test_a_name_that_does_not_resolve_is_an_error_of_its_own() -> None:
    with pytest.raises(UnresolvableHostError, match=r"cannot find nowhere\.example"):
        resolving({}).check("nowhere.example", 993)
    with pytest.raises(UnresolvableHostError, match="no address"):
        resolving({"empty.example": []}).check("empty.example", 993)


_IPV4 = st.integers(min_value=0, max_value=2**32 - 1).map(ipaddress.IPv4Address)


@given(_IPV4)
def test_ipv6_forms_carrying_an_ipv4_address_are_judged_by_it(address: ipaddress.IPv4Address) -> None:
    mapped = ipaddress.IPv6Address(f"::ffff:{address}")
    nat64 = ipaddress.IPv6Address(int(ipaddress.IPv6Address("64:ff9b::")) | int(address))
    sixtofour = ipaddress.IPv6Address((0x2002 << 112) | (int(address) << 80) | 1)
    expected = address_kind(address)
    assert address_kind(mapped) == expected
    assert address_kind(nat64) == expected
    assert address_kind(sixtofour) == expected


def test_connecting_tries_the_checked_addresses_in_turn() -> None:
    with socket.create_server(("127.0.0.1", 0)) as listener:
        port = listener.getsockname()[1]
        # Nothing listens on 127.0.0.2 at that port: refused there, then connected on 127.0.0.1.
        target = CheckedTarget(
            "mail.example", port, tuple(map(ipaddress.ip_address, ["127.0.0.2", "127.0.0.1"]))
        )
        with target.connect(timeout=5) as connection:
            accepted, peer = listener.accept()
            accepted.close()
            assert connection.getpeername() == ("127.0.0.1", port)
            assert peer == connection.getsockname()


def _answering_every_name(host: str, port: int) -> Sequence[str]:
    # A resolver that answers names that do not exist (ISPs that rewrite NXDOMAIN do): the check
    # must not leave it to the resolver to refuse what is not a host name.
    return ["93.184.215.14"]


@pytest.mark.parametrize(
    "host",
    [
        "a..b",
        ".",
        "bad\x00host.example",
        "line\nbreak.example",
        "tab\there.example",
        "x\x7fy.example",
        "a" * 64 + ".example",
        ("a" * 60 + ".") * 5 + "example",
        "\u3002\u3002",
    ],
)
def test_what_is_not_a_host_name_is_refused_before_it_is_resolved(host: str) -> None:
    policy = AddressPolicy(resolver=_answering_every_name)
    with pytest.raises(InvalidHostNameError, match="not a host name") as refusal:
        policy.check(host, 993)
    assert isinstance(refusal.value, InvalidInputError)
    assert host not in str(refusal.value) or host.isprintable()


@pytest.mark.parametrize(
    "host", ["mail.example", "imap", "bücher.example", "mail_1.corp.example", "93.184.215.14"]
)
def test_host_names_in_use_pass_the_syntax_check(host: str) -> None:
    target = AddressPolicy(resolver=_answering_every_name).check(f" {host} ", 993)
    assert target.host == host
