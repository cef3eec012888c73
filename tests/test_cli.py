"""The operator's commands, run as a person runs them."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy.orm import Session, sessionmaker

from tests.conftest import touchline_environment
from touchline.config import Settings


@pytest.fixture
def touchline(settings: Settings, sessions: sessionmaker[Session]):  # type: ignore[no-untyped-def]
    env = touchline_environment(settings)

    def run(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "touchline.cli", *args],
            env=env,
            input=stdin,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    return run


def test_operator_sets_up_a_workspace(touchline, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    created = touchline("workspace", "create", "Acme Success", "--internal-domain", "acme-staff.example")
    assert created.returncode == 0, created.stderr
    workspace_id = created.stdout.strip()

    added = touchline(
        "user",
        "add",
        "--workspace",
        workspace_id,
        "lead@acme-staff.example",
        "--role",
        "Admin",
        "--password-stdin",
        stdin="a-long-password\n",
    )
    assert added.returncode == 0, added.stderr
    refused = touchline(
        "user", "add", "--workspace", "Acme Success", "x@acme-staff.example", "--role", "Pilot"
    )
    assert refused.returncode == 1
    assert "no role named 'Pilot'" in refused.stderr

    companies = tmp_path / "companies.csv"
    companies.write_text(
        "name,domains,account_owner\nGlobex,globex.example;globex.co.uk,lead@acme-staff.example\nMail,gmail.com,\n"
    )
    imported = touchline("import", "companies", "--workspace", "Acme Success", str(companies))
    assert imported.returncode == 1  # one row failed, and the command says so
    assert "1 created, 0 updated, 1 failed" in imported.stdout
    assert "public email provider" in imported.stdout

    contacts = tmp_path / "contacts.csv"
    contacts.write_text("email,name,company\nhank@globex.example,Hank,globex.co.uk\n")
    imported = touchline("import", "contacts", "--workspace", workspace_id, str(contacts))
    assert imported.returncode == 0, imported.stdout + imported.stderr

    shown = touchline("workspace", "show", workspace_id, "--json")
    summary = json.loads(shown.stdout)
    assert summary["id"] == workspace_id
    assert summary["internal_domains"] == ["acme-staff.example"]
    assert summary["log_address"].endswith("@log.test.example")
    assert (summary["users"], summary["companies"], summary["contacts"]) == (1, 1, 1)
    assert summary["default_synced_labels"] == {"inbox": False, "sent": False}
    assert {role["name"] for role in summary["roles"]} == {"Admin", "Member", "Viewer"}

    token = touchline("token", "create", "--workspace", workspace_id, "--user", "lead@acme-staff.example")
    assert token.stdout.startswith("tl_")


def test_unknown_workspace_is_a_clear_error(touchline) -> None:  # type: ignore[no-untyped-def]
    result = touchline("workspace", "show", "Nope", "--json")
    assert result.returncode == 1
    assert "no workspace 'Nope'" in result.stderr
    duplicate = touchline("workspace", "create", "Twice", "--time-zone", "Europe/Berlin")
    assert duplicate.returncode == 0
    shown = json.loads(touchline("workspace", "show", "Twice", "--json").stdout)
    assert shown["time_zone"] == "Europe/Berlin"
    nowhere = touchline("workspace", "create", "Nowhere", "--time-zone", "Mars/Olympus")
    assert nowhere.returncode == 1
    assert "'Mars/Olympus' is not a time zone; use an IANA name like Europe/Berlin" in nowhere.stderr
    again = touchline("workspace", "create", "Twice")
    assert again.returncode == 1
    assert "already exists" in again.stderr


def test_import_types_extra_columns_as_told(touchline, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    created = touchline("workspace", "create", "Acme Success", "--internal-domain", "acme-staff.example")
    assert created.returncode == 0, created.stderr
    companies = tmp_path / "companies.csv"
    companies.write_text(
        "name,domains,Renewal Date,Account Code\n"
        "Globex,globex.example,2027-01-31,0042\n"
        "Initech,initech.example,someday,0043\n"
    )
    imported = touchline(
        "import", "companies", "--workspace", "Acme Success", str(companies),
        "--field-type", "renewal_date=date", "--field-type", "Account Code=text",
    )  # fmt: skip
    assert imported.returncode == 1  # line 3 failed, and the command says so
    assert "1 created, 0 updated, 1 failed" in imported.stdout
    assert "renewal_date: 'someday' is not a date" in imported.stdout
    refused = touchline(
        "import", "companies", "--workspace", "Acme Success", str(companies), "--field-type", "seats=integer"
    )
    assert refused.returncode == 1
    assert "'integer' is not a field type; use text, number, date" in refused.stderr


def test_operator_invites_a_user_who_sets_a_password_through_the_printed_link(  # type: ignore[no-untyped-def]
    touchline, settings: Settings, sessions: sessionmaker[Session]
) -> None:
    from touchline.db import session_scope
    from touchline.models.base import utcnow
    from touchline.workspace import account_links, service

    assert touchline("workspace", "create", "Acme Success").returncode == 0
    invited = touchline(
        "user", "invite", "--workspace", "Acme Success", "New@acme-staff.example", "--role", "Viewer"
    )
    assert invited.returncode == 0, invited.stderr
    link = invited.stdout.strip()
    assert link.startswith(f"{settings.base_url}/invitations/tlinv_")
    again = touchline("user", "invite", "--workspace", "Acme Success", "new@acme-staff.example")
    assert again.returncode == 0, again.stderr
    with session_scope(sessions) as session:
        with pytest.raises(account_links.UnusableLinkError, match="replaced"):
            account_links.open_link(session, "invitation", link.rsplit("/", 1)[1], utcnow())
        account_links.accept(
            session,
            settings,
            "invitation",
            again.stdout.strip().rsplit("/", 1)[1],
            password="a-long-password",
            name="New",
            now=utcnow(),
        )
    with session_scope(sessions) as session:
        user = service.authenticate(session, "new@acme-staff.example", "a-long-password")
        assert user is not None
        assert user.role.name == "Viewer"
    refused = touchline("user", "invite", "--workspace", "Acme Success", "new@acme-staff.example")
    assert refused.returncode == 1
    assert "already has a password" in refused.stderr
