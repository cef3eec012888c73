"""Sequence step conditions, evaluated against given outcomes of earlier steps."""

from __future__ import annotations

import pytest

from touchline.outbound.compose.conditions import (
    AllOf,
    AnyOf,
    ConditionError,
    OutcomeCondition,
    StepOutcome,
    check_condition,
    continues,
    evaluate,
    parse_condition,
)
from touchline.outbound.compose.filters import parse_filter
from touchline.outbound.compose.merge import CompanyFields, EnduserFields, MergeContext, SenderFields

JANE = MergeContext(
    EnduserFields("jane@acme.example", first_name="Jane"),
    SenderFields("Sam", "sam@touchline.example"),
    CompanyFields("Acme", custom={"tier": "gold", "seats": 40}),
)


@pytest.mark.parametrize(
    ("text", "condition"),
    [
        ("step 1 opened", OutcomeCondition(1, "opened")),
        ("Step 2 not clicked", OutcomeCondition(2, "clicked", happened=False)),
        ("step 3 replied", OutcomeCondition(3, "replied")),
        ("step 1 not bounced", OutcomeCondition(1, "bounced", happened=False)),
        ("company.custom.tier=gold", parse_filter("company.custom.tier=gold")),
    ],
)
def test_parsing(text: str, condition: object) -> None:
    assert parse_condition(text) == condition


@pytest.mark.parametrize(
    "text", ["step one opened", "step 1 viewed", "step 1 never opened", "step 1", "company.tier=gold"]
)
def test_parse_errors(text: str) -> None:
    with pytest.raises(ConditionError):
        parse_condition(text)


@pytest.mark.parametrize(
    ("outcome", "condition", "met"),
    [
        (StepOutcome(opened=True), OutcomeCondition(1, "opened"), True),
        (StepOutcome(opened=False), OutcomeCondition(1, "opened"), False),
        (StepOutcome(opened=False), OutcomeCondition(1, "opened", happened=False), True),
        (StepOutcome(clicked=True), OutcomeCondition(1, "clicked"), True),
        (StepOutcome(replied=True), OutcomeCondition(1, "replied"), True),
        (StepOutcome(replied=False), OutcomeCondition(1, "replied", happened=False), True),
        (StepOutcome(bounced=True), OutcomeCondition(1, "bounced"), True),
        (StepOutcome(bounced=True), OutcomeCondition(1, "bounced", happened=False), False),
    ],
)
def test_outcome_conditions_follow_the_given_outcomes(
    outcome: StepOutcome, condition: OutcomeCondition, met: bool
) -> None:
    assert evaluate(condition, JANE, {1: outcome}).met is met


@pytest.mark.parametrize("happened", [True, False])
def test_opens_and_clicks_with_tracking_off_are_unknown_so_neither_condition_holds(happened: bool) -> None:
    untracked = {1: StepOutcome(opened=None, clicked=None)}
    for outcome in ("opened", "clicked"):
        result = evaluate(OutcomeCondition(1, outcome, happened), JANE, untracked)  # type: ignore[arg-type]
        assert not result.met
        assert "tracking off" in result.reasons[0]


def test_a_step_not_sent_had_no_outcome() -> None:
    assert evaluate(OutcomeCondition(1, "opened", happened=False), JANE, {}).met
    assert not evaluate(OutcomeCondition(1, "opened"), JANE, {}).met


def test_field_and_outcome_conditions_combine() -> None:
    condition = AllOf(
        (parse_filter("company.custom.tier=gold"), OutcomeCondition(1, "clicked", happened=False))
    )
    assert evaluate(condition, JANE, {1: StepOutcome(clicked=False)}).met
    assert not evaluate(condition, JANE, {1: StepOutcome(clicked=True)}).met
    either = AnyOf((parse_filter("company.custom.seats>100"), OutcomeCondition(2, "opened")))
    assert evaluate(either, JANE, {1: StepOutcome(), 2: StepOutcome(opened=True)}).met
    result = evaluate(either, JANE, {1: StepOutcome()})
    assert not result.met
    assert result.reasons == ("company.custom.seats>100 does not hold", "step 2 was not sent")


def test_a_step_can_only_depend_on_earlier_steps() -> None:
    check_condition(OutcomeCondition(1, "opened"), step=2)
    check_condition(parse_filter("company.custom.tier=gold"), step=1)
    for later in (
        OutcomeCondition(2, "opened"),
        AllOf((OutcomeCondition(3, "replied"),)),
        OutcomeCondition(0, "opened"),
    ):
        with pytest.raises(ConditionError, match="earlier step"):
            check_condition(later, step=2)


def test_a_reply_ends_the_sequence_by_default() -> None:
    replied = {1: StepOutcome(opened=True), 2: StepOutcome(replied=True)}
    assert not continues(replied)
    assert continues(replied, stop_on_reply=False)
    assert continues({1: StepOutcome(opened=True, clicked=True)})
