"""The keep-or-ignore explanation in plain words for people: company names instead of ids, and no
rule vocabulary ("company-domain"). Pure; the API keeps the structured explanation as it is."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

_INTERNAL_DOMAIN = re.compile(r"internal domain (\S+?)\)?$")
_COMPANY_DOMAIN = re.compile(r"^domain (\S+) of company ")


RULE_WORDS = {
    "matched": "Kept because a customer takes part",
    "unassigned": "Waiting for someone to choose its company",
    "blocklisted-sender": "Ignored: the sender is on the blocklist",
    "no-participants": "Ignored: it names nobody",
    "all-internal": "Ignored: only your team takes part",
    "no-match": "Ignored: no customer takes part",
}


@dataclass(frozen=True)
class ParticipantWords:
    address: str
    roles: str
    words: str


def _named(text: str, names: Mapping[str, str]) -> str:
    for company_id, name in names.items():
        text = text.replace(f"company {company_id}", name).replace(company_id, name)
    return text


def participant_words(match: Mapping[str, Any], names: Mapping[str, str]) -> str:
    """What one participant was to the workspace, said as a person would say it."""
    outcome = str(match.get("outcome", ""))
    detail = str(match.get("detail", ""))
    company_id = match.get("company")
    company = names.get(str(company_id), "a company since deleted") if company_id else None
    if outcome == "internal":
        domain = _INTERNAL_DOMAIN.search(detail)
        return f"one of your team's addresses ({domain.group(1)})" if domain else "a teammate"
    if outcome == "contact":
        return f"a contact at {company}" if company else "a contact without a company"
    if outcome == "company-domain":
        domain = _COMPANY_DOMAIN.search(detail)
        where = f"{domain.group(1)}, a domain of {company}" if domain else f"a domain of {company}"
        return f"not a contact yet, but at {where}"
    if outcome == "free-mail":
        return "a free-mail address that is not a contact"
    if outcome == "blocklisted":
        return detail.replace("blocklisted by", "on the blocklist as") if detail else "on the blocklist"
    return "nobody the workspace knows: not a contact, and no company has its domain"


def explanation_words(
    decision: Mapping[str, Any], names: Mapping[str, str]
) -> tuple[str, str, list[ParticipantWords]]:
    """The decision's rule in words, its reason with company names in place of ids, and each
    participant in words."""
    participants = [
        ParticipantWords(
            str(match.get("address", "")),
            ", ".join(str(role) for role in match.get("roles", [])),
            participant_words(match, names),
        )
        for match in decision.get("matches", [])
    ]
    rule = str(decision.get("rule", ""))
    return RULE_WORDS.get(rule, rule), _named(str(decision.get("reason", "")), names), participants


def company_ids(decision: Mapping[str, Any]) -> list[str]:
    return [str(match["company"]) for match in decision.get("matches", []) if match.get("company")]
