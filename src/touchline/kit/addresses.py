"""Email addresses: one normal form for comparing and storing them."""

from __future__ import annotations

from functools import lru_cache

from touchline.kit.domains import InvalidDomainError, normalise_domain


class InvalidAddressError(ValueError):
    """A string that is not a usable email address."""


@lru_cache(maxsize=262144)
def normalise_address(raw: str) -> str:
    """`Jane.Doe@ACME.com` -> `jane.doe@acme.com`, with an IDNA domain; raises InvalidAddressError."""
    text = raw.strip().strip("<>").strip()
    local, at, domain = text.rpartition("@")
    if not at or not local or not domain:
        raise InvalidAddressError(f"{raw!r} is not an email address")
    if any(ch.isspace() for ch in local) or len(local) > 64 or any(ord(ch) < 32 for ch in local):
        raise InvalidAddressError(f"{raw!r} has an invalid local part")
    try:
        domain = normalise_domain(domain)
    except InvalidDomainError as error:
        raise InvalidAddressError(f"{raw!r} has an invalid domain: {error}") from None
    return f"{local.lower()}@{domain}"


def domain_of(address: str) -> str:
    """The domain part of an already normalised address."""
    return address.rpartition("@")[2]


def name_from_address(address: str) -> str:
    """A readable name from the local part: `jane.o-doe@acme.com` -> `Jane O-Doe`."""
    local = address.partition("@")[0].split("+", 1)[0]
    words = [word for word in local.replace("_", ".").split(".") if word]
    return " ".join("-".join(part[:1].upper() + part[1:] for part in word.split("-")) for word in words)
