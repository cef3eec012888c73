"""The models package maps the outbound half's tables only when they are asked for, and `Base` asked
of it holds every table. Each check runs in an interpreter of its own: this suite's conftest has loaded
every table already."""

from __future__ import annotations

import json
import subprocess
import sys

OUTBOUND_HALF = (
    "touchline.models.bulk",
    "touchline.models.engagement",
    "touchline.models.experiments",
    "touchline.models.notifications",
    "touchline.models.outbound",
    "touchline.models.send_budgets",
    "touchline.models.sequences",
    "touchline.models.templates",
)


def run_fresh(code: str) -> dict[str, list[str]]:
    """Run `code` in a new interpreter; it leaves lists of names in the dict `result`, returned here."""
    script = f"import json, sys\nresult = {{}}\n{code}\nprint(json.dumps(result))"
    ran = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=60
    )
    result: dict[str, list[str]] = json.loads(ran.stdout.splitlines()[-1])
    return result


def test_the_package_alone_maps_no_outbound_table_and_its_tables_configure_by_themselves() -> None:
    result = run_fresh(
        "import touchline.models\n"
        "from sqlalchemy.orm import configure_mappers\n"
        "configure_mappers()\n"
        "result['loaded'] = [m for m in sys.modules if m.startswith('touchline.models.')]\n"
        "from touchline.models.base import Base\n"
        "result['tables'] = sorted(Base.metadata.tables)\n"
    )
    assert not set(OUTBOUND_HALF) & set(result["loaded"])
    assert {"mailboxes", "emails", "contacts", "users", "pending_jobs"} <= set(result["tables"])
    assert "outbound_emails" not in result["tables"]


def test_an_outbound_name_asked_of_the_package_maps_its_module_then_configures_with_the_rest() -> None:
    result = run_fresh(
        "import touchline.models\n"
        "from sqlalchemy.orm import configure_mappers\n"
        "configure_mappers()\n"  # the first half already in use, as in a running process
        "from touchline.models import Enrolment, OutboundEmail\n"
        "configure_mappers()\n"
        "result['targets'] = [Enrolment.contact.property.mapper.class_.__name__,\n"
        "    OutboundEmail.recipients.property.mapper.class_.__name__]\n"
        "result['loaded'] = [m for m in sys.modules if m.startswith('touchline.models.')]\n"
    )
    assert result["targets"] == ["Contact", "OutboundRecipient"]
    assert {"touchline.models.sequences", "touchline.models.outbound"} <= set(result["loaded"])
    assert "touchline.models.templates" not in result["loaded"]


def test_base_asked_of_the_package_holds_every_table() -> None:
    result = run_fresh(
        "from touchline.models import Base\n"
        "result['tables'] = sorted(Base.metadata.tables)\n"
        "result['loaded'] = [m for m in sys.modules if m.startswith('touchline.models.')]\n"
    )
    assert set(OUTBOUND_HALF) <= set(result["loaded"])
    assert {"outbound_emails", "templates", "sequence_enrolments", "bulk_sends", "send_budgets"} <= set(
        result["tables"]
    )


def test_a_name_the_package_does_not_have_is_an_attribute_error() -> None:
    result = run_fresh(
        "import touchline.models\n"
        "try:\n"
        "    touchline.models.Nonexistent\n"
        "except AttributeError as error:\n"
        "    result['error'] = [str(error)]\n"
    )
    assert "Nonexistent" in result["error"][0]
