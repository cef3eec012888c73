"""The workspace as the keep-or-ignore rules see it: a compact in-memory index, pure and synchronous.

A workspace may hold a million contacts, so the index keeps one dictionary entry per contact whose
value is a shared company-id string, and answers "who is this address to us?" with a few set and
dictionary lookups, remembered per address until the index changes.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, NoReturn, TextIO

from touchline.kit.addresses import InvalidAddressError, domain_of, normalise_address
from touchline.kit.domains import (
    InvalidDomainError,
    covering_entry,
    is_free_mail_domain,
    normalise_domain,
    parent_domains,
)


class DirectoryError(ValueError):
    """A directory entry the rules cannot use (an unreadable address, a free-mail company domain, ...)."""


@dataclass(frozen=True, slots=True)
class Standing:
    """What the workspace knows about one address, before any rule is applied.

    `blocked_by` and `internal_by` name the entry that covers the address (the address itself for a
    blocklisted address or a user); `company_domain` is the most specific company domain among the
    address's domain and its parents up to the registrable domain. Addresses that are neither users,
    contacts nor blocklisted one by one share the standing of their domain.
    """

    blocked_by: str | None = None
    internal_by: str | None = None
    is_user: bool = False
    is_contact: bool = False
    contact_company: str | None = None
    company_domain: str | None = None
    domain_company: str | None = None
    free_mail_domain: str | None = None


_MAX_REMEMBERED_STANDINGS = 200_000


class Directory:
    """Internal domains, users, contacts, company domains, blocklist and the create-contacts switch."""

    __slots__ = (
        "__weakref__",
        "_blocked_addresses",
        "_blocked_domains",
        "_company_domains",
        "_company_ids",
        "_contacts",
        "_domain_standings",
        "_internal_domains",
        "_standings",
        "_user_domains",
        "_users",
        "create_contacts",
        "generation",
    )

    def __init__(self, *, create_contacts: bool = True) -> None:
        self.create_contacts = create_contacts
        self._internal_domains: set[str] = set()
        self._users: set[str] = set()
        self._user_domains: Counter[str] = Counter()
        self._contacts: dict[str, str | None] = {}
        self._company_domains: dict[str, str] = {}
        self._company_ids: dict[str, str] = {}
        self._blocked_addresses: set[str] = set()
        self._blocked_domains: set[str] = set()
        self._standings: dict[str, Standing] = {}
        self._domain_standings: dict[str, Standing] = {}
        self.generation = 0
        """Counts changes, so that answers derived from the directory can tell when to forget."""

    # ----- reading -------------------------------------------------------------------------------

    def standing(self, address: str) -> Standing:
        """How the workspace sees a normalised address; remembered until the directory changes."""
        known = self._standings.get(address)
        if known is None:
            known = self._work_out_standing(address)
            if len(self._standings) >= _MAX_REMEMBERED_STANDINGS:
                self._standings.clear()
            self._standings[address] = known
        return known

    def _work_out_standing(self, address: str) -> Standing:
        domain = domain_of(address)
        shared = self._domain_standings.get(domain)
        if shared is None:
            shared = self._domain_standings[domain] = self._work_out_domain_standing(domain)
        blocked = address in self._blocked_addresses
        is_user = address in self._users
        is_contact = address in self._contacts
        if not (blocked or is_user or is_contact):
            return shared
        return replace(
            shared,
            blocked_by=address if blocked else shared.blocked_by,
            internal_by=address if is_user else shared.internal_by,
            is_user=is_user,
            is_contact=is_contact,
            contact_company=self._contacts.get(address) if is_contact else None,
        )

    def _work_out_domain_standing(self, domain: str) -> Standing:
        blocked_by = covering_entry(domain, self._blocked_domains) if self._blocked_domains else None
        internal_by = covering_entry(domain, self._internal_domains)
        if internal_by is None and self._user_domains:
            internal_by = covering_entry(domain, self._user_domains.keys())
        company_domain = domain_company = free_mail_domain = None
        for candidate in parent_domains(domain):
            if is_free_mail_domain(candidate):
                free_mail_domain = candidate
                break
            company = self._company_domains.get(candidate)
            if company is not None:
                company_domain, domain_company = candidate, company
                break
        return Standing(
            blocked_by=blocked_by,
            internal_by=internal_by,
            company_domain=company_domain,
            domain_company=domain_company,
            free_mail_domain=free_mail_domain,
        )

    @property
    def internal_domains(self) -> frozenset[str]:
        return frozenset(self._internal_domains)

    @property
    def blocklist(self) -> frozenset[str]:
        return frozenset(self._blocked_addresses | self._blocked_domains)

    def is_user(self, address: str) -> bool:
        return address in self._users

    def company_of_domain(self, domain: str) -> str | None:
        return self._company_domains.get(domain)

    def contact_company(self, address: str) -> str | None:
        return self._contacts.get(address)

    def has_contact(self, address: str) -> bool:
        return address in self._contacts

    @property
    def counts(self) -> Mapping[str, int]:
        """Sizes of the index, for logs and the benchmark."""
        return {
            "internal_domains": len(self._internal_domains),
            "users": len(self._users),
            "contacts": len(self._contacts),
            "company_domains": len(self._company_domains),
            "companies": len(self._company_ids),
            "blocklist": len(self._blocked_addresses) + len(self._blocked_domains),
        }

    # ----- changing ------------------------------------------------------------------------------

    def _changed(self) -> None:
        self._standings.clear()
        self._domain_standings.clear()
        self.generation += 1

    def forget_standings(self) -> None:
        """Drop remembered standings and what was derived from them, as a change would; to measure
        cold, or to free memory."""
        self._changed()

    def set_internal_domains(self, domains: Iterable[str]) -> None:
        self._internal_domains = {_domain(entry, "internal domain") for entry in domains}
        self._changed()

    def add_user(self, address: str) -> None:
        """A user's address is internal; so is the user's own domain unless it is a free-mail domain."""
        user = _address(address, "user")
        if user in self._users:
            return
        self._users.add(user)
        domain = domain_of(user)
        if not is_free_mail_domain(domain):
            self._user_domains[domain] += 1
        self._changed()

    def remove_user(self, address: str) -> None:
        user = _address(address, "user")
        if user not in self._users:
            return
        self._users.discard(user)
        domain = domain_of(user)
        if self._user_domains.get(domain, 0) > 1:
            self._user_domains[domain] -= 1
        else:
            self._user_domains.pop(domain, None)
        self._changed()

    def add_company_domain(self, company: str, domain: str) -> None:
        """Claim a domain (and its subdomains) for a company; refuses free-mail and taken domains."""
        if not isinstance(company, str) or not company:
            raise DirectoryError(f"company id must be a non-empty string, not {company!r}")
        normal = _domain(domain, f"domain of company {company}")
        if is_free_mail_domain(normal):
            raise DirectoryError(
                f"{normal} is a public free-mail domain and cannot be a company domain "
                f"(company {company}); add its people as contacts instead"
            )
        owner = self._company_domains.get(normal)
        if owner is not None and owner != company:
            raise DirectoryError(f"domain {normal} already belongs to company {owner}, not {company}")
        self._company_domains[normal] = self._company_id(company)
        self._changed()

    def remove_company_domain(self, company: str, domain: str) -> None:
        normal = _domain(domain, f"domain of company {company}")
        if self._company_domains.get(normal) == company:
            del self._company_domains[normal]
            self._changed()

    def add_contact(self, address: str, company: str | None = None) -> None:
        """Add or update a contact; `company` None keeps a contact that belongs to no company."""
        if company is not None and (not isinstance(company, str) or not company):
            raise DirectoryError(f"company of contact {address!r} must be a string id or null")
        self._contacts[_address(address, "contact")] = None if company is None else self._company_id(company)
        self._changed()

    def remove_contact(self, address: str) -> None:
        if self._contacts.pop(_address(address, "contact"), _ABSENT) is not _ABSENT:
            self._changed()

    def set_blocklist(self, entries: Iterable[str]) -> None:
        """Entries with an `@` block one address; the others block a domain and its subdomains."""
        addresses: set[str] = set()
        domains: set[str] = set()
        for entry in entries:
            if not isinstance(entry, str):
                raise DirectoryError(f"blocklist entry must be a string, not {entry!r}")
            if "@" in entry.strip().lstrip("@"):
                addresses.add(_address(entry, "blocklist entry"))
            else:
                domains.add(_domain(entry, "blocklist entry"))
        self._blocked_addresses, self._blocked_domains = addresses, domains
        self._changed()

    def _company_id(self, company: str) -> str:
        # One shared string per company however many contacts and domains point at it.
        return self._company_ids.setdefault(company, company)

    # ----- loading -------------------------------------------------------------------------------

    @classmethod
    def from_json(cls, obj: object) -> Directory:
        """Build from the CLI's directory format (see `docs/decisions/0002-keep-or-ignore-rules.md`)."""
        if not isinstance(obj, Mapping):
            raise DirectoryError("the directory must be a JSON object")
        directory = cls()
        for key, value in obj.items():
            if key in _LIST_KEYS:
                if not isinstance(value, list):
                    raise DirectoryError(f"{key} must be a list")
                for entry in value:
                    directory._add_entry(key, entry)
            else:
                directory._set(key, value)
        return directory

    @classmethod
    def load(cls, path: Path) -> Directory:
        """Read a directory file, adding each company and contact as soon as it is decoded.

        Decoding a million contacts into dictionaries first would take several times the memory of
        the index itself, so the file is read in chunks and its lists element by element.
        """
        directory = cls()
        try:
            with path.open(encoding="utf-8") as handle:
                for key, is_element, value in _JsonStream(handle).top_level(_LIST_KEYS):
                    if is_element:
                        directory._add_entry(key, value)
                    else:
                        directory._set(key, value)
        except UnicodeDecodeError as error:
            raise DirectoryError(f"{path}: not UTF-8 ({error})") from None
        except json.JSONDecodeError as error:
            raise DirectoryError(f"{path}: not valid JSON ({error})") from None
        return directory

    def _set(self, key: str, value: object) -> None:
        if key == "create_contacts":
            if not isinstance(value, bool):
                raise DirectoryError("create_contacts must be true or false")
            self.create_contacts = value
        elif key == "internal_domains":
            self.set_internal_domains(_strings(key, value))
        elif key == "blocklist":
            self.set_blocklist(_strings(key, value))
        elif key in _LIST_KEYS:
            raise DirectoryError(f"{key} must be a list")
        else:
            raise DirectoryError(f"unknown directory key {key!r}")

    def _add_entry(self, key: str, entry: object) -> None:
        if key == "contacts":
            if not isinstance(entry, Mapping) or not isinstance(entry.get("email"), str):
                raise DirectoryError(f"each contact needs an email string: {entry!r}")
            self.add_contact(entry["email"], entry.get("company"))
        elif key == "companies":
            if not isinstance(entry, Mapping) or not isinstance(entry.get("id"), str):
                raise DirectoryError(f"each company needs a string id and a list of domains: {entry!r}")
            domains = entry.get("domains", [])
            if not isinstance(domains, list):
                raise DirectoryError(f"domains of company {entry['id']} must be a list")
            for domain in domains:
                self.add_company_domain(entry["id"], domain)
        elif key == "users":
            if not isinstance(entry, str):
                raise DirectoryError(f"users must hold email address strings, not {entry!r}")
            self.add_user(entry)


class _JsonStream:
    """Reads one JSON object from a text stream in chunks, yielding the elements of chosen lists.

    Only the top level is streamed; every other value is decoded whole by the standard decoder.
    """

    def __init__(self, handle: TextIO, chunk_size: int = 1 << 20) -> None:
        self._handle = handle
        self._chunk_size = chunk_size
        self._buffer = ""
        self._position = 0
        self._ended = False
        self._decoder = json.JSONDecoder()

    def top_level(self, streamed: frozenset[str]) -> Iterator[tuple[str, bool, Any]]:
        """(key, False, value) for each member, or (key, True, element) for each element of a list in
        `streamed`."""
        self._take("{")
        if self._peek() == "}":
            self._take("}")
            return
        while True:
            key = self._value()
            if not isinstance(key, str):
                self._fail("a member name")
            self._take(":")
            if key in streamed and self._peek() == "[":
                self._take("[")
                if self._peek() == "]":
                    self._take("]")
                else:
                    while True:
                        yield key, True, self._value()
                        if self._take(",]") == "]":
                            break
            else:
                yield key, False, self._value()
            if self._take(",}") == "}":
                break
        if self._peek() != "":
            self._fail("the end of the document")

    def _fill(self) -> bool:
        if self._ended:
            return False
        chunk = self._handle.read(self._chunk_size)
        if not chunk:
            self._ended = True
            return False
        self._buffer = self._buffer[self._position :] + chunk
        self._position = 0
        return True

    def _peek(self) -> str:
        while True:
            buffer, position = self._buffer, self._position
            while position < len(buffer) and buffer[position] in " \t\r\n":
                position += 1
            self._position = position
            if position < len(buffer):
                return buffer[position]
            if not self._fill():
                return ""

    def _take(self, allowed: str) -> str:
        found = self._peek()
        if not found or found not in allowed:
            self._fail(" or ".join(repr(char) for char in allowed))
        self._position += 1
        return found

    def _value(self) -> Any:
        self._peek()
        while True:
            try:
                value, end = self._decoder.raw_decode(self._buffer, self._position)
            except json.JSONDecodeError:
                if self._fill():
                    continue
                raise
            # A number that ends with the buffer may go on in the next chunk.
            if end == len(self._buffer) and self._fill():
                continue
            self._position = end
            return value

    def _fail(self, expected: str) -> NoReturn:
        raise json.JSONDecodeError(f"expected {expected}", self._buffer, self._position)


_ABSENT = object()
_LIST_KEYS = frozenset({"users", "companies", "contacts"})


def _strings(key: str, value: object) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(entry, str) for entry in value):
        raise DirectoryError(f"{key} must be a list of strings")
    return value


def _address(raw: str, what: str) -> str:
    if not isinstance(raw, str):
        raise DirectoryError(f"{what} must be an email address string, not {raw!r}")
    try:
        # Uncached: a million contacts read once would only push live entries out of the cache.
        return normalise_address.__wrapped__(raw)
    except InvalidAddressError as error:
        raise DirectoryError(f"{what}: {error}") from None


def _domain(raw: str, what: str) -> str:
    if not isinstance(raw, str):
        raise DirectoryError(f"{what} must be a domain string, not {raw!r}")
    try:
        return normalise_domain(raw)
    except InvalidDomainError as error:
        raise DirectoryError(f"{what}: {error}") from None
