"""CSV files that cannot be read as CSV are refused whole, with every problem and its line, on the
API and the CLI, and nothing is stored; problems of single rows are reported with their own line."""

from __future__ import annotations

import csv

import pytest
from fastapi.testclient import TestClient

from tests.conftest import Team
from tests.test_cli import touchline  # noqa: F401 -- the fixture that runs the command

BIG_CELL = "x" * (csv.field_size_limit() + 1)

UNREADABLE = {
    # An unclosed quote would swallow every row after it into one cell.
    "unclosed quote": (
        'name,domains\nAcme,acme.example\n"Globex,globex.example\nInitech,initech.example\n',
        3,
    ),
    "stray quote": ('name,domains\nAcme,acme.example\n"Glo"bex,globex.example\n', 3),
    "more fields than the header": ("name,domains\nAcme,acme.example\nGlobex,globex.example,extra\n", 3),
    "a field over the csv module's limit": (f"name,domains\nAcme,acme.example\n{BIG_CELL},big.example\n", 3),
    "repeated header column": ("name,domains,name\nAcme,acme.example,Acme Corp\n", 1),
    "a NUL character": ("name,domains\nAcme,acme.example\nGlo\x00bex,globex.example\n", 3),
}


def _companies(client: TestClient, team: Team) -> list[object]:
    return list(client.get("/api/v1/companies", headers=team.headers()).json()["items"])


@pytest.mark.parametrize("case", sorted(UNREADABLE))
def test_an_unreadable_file_is_refused_whole_by_the_api(client: TestClient, team: Team, case: str) -> None:
    text, line = UNREADABLE[case]
    response = client.post(
        "/api/v1/imports/companies", files={"file": ("c.csv", text, "text/csv")}, headers=team.headers()
    )
    assert response.status_code == 422, response.text
    detail = response.json()["detail"]
    assert "nothing was imported" in detail
    assert f"line {line}:" in detail
    assert _companies(client, team) == []


def test_every_problem_of_a_file_is_listed_with_its_line(client: TestClient, team: Team) -> None:
    text = "email,name\na@x.example,A,1\nb@x.example,B\nc@x.example,C,3,4\n"
    response = client.post(
        "/api/v1/imports/contacts", files={"file": ("p.csv", text, "text/csv")}, headers=team.headers()
    )
    assert response.status_code == 422
    detail = response.json()["detail"]
    assert "line 2: 3 fields where the header names 2" in detail
    assert "line 4: 4 fields where the header names 2" in detail
    assert client.get("/api/v1/contacts", headers=team.headers()).json()["items"] == []


def test_row_errors_name_the_line_the_row_starts_on(client: TestClient, team: Team) -> None:
    # A quoted cell spans lines 3 and 4, and a blank line 5 holds no row: the bad row is on line 6.
    text = 'name,domains,notes\nAcme,acme.example,\nGlobex,globex.example,"two\nlines"\n\nMail,gmail.com,\n'
    report = client.post(
        "/api/v1/imports/companies", files={"file": ("c.csv", text, "text/csv")}, headers=team.headers()
    ).json()
    assert (report["created"], [error["row"] for error in report["errors"]]) == (2, [6])


def test_the_cli_refuses_an_unreadable_file_with_exit_2(touchline, tmp_path) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    created = touchline("workspace", "create", "Acme Success", "--internal-domain", "acme-staff.example")
    assert created.returncode == 0, created.stderr
    companies = tmp_path / "companies.csv"
    companies.write_text(UNREADABLE["unclosed quote"][0])
    refused = touchline("import", "companies", "--workspace", "Acme Success", str(companies))
    assert refused.returncode == 2, refused.stdout + refused.stderr
    assert "line 3:" in refused.stderr
    assert "nothing was imported" in refused.stderr
    assert "Traceback" not in refused.stderr
    shown = touchline("workspace", "show", "Acme Success", "--json")
    assert '"companies": 0' in shown.stdout
