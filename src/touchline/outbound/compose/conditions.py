"""Conditions on a sequence step: enduser and company fields (the recipient filters) and what came of
earlier steps (opened, clicked, replied, bounced, or not).

The outcomes are inputs: whoever runs the sequence reads them from the engagement records and
passes them in, so the evaluation is the same in a test as in the worker. Which opens count (every
open or human ones only) is the caller's choice when building the outcomes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final, Literal

from touchline.kit.errors import InvalidInputError
from touchline.outbound.compose.filters import FieldFilter, FilterError, matches, parse_filter
from touchline.outbound.compose.merge import MergeContext

OutcomeName = Literal["opened", "clicked", "replied", "bounced"]
OUTCOME_NAMES: Final[tuple[OutcomeName, ...]] = ("opened", "clicked", "replied", "bounced")


class ConditionError(InvalidInputError):
    """A step condition that cannot be used; the message says why."""


@dataclass(frozen=True, slots=True)
class OutcomeCondition:
    """`step 1 opened` (happened) or `step 1 not opened`."""

    step: int
    outcome: OutcomeName
    happened: bool = True

    def __str__(self) -> str:
        return f"step {self.step} {'' if self.happened else 'not '}{self.outcome}"


@dataclass(frozen=True, slots=True)
class AllOf:
    conditions: tuple[Condition, ...]


@dataclass(frozen=True, slots=True)
class AnyOf:
    conditions: tuple[Condition, ...]


Condition = FieldFilter | OutcomeCondition | AllOf | AnyOf


@dataclass(frozen=True, slots=True)
class StepOutcome:
    """What happened to the email an earlier step sent this enduser. `opened`/`clicked` are None
    when that tracking was off for the email (then neither "opened" nor "not opened" is known)."""

    opened: bool | None = False
    clicked: bool | None = False
    replied: bool = False
    bounced: bool = False


@dataclass(frozen=True, slots=True)
class ConditionResult:
    met: bool
    reasons: tuple[str, ...]


def parse_condition(text: str) -> Condition:
    """`step 2 not clicked`, `step 1 replied`, or a field filter such as `company.custom.tier=gold`."""
    words = text.split()
    if words and words[0].casefold() == "step":
        negated = len(words) == 4 and words[2].casefold() == "not"
        if len(words) not in {3, 4} or (len(words) == 4 and not negated) or not words[1].isdigit():
            raise ConditionError(
                f"{text!r}: write an outcome condition as 'step N opened' or 'step N not opened'"
            )
        outcome = words[-1].casefold()
        if outcome not in OUTCOME_NAMES:
            raise ConditionError(f"{text!r}: the outcome is one of {', '.join(OUTCOME_NAMES)}")
        name = next(known for known in OUTCOME_NAMES if known == outcome)
        return OutcomeCondition(int(words[1]), name, happened=not negated)
    try:
        return parse_filter(text)
    except FilterError as error:
        raise ConditionError(str(error)) from None


def check_condition(condition: Condition, step: int) -> None:
    """A condition of step `step` (counted from 1) may only look at earlier steps."""
    if isinstance(condition, OutcomeCondition):
        if not 1 <= condition.step < step:
            raise ConditionError(
                f"step {step} can only depend on the outcome of an earlier step, not step {condition.step}"
            )
    elif isinstance(condition, AllOf | AnyOf):
        for inner in condition.conditions:
            check_condition(inner, step)


def evaluate(
    condition: Condition, context: MergeContext, outcomes: Mapping[int, StepOutcome]
) -> ConditionResult:
    """Does the condition hold for this enduser, given the outcomes of the steps sent so far?
    A step missing from `outcomes` was not sent to this enduser: nothing happened to it."""
    if isinstance(condition, FieldFilter):
        met = matches(condition, context)
        return ConditionResult(met, (f"{condition} {'holds' if met else 'does not hold'}",))
    if isinstance(condition, OutcomeCondition):
        return _outcome(condition, outcomes.get(condition.step))
    results = [evaluate(inner, context, outcomes) for inner in condition.conditions]
    met = (
        all(result.met for result in results) if isinstance(condition, AllOf) else any(r.met for r in results)
    )
    return ConditionResult(met, tuple(reason for result in results for reason in result.reasons))


def _outcome(condition: OutcomeCondition, outcome: StepOutcome | None) -> ConditionResult:
    if outcome is None:
        return ConditionResult(not condition.happened, (f"step {condition.step} was not sent",))
    happened = {
        "opened": outcome.opened,
        "clicked": outcome.clicked,
        "replied": outcome.replied,
        "bounced": outcome.bounced,
    }[condition.outcome]
    if happened is None:
        tracking = "open" if condition.outcome == "opened" else "link"
        return ConditionResult(
            False, (f"{condition} is unknown: step {condition.step} was sent with {tracking} tracking off",)
        )
    met = happened == condition.happened
    return ConditionResult(met, (f"{condition} {'holds' if met else 'does not hold'}",))


def continues(outcomes: Mapping[int, StepOutcome], *, stop_on_reply: bool = True) -> bool:
    """Whether the sequence goes on for this enduser: by default a reply to any step ends it."""
    return not (stop_on_reply and any(outcome.replied for outcome in outcomes.values()))
