"""A database that fails while a batch is stored aborts the batch: no good mail is quarantined, the
caller's checkpoint stays where it was, and the next run stores everything (issue 15, item 11)."""

from __future__ import annotations

import uuid
from collections.abc import Callable

import pytest
from sqlalchemy import Engine, func, select
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from tests.database_faults import failing_statement
from tests.inbound.test_store_batches import _mail, _snapshot, _workspace
from touchline.db import session_scope
from touchline.inbound.importing import import_messages
from touchline.inbound.store import service as store
from touchline.inbound.store.directory import directories
from touchline.kit.crypto import SecretBox
from touchline.models import Contact, Email, QuarantinedMessage, Workspace


def _counts(sessions: sessionmaker[Session], workspace_id: uuid.UUID) -> tuple[int, int, int, int]:
    """Emails, quarantined messages, contacts and the workspace's checkpoint stand-in."""
    with session_scope(sessions) as session:
        return (
            session.scalar(select(func.count()).where(Email.workspace_id == workspace_id)) or 0,
            session.scalar(select(func.count()).where(QuarantinedMessage.workspace_id == workspace_id)) or 0,
            session.scalar(select(func.count()).where(Contact.workspace_id == workspace_id)) or 0,
            len(session.get_one(Workspace, workspace_id).name),
        )


def _syncing(
    sessions: sessionmaker[Session], workspace_id: uuid.UUID, user_id: uuid.UUID, raws: list[bytes]
) -> Callable[[], None]:
    """One batch as sync stores it: decided and stored, then its checkpoint moved (here the
    workspace's name grows), all in one transaction."""

    def run() -> None:
        holding = store.Holding(user_id=user_id, via="sync")
        with session_scope(sessions) as session:
            directory = directories.get(session, workspace_id)
            store.store_raw_messages(
                session,
                workspace_id,
                directory,
                [store.RawIncoming(raw, holding, label="") for raw in raws],
                source="sync",
            )
            workspace = session.get_one(Workspace, workspace_id)
            workspace.name += "+"

    return run


def test_a_database_failure_at_any_statement_of_a_batch_aborts_it_and_quarantines_nothing(
    sessions: sessionmaker[Session], engine: Engine, box: SecretBox
) -> None:
    mail = [raw for _, raw in _mail()[:12]]  # threads, replies before parents, new contacts
    clean, clean_user = _workspace(sessions, box, "Clean run")
    faulty, faulty_user = _workspace(sessions, box, "Faulty run")
    _syncing(sessions, clean, clean_user, mail)()
    before = _counts(sessions, faulty)
    run = _syncing(sessions, faulty, faulty_user, mail)

    number = 0
    while True:
        number += 1
        with failing_statement(engine, number) as fault:
            try:
                run()
            except OperationalError:
                assert fault.fired
            else:
                # Only a run the fault never reached may commit; that one is the rerun.
                assert not fault.fired, f"the batch went on past a failure at statement {number}"
        if not fault.fired:
            break
        assert _counts(sessions, faulty) == before, f"a failure at statement {number} left a trace"

    assert number > 10  # every statement of the batch was made to fail once
    emails, quarantined, _, checkpoint = _counts(sessions, faulty)
    assert (quarantined, checkpoint) == (0, before[3] + 1)
    assert emails == len(_snapshot(sessions, clean)["emails"]) > 0
    assert _snapshot(sessions, faulty) == _snapshot(sessions, clean)


def test_import_raises_a_database_failure_instead_of_quarantining(
    sessions: sessionmaker[Session], engine: Engine, box: SecretBox, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`import mail` stores through the same helper: a failing database stops it with an error
    (what was committed before stays), and a second run stores the rest."""
    workspace_id, user_id = _workspace(sessions, box, "Importing")
    mail = _mail()[:10]
    real = store.store_emails
    calls = 0

    def fails_once(*args: object, **kwargs: object) -> list[store.Stored]:
        nonlocal calls
        calls += 1
        if calls == 1:
            with failing_statement(engine, 3):
                return real(*args, **kwargs)  # type: ignore[arg-type]
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(store, "store_emails", fails_once)
    with pytest.raises(OperationalError):
        import_messages(sessions, workspace_id, user_id, mail)
    assert _counts(sessions, workspace_id)[:2] == (0, 0)
    report = import_messages(sessions, workspace_id, user_id, mail)
    assert (report.kept, report.quarantined) == (10, 0)
