"""Custom fields: keys and types read from CSV columns, imports, and the API's checks of typed values."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any

import pytest
from fastapi.testclient import TestClient
from hypothesis import given
from hypothesis import strategies as st

from tests.conftest import Team
from touchline.kit.errors import InvalidInputError
from touchline.workspace.custom_fields import (
    KEY_PATTERN,
    detect_type,
    normalise_key,
    parse_text,
    parse_type_overrides,
    typed_value,
)

# --- keys and types, without storage -------------------------------------------------------------


@pytest.mark.parametrize(
    ("column", "key"),
    [
        ("Renewal Date", "renewal_date"),
        ("renewal_date", "renewal_date"),
        ("  ARR (€) ", "arr"),
        ("Café Owner", "cafe_owner"),
        ("2024 Score", "f_2024_score"),
        ("seats--left", "seats_left"),
    ],
)
def test_column_names_become_template_safe_keys(column: str, key: str) -> None:
    assert normalise_key(column) == key


@given(st.text(max_size=300))
def test_every_key_is_an_identifier_or_refused(column: str) -> None:
    try:
        key = normalise_key(column)
    except InvalidInputError:
        return
    assert KEY_PATTERN.fullmatch(key), key
    assert normalise_key(key) == key  # a key is its own key


@pytest.mark.parametrize(
    ("values", "kind"),
    [
        (["12", "-3.5", "", "+7"], "number"),
        (["2027-01-31", "2027/02/28", "31 Jan 2027", "January 31, 2027"], "date"),
        (["2027-01-31", "soon"], "text"),
        (["01/02/2027"], "text"),  # day and month cannot be told apart: not taken as a date
        (["1,200"], "text"),  # thousands separators are not guessed at
        (["", " "], "text"),
        (["gold", "42"], "text"),
    ],
)
def test_a_column_type_is_detected_from_all_its_values(values: list[str], kind: str) -> None:
    assert detect_type(values) == kind


# Whole numbers are kept exactly; a number with a fraction is a JSON (binary) number, exact to 15 digits.
FRACTIONS = st.decimals(min_value=-(10**11), max_value=10**11, places=3)


@given(st.lists(st.integers() | FRACTIONS, min_size=1))
def test_written_numbers_are_detected_and_read_back(numbers: list[int | Decimal]) -> None:
    texts = [format(number, "f") if isinstance(number, Decimal) else str(number) for number in numbers]
    assert detect_type(texts) == "number"
    for number, text in zip(numbers, texts, strict=True):
        assert typed_value("number", parse_text("n", "number", text)) == number


@given(st.lists(st.dates(min_value=date(1900, 1, 1)), min_size=1), st.sampled_from(["%Y-%m-%d", "%d %b %Y"]))
def test_written_dates_are_detected_and_read_back(days: list[date], pattern: str) -> None:
    texts = [day.strftime(pattern) for day in days]
    assert detect_type(texts) == "date"
    assert [parse_text("d", "date", text) for text in texts] == [day.isoformat() for day in days]


def test_type_overrides_are_read_and_checked() -> None:
    assert parse_type_overrides(["Renewal Date=DATE", "seats=number, tier=text"]) == {
        "renewal_date": "date",
        "seats": "number",
        "tier": "text",
    }
    with pytest.raises(InvalidInputError, match="not a field type"):
        parse_type_overrides(["seats=integer"])
    with pytest.raises(InvalidInputError, match="COLUMN=TYPE"):
        parse_type_overrides(["seats"])


def test_stored_values_are_read_in_their_types() -> None:
    assert typed_value("number", 12) == 12
    assert typed_value("number", 12.5) == Decimal("12.5")
    assert typed_value("date", "2027-01-31") == date(2027, 1, 31)
    assert typed_value("text", "gold") == "gold"
    assert typed_value("date", "soon") is None
    assert typed_value("number", True) is None


# --- imports -------------------------------------------------------------------------------------


def _import(
    client: TestClient, team: Team, kind: str, text: str, *types: str, who: str = "admin"
) -> dict[str, Any]:
    response = client.post(
        f"/api/v1/imports/{kind}",
        files={"file": (f"{kind}.csv", text, "text/csv")},
        data={"field_type": list(types)},
        headers=team.headers(who),
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def _fields(client: TestClient, team: Team, kind: str) -> dict[str, tuple[str, str]]:
    response = client.get("/api/v1/custom-fields", params={"kind": kind}, headers=team.headers())
    assert response.status_code == 200, response.text
    return {row["key"]: (row["label"], row["type"]) for row in response.json()}


def _company(client: TestClient, team: Team, name: str) -> dict[str, Any]:
    found = client.get("/api/v1/companies", params={"q": name}, headers=team.headers()).json()["items"]
    assert len(found) == 1, found
    body: dict[str, Any] = found[0]
    return body


def test_extra_columns_become_typed_custom_fields(client: TestClient, team: Team) -> None:
    csv_text = (
        "Name,Domains,Renewal Date,Seats,Tier,ARR (€),Notes\n"
        "Acme,acme.com,2027-01-31,25,gold,1200.50,\n"
        "\n"  # a blank line is skipped, not a company without a name
        "Globex,globex.com,31 Mar 2027,7,silver,80,likes calls\n"
    )
    report = _import(client, team, "companies", csv_text, who="member")
    assert (report["created"], report["errors"]) == (2, [])
    assert _fields(client, team, "company") == {
        "renewal_date": ("Renewal Date", "date"),
        "seats": ("Seats", "number"),
        "tier": ("Tier", "text"),
        "arr": ("ARR (€)", "number"),
        "notes": ("Notes", "text"),
    }
    assert _company(client, team, "Acme")["custom_fields"] == {
        "renewal_date": "2027-01-31",
        "seats": 25,
        "tier": "gold",
        "arr": 1200.5,
    }
    assert _company(client, team, "Globex")["custom_fields"]["renewal_date"] == "2027-03-31"

    # A later import fills the same fields; an empty cell leaves a value as it was.
    report = _import(client, team, "companies", "name,domains,seats,tier\nAcme,,30,\n")
    assert (report["updated"], report["errors"]) == (1, [])
    assert _company(client, team, "Acme")["custom_fields"]["seats"] == 30
    assert _company(client, team, "Acme")["custom_fields"]["tier"] == "gold"


def test_a_value_that_does_not_fit_its_type_fails_its_line(client: TestClient, team: Team) -> None:
    csv_text = (
        "name,domains,renewal_date,seats\n"
        "Acme,acme.com,2027-01-31,25\n"
        "Globex,globex.com,next spring,seven\n"
        "Initech,initech.com,,3\n"
    )
    # The override makes the column a date although one value is not one; detection would say text.
    report = _import(client, team, "companies", csv_text, "renewal_date=date", "seats=number")
    assert report["created"] == 2
    assert report["errors"] == [
        {
            "row": 3,
            "message": "renewal_date: 'next spring' is not a date (write 2027-01-31); "
            "seats: 'seven' is not a number (write 1250 or 12.5)",
        }
    ]
    assert _fields(client, team, "company")["renewal_date"] == ("renewal_date", "date")
    names = [row["name"] for row in client.get("/api/v1/companies", headers=team.headers()).json()["items"]]
    assert "Globex" not in names  # the line was not imported at all, not imported half


def test_an_existing_field_keeps_its_type(client: TestClient, team: Team) -> None:
    _import(client, team, "contacts", "email,score\na@acme.com,10\n")
    assert _fields(client, team, "contact") == {"score": ("score", "number")}
    # The column now looks like text, but the field is a number: the misfit is that line's error.
    report = _import(client, team, "contacts", "email,score\nb@acme.com,high\nc@acme.com,3\n")
    assert report["errors"] == [{"row": 2, "message": "score: 'high' is not a number (write 1250 or 12.5)"}]
    response = client.post(
        "/api/v1/imports/contacts",
        files={"file": ("p.csv", "email,score\nd@acme.com,4\n", "text/csv")},
        data={"field_type": ["score=text"]},
        headers=team.headers(),
    )
    assert response.status_code == 422
    assert "score is already a number field" in response.json()["detail"]


def test_columns_that_give_one_key_are_refused(client: TestClient, team: Team) -> None:
    response = client.post(
        "/api/v1/imports/companies",
        files={"file": ("c.csv", "name,domains,Renewal Date,renewal_date\nAcme,acme.com,1,2\n", "text/csv")},
        headers=team.headers(),
    )
    assert response.status_code == 422
    assert response.json()["detail"].endswith(
        "nothing was imported: line 1: the columns 'Renewal Date' and 'renewal_date' both give the field "
        "key 'renewal_date'; rename one"
    )
    assert _fields(client, team, "company") == {}
    response = client.post(
        "/api/v1/imports/companies",
        files={"file": ("c.csv", "name,domains\nAcme,acme.com\n", "text/csv")},
        data={"field_type": ["seats=number"]},
        headers=team.headers(),
    )
    assert response.status_code == 422
    assert "not an extra column" in response.json()["detail"]


# --- the API -------------------------------------------------------------------------------------


def _define(client: TestClient, team: Team, kind: str, label: str, type_name: str) -> dict[str, Any]:
    response = client.post(
        "/api/v1/custom-fields",
        json={"kind": kind, "label": label, "type": type_name},
        headers=team.headers(),
    )
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


def test_custom_values_are_checked_against_their_fields(client: TestClient, team: Team) -> None:
    _define(client, team, "company", "Renewal date", "date")
    _define(client, team, "company", "Seats", "number")
    _define(client, team, "company", "Tier", "text")
    created = client.post(
        "/api/v1/companies",
        json={"name": "Acme", "custom_fields": {"renewal_date": "2027-01-31", "seats": 25, "tier": "gold"}},
        headers=team.headers(),
    )
    assert created.status_code == 201, created.text
    url = f"/api/v1/companies/{created.json()['id']}"

    refusals = [
        ({"seats": "25"}, "custom field 'seats' is a number: give a JSON number, not '25'"),
        ({"tier": 3}, "custom field 'tier' is text: give a string, not 3"),
        ({"renewal_date": "31/01/2027"}, "custom field 'renewal_date' is a date: give it as YYYY-MM-DD"),
        ({"renewal_date": "2027-02-30"}, "custom field 'renewal_date' is a date"),
        ({"owner_mood": "happy"}, "'owner_mood' is not a custom field of companies"),
    ]
    for change, message in refusals:
        response = client.patch(url, json={"custom_fields": change}, headers=team.headers())
        assert response.status_code == 422, (change, response.text)
        assert message in response.json()["detail"]
    # A yes/no or a nested value is no field's type: refused by the schema, never converted.
    for value in (True, {"a": 1}, [1]):
        response = client.patch(url, json={"custom_fields": {"seats": value}}, headers=team.headers())
        assert response.status_code == 422, value

    # Only the keys given change; null clears one.
    patched = client.patch(url, json={"custom_fields": {"seats": 30, "tier": None}}, headers=team.headers())
    assert patched.status_code == 200, patched.text
    assert patched.json()["custom_fields"] == {"renewal_date": "2027-01-31", "seats": 30}


def test_fields_are_renamed_and_deleted_with_their_values(client: TestClient, team: Team) -> None:
    field = _define(client, team, "contact", "Plan", "text")
    assert field["key"] == "plan"
    contact = client.post(
        "/api/v1/contacts",
        json={"email": "a@acme.com", "custom_fields": {"plan": "pro"}},
        headers=team.headers(),
    ).json()
    renamed = client.patch(
        f"/api/v1/custom-fields/{field['id']}", json={"label": "Plan name"}, headers=team.headers()
    )
    assert (renamed.json()["label"], renamed.json()["key"]) == ("Plan name", "plan")
    again = client.post(
        "/api/v1/custom-fields",
        json={"kind": "contact", "label": "PLAN", "type": "number"},
        headers=team.headers(),
    )
    assert again.status_code == 409
    assert client.delete(f"/api/v1/custom-fields/{field['id']}", headers=team.headers()).status_code == 204
    assert (
        client.get(f"/api/v1/contacts/{contact['id']}", headers=team.headers()).json()["custom_fields"] == {}
    )


def test_defining_fields_needs_edit_customers(client: TestClient, team: Team, other_team: Team) -> None:
    body = {"kind": "company", "label": "Tier", "type": "text"}
    assert client.post("/api/v1/custom-fields", json=body, headers=team.headers("viewer")).status_code == 403
    field = client.post("/api/v1/custom-fields", json=body, headers=team.headers("member")).json()
    assert [
        row["key"] for row in client.get("/api/v1/custom-fields", headers=team.headers("viewer")).json()
    ] == ["tier"]
    url = f"/api/v1/custom-fields/{field['id']}"
    assert client.delete(url, headers=team.headers("viewer")).status_code == 403
    # Another workspace neither sees nor changes it.
    assert client.get("/api/v1/custom-fields", headers=other_team.headers()).json() == []
    assert client.delete(url, headers=other_team.headers()).status_code == 404


def test_openapi_describes_custom_values_as_typed(client: TestClient, team: Team) -> None:
    schemas = client.get("/openapi.json").json()["components"]["schemas"]
    values = schemas["CompanyOut"]["properties"]["custom_fields"]["additionalProperties"]
    assert {item["type"] for item in values["anyOf"]} == {"string", "integer", "number"}
    assert schemas["CustomFieldOut"]["properties"]["type"]["enum"] == ["text", "number", "date"]
