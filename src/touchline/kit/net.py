"""Where a connection to a host a user typed may go: resolved once, every address checked, then pinned.

A user who can make the server connect somewhere can reach what only the server reaches: services on
this machine (loopback), on its private network, or a cloud's metadata service (link-local
169.254.169.254). ``AddressPolicy.check`` resolves a name once, classifies every address it resolves
to, and hands back those addresses to connect to; connecting to them, rather than resolving the name
again, keeps a name whose DNS answer changes in between (DNS rebinding) from slipping past the check.
Callers check again at every connection, not only when the host is first entered.

IPv6 forms that carry an IPv4 address (IPv4-mapped ``::ffff:a.b.c.d``, 6to4 ``2002::/16`` and NAT64
``64:ff9b::/96``) are judged by the IPv4 address they lead to.
"""

from __future__ import annotations

import ipaddress
import socket
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum

import idna

from touchline.kit.errors import InvalidInputError

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str, int], Sequence[str]]

_NAT64_WELL_KNOWN = ipaddress.IPv6Network("64:ff9b::/96")
_NAT64_LOCAL_USE = ipaddress.IPv6Network("64:ff9b:1::/48")


class AddressKind(StrEnum):
    """Why an address is not a public one; the value reads in a sentence ("10.0.0.1 is a private address")."""

    LOOPBACK = "a loopback address"
    PRIVATE = "a private address"
    LINK_LOCAL = "a link-local address"
    MULTICAST = "a multicast address"
    UNSPECIFIED = "an unspecified address"
    RESERVED = "a reserved address"


# Never a mail server, whatever the operator allows.
_NEVER_ALLOWED = frozenset({AddressKind.MULTICAST, AddressKind.UNSPECIFIED, AddressKind.RESERVED})


class UnresolvableHostError(InvalidInputError):
    """The name has no address (or the resolver cannot be reached)."""


class InvalidHostNameError(InvalidInputError):
    """The text given as a host is neither an address nor a DNS name."""


class ForbiddenAddressError(InvalidInputError):
    """The host is, or resolves to, an address this server must not connect to."""


def address_kind(address: IPAddress) -> AddressKind | None:  # noqa: PLR0911 -- one answer per kind
    """What keeps ``address`` from being a public unicast address, or None when nothing does."""
    if isinstance(address, ipaddress.IPv6Address):
        embedded = address.ipv4_mapped or address.sixtofour
        if embedded is None and address in _NAT64_WELL_KNOWN:
            embedded = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
        if embedded is not None:
            return address_kind(embedded)
        if address in _NAT64_LOCAL_USE or address.is_site_local:
            return AddressKind.PRIVATE
    if address.is_unspecified:
        return AddressKind.UNSPECIFIED
    if address.is_loopback:
        return AddressKind.LOOPBACK
    if address.is_link_local:
        return AddressKind.LINK_LOCAL
    if address.is_multicast:
        return AddressKind.MULTICAST
    if address.is_reserved:
        return AddressKind.RESERVED
    if address.is_private or not address.is_global:
        return AddressKind.PRIVATE
    return None


def system_resolver(host: str, port: int) -> list[str]:
    """The addresses the system's resolver gives for ``host``, in its order of preference."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


@dataclass(frozen=True)
class CheckedTarget:
    """A host as typed (for TLS's name checks and for messages) and the checked addresses to reach it by."""

    host: str
    port: int
    addresses: tuple[IPAddress, ...]

    def connect(self, timeout: float) -> socket.socket:
        """A TCP connection to the first address that answers, all within ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        last_error: OSError = ConnectionError(f"{self.host} has no address")
        for address in self.addresses:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"{self.host}:{self.port} did not answer in time")
            try:
                # An address literal: create_connection does no lookup of its own.
                return socket.create_connection((str(address), self.port), timeout=remaining)
            except OSError as error:
                last_error = error
        raise last_error


@dataclass(frozen=True)
class AddressPolicy:
    """Which addresses a connection to a user-typed host may go to.

    Public unicast addresses always; loopback, private and link-local ones only with
    ``allow_private`` (an operator whose servers live on their own network); multicast, unspecified
    and reserved ones never. ``private_hint`` tells, in a refusal, how an operator allows private ones.
    """

    allow_private: bool = False
    private_hint: str = ""
    resolver: Resolver = field(default=system_resolver, compare=False)

    def check(self, host: str, port: int) -> CheckedTarget:
        name = host.strip().strip("[]")
        if not _is_literal(name):
            _check_host_name(name)
        try:
            resolved = self.resolver(name, port)
        except (OSError, UnicodeError) as error:
            raise UnresolvableHostError(f"cannot find {host}: the name does not resolve") from error
        addresses = tuple(ipaddress.ip_address(str(value)) for value in resolved)
        if not addresses:
            raise UnresolvableHostError(f"cannot find {host}: the name has no address")
        for address in addresses:
            kind = address_kind(address)
            if kind is None or (self.allow_private and kind not in _NEVER_ALLOWED):
                continue
            # Refuse the whole name, not only this address: a name that also leads somewhere private
            # cannot be trusted to keep to its public addresses.
            where = f"{host} is" if _is_literal(name) else f"{host} resolves to {address}, which is"
            hint = "" if kind in _NEVER_ALLOWED or not self.private_hint else f"; {self.private_hint}"
            raise ForbiddenAddressError(f"{where} {kind.value}{hint}")
        return CheckedTarget(host=name, port=port, addresses=addresses)


_MAX_NAME_LENGTH = 253
_MAX_LABEL_LENGTH = 63


def _check_host_name(name: str) -> None:
    """Refuses text that no resolver should be asked about (empty or overlong labels, control
    characters, names IDNA cannot encode): such a name reaches the TLS layer's IDNA codec, which
    raises, when a resolver answers every name."""
    ascii_form = name
    if not name.isascii():
        try:
            ascii_form = idna.encode(name, uts46=True).decode("ascii")
        except (idna.IDNAError, UnicodeError):
            ascii_form = ""
    # Underscores and other printable ASCII stay allowed: private mail hosts use them.
    labels = ascii_form.removesuffix(".").split(".")
    if (
        not ascii_form.isprintable()
        or " " in ascii_form
        or len(ascii_form) > _MAX_NAME_LENGTH
        or any(not 1 <= len(label) <= _MAX_LABEL_LENGTH for label in labels)
    ):
        raise InvalidHostNameError(f"{name!r} is not a host name")


def _is_literal(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True
