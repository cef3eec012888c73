"""Companies, domains and contacts through the JSON API."""

from __future__ import annotations

from fastapi.testclient import TestClient

from tests.conftest import Team


def create_company(client: TestClient, team: Team, name: str, *domains: str) -> dict[str, object]:
    response = client.post(
        "/api/v1/companies", json={"name": name, "domains": list(domains)}, headers=team.headers()
    )
    assert response.status_code == 201, response.text
    body: dict[str, object] = response.json()
    return body


def test_company_domains_are_normalised_and_listed(client: TestClient, team: Team) -> None:
    company = create_company(client, team, "Acme", "ACME.com", "bücher.de")
    assert company["domains"] == ["acme.com", "xn--bcher-kva.de"]
    response = client.get("/api/v1/companies", params={"domain": "acme.com"}, headers=team.headers())
    assert [item["name"] for item in response.json()["items"]] == ["Acme"]


def test_free_mail_domain_is_refused_with_a_clear_error(client: TestClient, team: Team) -> None:
    response = client.post(
        "/api/v1/companies", json={"name": "Mixed", "domains": ["gmail.com"]}, headers=team.headers()
    )
    assert response.status_code == 422
    assert "public email provider" in response.json()["detail"]
    company = create_company(client, team, "Acme", "acme.com")
    response = client.post(
        f"/api/v1/companies/{company['id']}/domains", json={"domain": "Outlook.com"}, headers=team.headers()
    )
    assert response.status_code == 422
    assert "outlook.com is a public email provider" in response.json()["detail"]
    # The failed request changed nothing.
    assert client.get(f"/api/v1/companies/{company['id']}", headers=team.headers()).json()["domains"] == [
        "acme.com"
    ]


def test_a_domain_belongs_to_one_company_per_workspace(
    client: TestClient, team: Team, other_team: Team
) -> None:
    create_company(client, team, "Acme", "acme.com")
    response = client.post(
        "/api/v1/companies", json={"name": "Acme 2", "domains": ["acme.com"]}, headers=team.headers()
    )
    assert response.status_code == 409
    assert "already belongs to the company 'Acme'" in response.json()["detail"]
    # Another workspace may use the same domain for its own customer.
    create_company(client, other_team, "Acme", "acme.com")


def test_internal_domain_cannot_be_a_company_domain(client: TestClient, team: Team) -> None:
    response = client.post(
        "/api/v1/companies", json={"name": "Us", "domains": ["eu.team-a.example"]}, headers=team.headers()
    )
    assert response.status_code == 422
    assert "internal" in response.json()["detail"]


def test_company_update_owner_and_delete(client: TestClient, team: Team) -> None:
    company = create_company(client, team, "Acme", "acme.com")
    url = f"/api/v1/companies/{company['id']}"
    response = client.patch(
        url, json={"name": "Acme Inc", "account_owner_id": str(team.member_id)}, headers=team.headers()
    )
    assert response.status_code == 200
    assert response.json()["account_owner_email"] == "member@team-a.example"
    response = client.patch(url, json={"account_owner_id": None}, headers=team.headers())
    assert response.json()["account_owner_id"] is None
    assert response.json()["name"] == "Acme Inc"
    response = client.delete(f"{url}/domains/acme.com", headers=team.headers())
    assert response.json()["domains"] == []
    assert client.delete(url, headers=team.headers()).status_code == 204
    assert client.get(url, headers=team.headers()).status_code == 404


def test_company_list_filters_and_pages(client: TestClient, team: Team) -> None:
    for number in range(7):
        create_company(client, team, f"Company {number}", f"c{number}.example")
    page = client.get("/api/v1/companies", params={"limit": 3, "offset": 3}, headers=team.headers()).json()
    assert page["total"] == 7
    assert [item["name"] for item in page["items"]] == ["Company 3", "Company 4", "Company 5"]
    found = client.get("/api/v1/companies", params={"q": "c6.exa"}, headers=team.headers()).json()
    assert [item["name"] for item in found["items"]] == ["Company 6"]
    assert client.get("/api/v1/companies", params={"limit": 0}, headers=team.headers()).status_code == 422


def test_contacts_crud_with_filters(client: TestClient, team: Team) -> None:
    company = create_company(client, team, "Acme", "acme.com")
    field = {"kind": "contact", "label": "Tier", "type": "number"}
    assert client.post("/api/v1/custom-fields", json=field, headers=team.headers()).status_code == 201
    response = client.post(
        "/api/v1/contacts",
        json={
            "email": "Jane.Doe@ACME.com",
            "name": "Jane",
            "company_id": company["id"],
            "custom_fields": {"tier": 1},
        },
        headers=team.headers(),
    )
    assert response.status_code == 201
    contact = response.json()
    assert contact["email"] == "jane.doe@acme.com"
    assert contact["company_name"] == "Acme"
    duplicate = client.post("/api/v1/contacts", json={"email": "jane.doe@acme.com"}, headers=team.headers())
    assert duplicate.status_code == 409
    client.post("/api/v1/contacts", json={"email": "solo@elsewhere.example"}, headers=team.headers())
    listed = client.get(
        "/api/v1/contacts", params={"company_id": company["id"]}, headers=team.headers()
    ).json()
    assert [item["email"] for item in listed["items"]] == ["jane.doe@acme.com"]
    unattached = client.get(
        "/api/v1/contacts", params={"without_company": True}, headers=team.headers()
    ).json()
    assert [item["email"] for item in unattached["items"]] == ["solo@elsewhere.example"]
    url = f"/api/v1/contacts/{contact['id']}"
    patched = client.patch(url, json={"company_id": None, "name": "Jane Doe"}, headers=team.headers()).json()
    assert (patched["company_id"], patched["name"], patched["custom_fields"]) == (
        None,
        "Jane Doe",
        {"tier": 1},
    )
    assert (
        client.post("/api/v1/contacts", json={"email": "not-an-address"}, headers=team.headers()).status_code
        == 422
    )
    assert client.delete(url, headers=team.headers()).status_code == 204
    assert client.get(url, headers=team.headers()).status_code == 404


def test_deleting_a_company_keeps_its_contacts(client: TestClient, team: Team) -> None:
    company = create_company(client, team, "Acme", "acme.com")
    contact = client.post(
        "/api/v1/contacts",
        json={"email": "jane@acme.com", "company_id": company["id"]},
        headers=team.headers(),
    ).json()
    client.delete(f"/api/v1/companies/{company['id']}", headers=team.headers())
    assert (
        client.get(f"/api/v1/contacts/{contact['id']}", headers=team.headers()).json()["company_id"] is None
    )


def test_csv_imports_report_each_failed_row(client: TestClient, team: Team) -> None:
    companies = (
        "name,domains,account_owner\n"
        "Acme,acme.com;acme.co.uk,member@team-a.example\n"
        "Webmail,gmail.com,\n"
        "Copycat,acme.com,\n"
        "Acme,acme.de,\n"
        ",nameless.example,\n"
    )
    response = client.post(
        "/api/v1/imports/companies", files={"file": ("c.csv", companies, "text/csv")}, headers=team.headers()
    )
    report = response.json()
    assert (report["created"], report["updated"]) == (1, 1)
    assert [error["row"] for error in report["errors"]] == [3, 4, 6]
    assert "public email provider" in report["errors"][0]["message"]
    acme = client.get("/api/v1/companies", params={"q": "Acme"}, headers=team.headers()).json()["items"][0]
    assert acme["domains"] == ["acme.co.uk", "acme.com", "acme.de"]
    assert acme["account_owner_email"] == "member@team-a.example"

    contacts = (
        "email,name,company\njane@acme.com,Jane,Acme\nbob@acme.co.uk,Bob,acme.co.uk\nx@y.example,X,Nope\n"
    )
    report = client.post(
        "/api/v1/imports/contacts", files={"file": ("p.csv", contacts, "text/csv")}, headers=team.headers()
    ).json()
    assert (report["created"], report["updated"], len(report["errors"])) == (2, 0, 1)
    assert "no company named 'Nope'" in report["errors"][0]["message"]

    missing_column = client.post(
        "/api/v1/imports/contacts", files={"file": ("p.csv", "name\nX\n", "text/csv")}, headers=team.headers()
    )
    assert missing_column.status_code == 422
    assert "no email column" in missing_column.json()["detail"]


def test_settings_are_normalised_and_audited(client: TestClient, team: Team) -> None:
    response = client.patch(
        "/api/v1/workspace/settings",
        json={
            "internal_domains": ["Team-A.example", "team-a.example"],
            "blocklist": ["Noreply@Vendor.example", "spam.example"],
            "lookback_days": 180,
        },
        headers=team.headers(),
    )
    assert response.status_code == 200
    settings = response.json()
    assert settings["internal_domains"] == ["team-a.example"]
    assert settings["blocklist"] == ["noreply@vendor.example", "spam.example"]
    assert settings["log_address"].endswith("@log.test.example")
    bad = client.patch(
        "/api/v1/workspace/settings", json={"blocklist": ["not a domain"]}, headers=team.headers()
    )
    assert bad.status_code == 422
    audit = client.get("/api/v1/audit-log", headers=team.headers()).json()
    assert audit[0]["action"] == "settings.update"
    assert audit[0]["actor"] == "admin@team-a.example"


def test_health_reports_database_and_queue(client: TestClient) -> None:
    body = client.get("/health").json()
    assert body["status"] == "ok"
    assert body["database"]["ok"] is True
    assert body["queue"] == {"backend": "sqlite", "pending": 0, "ok": True}
