"""Keep or ignore: the ordered, explainable rules of SPEC §2 and §4 over a parsed message."""

from touchline.inbound.match.engine import match, match_logged, run_rules
from touchline.inbound.match.model import Action, Decision, NewContact, Outcome, ParticipantMatch, Role
from touchline.inbound.match.rules import LOGGED_RULES, SYNCED_RULES, MatchContext, Rule

__all__ = [
    "LOGGED_RULES",
    "SYNCED_RULES",
    "Action",
    "Decision",
    "MatchContext",
    "NewContact",
    "Outcome",
    "ParticipantMatch",
    "Role",
    "Rule",
    "match",
    "match_logged",
    "run_rules",
]
