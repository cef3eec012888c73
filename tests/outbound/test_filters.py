"""Recipient filters: parsing `--where` expressions and typed comparisons over merge fields."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from touchline.outbound.compose.filters import (
    FieldFilter,
    FilterError,
    matches,
    matches_all,
    parse_filter,
    parse_filters,
)
from touchline.outbound.compose.merge import (
    CompanyFields,
    EnduserFields,
    FieldPath,
    FieldValue,
    MergeContext,
    SenderFields,
)

SENDER = SenderFields("Sam", "sam@touchline.example")


def context(company_custom: dict[str, FieldValue | None] | None = None, **enduser: object) -> MergeContext:
    fields: dict[str, object] = {"email": "jane@acme.example", "first_name": "Jane", **enduser}
    return MergeContext(
        EnduserFields(**fields),  # type: ignore[arg-type]
        SENDER,
        CompanyFields("Acme Inc", domain="acme.example", custom=company_custom or {}),
    )


@pytest.mark.parametrize(
    ("text", "parsed"),
    [
        ("company.name=Acme Inc", FieldFilter(FieldPath("company", "name"), "=", "Acme Inc")),
        ("company.custom.tier!=gold", FieldFilter(FieldPath("company", "tier", custom=True), "!=", "gold")),
        ("company.custom.arr<1000", FieldFilter(FieldPath("company", "arr", custom=True), "<", "1000")),
        ("company.custom.arr>=1000", FieldFilter(FieldPath("company", "arr", custom=True), ">=", "1000")),
        ("enduser.email~@acme.example", FieldFilter(FieldPath("enduser", "email"), "~", "@acme.example")),
        ("enduser.custom.role=", FieldFilter(FieldPath("enduser", "role", custom=True), "empty")),
        ("enduser.title!=", FieldFilter(FieldPath("enduser", "title"), "not-empty")),
        ("company.custom.formula=a=b", FieldFilter(FieldPath("company", "formula", custom=True), "=", "a=b")),
    ],
)
def test_parsing(text: str, parsed: FieldFilter) -> None:
    assert parse_filter(text) == parsed


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("company.name", "no operator"),
        ("company.name!gold", "not an operator"),
        ("company.nmae=Acme", "the company fields are"),
        ("customer.name=Acme", "a field starts with enduser., company. or sender."),
        ("sender.name=Sam", "recipients are chosen by company or enduser fields"),
        ("company.custom.=x", "only enduser and company have custom fields"),
        ("company.custom.arr<", "< needs a value"),
        ("enduser.email~", "~ needs a value"),
    ],
)
def test_clear_errors(text: str, message: str) -> None:
    with pytest.raises(FilterError, match=message):
        parse_filter(text)


def test_text_compares_ignoring_case() -> None:
    jane = context({"tier": "Gold"})
    assert matches(parse_filter("company.custom.tier=gold"), jane)
    assert not matches(parse_filter("company.custom.tier!=GOLD"), jane)
    assert matches(parse_filter("enduser.email~@ACME"), jane)
    assert matches(parse_filter("company.name<B"), jane)


def test_numbers_compare_as_numbers() -> None:
    jane = context({"arr": Decimal("900.5"), "seats": 40, "nps": 7.5})
    assert matches(parse_filter("company.custom.arr<1000"), jane)  # as text "900.5" > "1000"
    assert matches(parse_filter("company.custom.seats>9"), jane)  # as text "40" < "9"
    assert matches(parse_filter("company.custom.seats=40.0"), jane)
    assert matches(parse_filter("company.custom.nps>=7.5"), jane)
    assert not matches(parse_filter("company.custom.seats<=39"), jane)


def test_dates_compare_as_dates() -> None:
    jane = context({"renewal": date(2027, 1, 31)})
    assert matches(parse_filter("company.custom.renewal<2027-02-01"), jane)
    assert matches(parse_filter("company.custom.renewal=2027-01-31"), jane)
    assert not matches(parse_filter("company.custom.renewal>2027-01-31"), jane)


def test_yes_no_fields() -> None:
    jane = context({"churned": False})
    assert matches(parse_filter("company.custom.churned=false"), jane)
    assert matches(parse_filter("company.custom.churned!=yes"), jane)


def test_a_value_not_of_the_fields_type_matches_only_not_equal() -> None:
    jane = context({"seats": 40, "renewal": date(2027, 1, 31)})
    assert not matches(parse_filter("company.custom.seats=many"), jane)
    assert not matches(parse_filter("company.custom.seats<many"), jane)
    assert matches(parse_filter("company.custom.seats!=many"), jane)
    assert not matches(parse_filter("company.custom.renewal>soon"), jane)
    assert not matches(parse_filter("company.custom.seats<NaN"), jane)


def test_empty_fields() -> None:
    jane = context({"tier": ""}, title=None)
    assert matches(parse_filter("company.custom.tier="), jane)
    assert matches(parse_filter("company.custom.missing="), jane)
    assert matches(parse_filter("enduser.title="), jane)
    assert not matches(parse_filter("enduser.first_name="), jane)
    assert matches(parse_filter("enduser.first_name!="), jane)
    assert not matches(parse_filter("company.custom.tier=gold"), jane)
    assert matches(parse_filter("company.custom.tier!=gold"), jane)
    assert not matches(parse_filter("company.custom.tier<gold"), jane)
    assert not matches(parse_filter("company.custom.tier~g"), jane)


def test_an_enduser_without_a_company_has_empty_company_fields() -> None:
    lone = MergeContext(EnduserFields("solo@free.example"), SENDER)
    assert matches(parse_filter("company.name="), lone)
    assert not matches(parse_filter("company.name~a"), lone)


def test_repeated_where_are_all_required() -> None:
    where = parse_filters(["company.custom.tier=gold", "enduser.email~@acme.example"])
    assert matches_all(where, context({"tier": "gold"}))
    assert not matches_all(where, context({"tier": "silver"}))


field_values = st.one_of(
    st.none(),
    st.text(max_size=20),
    st.integers(),
    st.decimals(),
    st.floats(),
    st.dates(),
    st.booleans(),
)


@settings(max_examples=300, deadline=None)
@given(
    value=field_values,
    operand=st.text(min_size=1, max_size=20).filter(lambda text: text.strip() == text and text),
)
def test_equal_and_not_equal_are_opposites_for_any_value(value: FieldValue | None, operand: str) -> None:
    merge = context({"x": value})
    equal = matches(parse_filter(f"company.custom.x={operand}"), merge)
    assert equal != matches(parse_filter(f"company.custom.x!={operand}"), merge)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=40))
def test_any_text_parses_or_fails_clearly_and_round_trips(text: str) -> None:
    try:
        parsed = parse_filter(text)
    except FilterError:
        return
    assert parse_filter(str(parsed)) == parsed
