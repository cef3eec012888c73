"""Email addresses: one normal form for comparing and storing them."""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Final

from touchline.kit.domains import InvalidDomainError, normalise_domain


class InvalidAddressError(ValueError):
    """A string that is not a usable email address."""


_SPACE_OR_CONTROL: Final = re.compile(r"[\s\x00-\x1f]")
"""What a local part may not hold: whitespace as `str.isspace` has it (the same Unicode table) and
the control characters below 32. One search, not a Python call per character: a bulk send
normalises thousands of addresses it has not seen before."""


@lru_cache(maxsize=262144)
def normalise_address(raw: str) -> str:
    """`Jane.Doe@ACME.com` -> `jane.doe@acme.com`, with an IDNA domain; raises InvalidAddressError."""
    text = raw.strip().strip("<>").strip()
    local, at, domain = text.rpartition("@")
    if not at or not local or not domain:
        raise InvalidAddressError(f"{raw!r} is not an email address")
    if len(local) > 64 or _SPACE_OR_CONTROL.search(local):
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
