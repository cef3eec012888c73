"""The sequence tick on both databases: delays, windows and zones, conditions with given outcomes, the
reply exit, pause/resume/unenrol, and a worker stopped between queueing a step and committing it."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime

import pytest
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from tests.outbound.sequences.conftest import BOB, JANE, Playbook
from touchline.db import session_scope
from touchline.kit.errors import ConflictError, InvalidInputError
from touchline.models import Contact, Enrolment, OutboundEmail
from touchline.outbound.sequences import scheduler
from touchline.outbound.sequences import service as sequences
from touchline.outbound.sequences.outcomes import Engagement, EngagementReader

THREE_STEPS = [("Welcome", 0, ""), ("Nudge", 2, ""), ("Last call", 3, "")]


def _at(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(UTC)


def test_each_step_leaves_its_delay_in_business_days_after_the_one_before(playbook: Playbook) -> None:
    playbook.clock.now = _at("2026-12-10T10:00+01:00")  # a Thursday, inside the Berlin window
    sequence = playbook.create(THREE_STEPS)
    [enrolment] = playbook.enrol(sequence, playbook.jane)

    assert [done.outcome for done in playbook.tick()] == ["queued"]
    # Two business days after Thursday is Monday, at the same local time.
    assert playbook.enrolment(enrolment).next_due_at == _at("2026-12-14T10:00+01:00")
    playbook.clock.now = _at("2026-12-12T10:00+01:00")  # Saturday: nothing is due
    assert playbook.tick() == []
    playbook.clock.now = _at("2026-12-14T10:00+01:00")
    assert [done.outcome for done in playbook.tick()] == ["queued"]
    assert playbook.enrolment(enrolment).next_due_at == _at("2026-12-17T10:00+01:00")
    playbook.clock.now = _at("2026-12-17T10:00+01:00")
    assert [(done.outcome, done.state) for done in playbook.tick()] == [("queued", "finished")]

    assert playbook.runs(enrolment) == [(1, "queued"), (2, "queued"), (3, "queued")]
    sent = playbook.outbound()
    assert [(row.sequence_id, row.sequence_step, row.kind) for row in sent] == [
        (sequence, 1, "sequence"),
        (sequence, 2, "sequence"),
        (sequence, 3, "sequence"),
    ]
    assert [row.subject for row in sent] == ["Welcome for Acme", "Nudge for Acme", "Last call for Acme"]
    assert all(row.idempotency_key == f"sequence:{enrolment}:{row.sequence_step}" for row in sent)
    assert playbook.tick() == []


def test_calendar_days_count_the_weekend(playbook: Playbook) -> None:
    playbook.clock.now = _at("2026-12-10T10:00+01:00")
    sequence = playbook.create([("Welcome", 0, ""), ("Nudge", 2, "")], business_days=False)
    [enrolment] = playbook.enrol(sequence, playbook.jane)
    playbook.tick()
    assert playbook.enrolment(enrolment).next_due_at == _at("2026-12-12T10:00+01:00")


def test_steps_wait_for_the_send_window_in_the_endusers_own_time_zone(playbook: Playbook) -> None:
    with session_scope(playbook.sessions) as session:
        jane = session.get(Contact, playbook.jane)
        assert jane is not None
        jane.custom_fields = {"time_zone": "America/New_York"}
    playbook.clock.now = _at("2026-12-07T22:30+00:00")  # 17:30 in New York: both windows have closed
    sequence = playbook.create([("Welcome", 0, "")])
    jane_enrolment, bob_enrolment = playbook.enrol(sequence, playbook.jane, playbook.bob)

    # Jane goes at 09:00 in New York, Bob (no zone of his own) at 09:00 in the sequence's Berlin.
    assert playbook.enrolment(jane_enrolment).next_due_at == _at("2026-12-08T09:00-05:00")
    assert playbook.enrolment(bob_enrolment).next_due_at == _at("2026-12-08T09:00+01:00")
    assert playbook.tick() == []
    playbook.clock.now = _at("2026-12-08T09:00+01:00")
    assert [done.enrolment_id for done in playbook.tick()] == [bob_enrolment]
    playbook.clock.now = _at("2026-12-08T09:00-05:00")
    assert [done.enrolment_id for done in playbook.tick()] == [jane_enrolment]


def test_a_zone_that_changes_its_clocks_keeps_the_local_hour(playbook: Playbook) -> None:
    playbook.clock.now = _at("2027-03-26T10:00+01:00")  # Friday before Europe's spring change
    sequence = playbook.create([("Welcome", 0, ""), ("Nudge", 1, "")])
    [enrolment] = playbook.enrol(sequence, playbook.jane)
    playbook.tick()
    assert playbook.enrolment(enrolment).next_due_at == _at("2027-03-29T10:00+02:00")


def _opened(positions: Mapping[uuid.UUID, set[int]]) -> EngagementReader:
    """Given engagement: enrolment -> the step positions whose email was opened."""

    def read(session: Session, outbound_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, Engagement]:
        rows = session.scalars(select(OutboundEmail).where(OutboundEmail.id.in_(list(outbound_ids))))
        return {
            row.id: Engagement(opened=row.sequence_step in positions.get(_enrolment_of(row), set()))
            for row in rows
        }

    return read


def _enrolment_of(row: OutboundEmail) -> uuid.UUID:
    return uuid.UUID(row.idempotency_key.split(":")[1])


def test_a_step_runs_only_when_its_condition_holds_for_the_given_outcomes(playbook: Playbook) -> None:
    sequence = playbook.create([("Welcome", 0, ""), ("Nudge", 1, "step 1 not opened")])
    jane, bob = playbook.enrol(sequence, playbook.jane, playbook.bob)
    playbook.tick()
    playbook.clock.advance(days=1)
    engagement = _opened({jane: {1}})  # Jane opened the welcome, Bob did not

    done = {d.enrolment_id: d.outcome for d in playbook.tick(engagement=engagement)}

    assert done == {jane: "skipped", bob: "queued"}
    assert playbook.runs(jane) == [(1, "queued"), (2, "skipped")]
    assert playbook.runs(bob) == [(1, "queued"), (2, "queued")]
    assert playbook.enrolment(jane).state == "finished"
    assert [row.recipients[0].address for row in playbook.outbound() if row.sequence_step == 2] == [BOB]


def test_field_conditions_read_enduser_and_company_fields(playbook: Playbook) -> None:
    sequence = playbook.create(
        [("Welcome", 0, "company.custom.tier=silver"), ("Nudge", 0, "enduser.email~jane")]
    )
    jane, bob = playbook.enrol(sequence, playbook.jane, playbook.bob)
    playbook.tick()
    playbook.tick()
    assert playbook.runs(jane) == [(1, "skipped"), (2, "queued")]
    assert playbook.runs(bob) == [(1, "skipped"), (2, "skipped")]


def test_a_condition_on_a_later_step_is_refused_when_saved(playbook: Playbook) -> None:
    with pytest.raises(InvalidInputError, match=r"step 1: .*earlier step"):
        playbook.create([("Welcome", 0, "step 2 opened")])


def test_a_reply_in_the_sequence_conversation_ends_the_enrolment(playbook: Playbook) -> None:
    sequence = playbook.create(THREE_STEPS)
    jane, bob = playbook.enrol(sequence, playbook.jane, playbook.bob)
    playbook.tick()
    assert playbook.deliver_all() == ["sent", "sent"]
    [welcome_to_jane] = [row for row in playbook.outbound() if row.recipients[0].address == JANE]
    playbook.receive_reply(JANE, welcome_to_jane.message_id)

    playbook.clock.advance(days=2)
    done = {d.enrolment_id: (d.outcome, d.state) for d in playbook.tick()}

    assert done == {jane: ("exited", "exited"), bob: ("queued", "active")}
    assert playbook.enrolment(jane).reason == f"{JANE} replied"
    assert playbook.runs(jane) == [(1, "queued")]
    playbook.clock.advance(days=7)
    playbook.tick()
    assert playbook.runs(jane) == [(1, "queued")]
    assert [row.recipients[0].address for row in playbook.outbound()].count(JANE) == 1


def test_a_reply_from_someone_else_does_not_end_it(playbook: Playbook) -> None:
    sequence = playbook.create(THREE_STEPS)
    [jane] = playbook.enrol(sequence, playbook.jane)
    playbook.tick()
    playbook.deliver_all()
    playbook.receive_reply(BOB, playbook.outbound()[0].message_id)
    playbook.clock.advance(days=2)
    assert [d.outcome for d in playbook.tick()] == ["queued"]
    assert playbook.runs(jane) == [(1, "queued"), (2, "queued")]


def test_without_exit_on_reply_the_steps_go_on_and_answer_the_first_email(playbook: Playbook) -> None:
    sequence = playbook.create(THREE_STEPS, exit_on_reply=False)
    [_jane] = playbook.enrol(sequence, playbook.jane)
    playbook.tick()
    playbook.deliver_all()
    first = playbook.outbound()[0]
    playbook.receive_reply(JANE, first.message_id)
    playbook.clock.advance(days=2)
    assert [d.outcome for d in playbook.tick()] == ["queued"]
    second = playbook.outbound()[1]
    assert second.in_reply_to == f"<{first.message_id.strip('<>')}>"


def test_pause_holds_the_steps_and_resume_sends_an_overdue_one_at_the_next_window(playbook: Playbook) -> None:
    sequence = playbook.create(THREE_STEPS)
    [enrolment] = playbook.enrol(sequence, playbook.jane)
    playbook.tick()
    with session_scope(playbook.sessions) as session:
        sequences.pause(session, playbook.member(session), enrolment, now=playbook.clock.now)
    due = playbook.enrolment(enrolment).next_due_at
    assert due == _at("2026-12-09T09:00+01:00")
    playbook.clock.now = _at("2026-12-10T13:00+01:00")  # past due, inside Thursday's window
    assert playbook.tick() == []

    with session_scope(playbook.sessions) as session:
        sequences.resume(session, playbook.member(session), enrolment, now=playbook.clock.now)
    assert playbook.enrolment(enrolment).state == "active"
    assert playbook.enrolment(enrolment).next_due_at == _at("2026-12-11T09:00+01:00")
    assert playbook.tick() == []
    playbook.clock.now = _at("2026-12-11T09:00+01:00")
    assert [d.outcome for d in playbook.tick()] == ["queued"]
    with session_scope(playbook.sessions) as session, pytest.raises(ConflictError, match="active"):
        sequences.resume(session, playbook.member(session), enrolment, now=playbook.clock.now)


def test_a_paused_sequence_runs_no_step(playbook: Playbook) -> None:
    sequence = playbook.create(THREE_STEPS)
    playbook.enrol(sequence, playbook.jane)
    with session_scope(playbook.sessions) as session:
        sequences.set_sequence_status(
            session, playbook.member(session), sequence, paused=True, now=playbook.clock.now
        )
    assert playbook.tick() == []
    with session_scope(playbook.sessions) as session:
        sequences.set_sequence_status(
            session, playbook.member(session), sequence, paused=False, now=playbook.clock.now
        )
    assert [d.outcome for d in playbook.tick()] == ["queued"]


def test_unenrol_stops_the_steps_and_allows_enrolling_again(playbook: Playbook) -> None:
    sequence = playbook.create(THREE_STEPS)
    [enrolment] = playbook.enrol(sequence, playbook.jane)
    with session_scope(playbook.sessions) as session:
        sequences.unenrol(session, playbook.member(session), enrolment, now=playbook.clock.now)
    assert playbook.tick() == []
    assert playbook.enrolment(enrolment).state == "unenrolled"
    assert playbook.enrolment(enrolment).reason == "unenrolled by member@team-a.example"
    assert len(playbook.enrol(sequence, playbook.jane)) == 1


def test_an_enduser_is_never_enrolled_twice_at_once(playbook: Playbook) -> None:
    sequence = playbook.create(THREE_STEPS)
    assert len(playbook.enrol(sequence, playbook.jane)) == 1
    with session_scope(playbook.sessions) as session:
        result = sequences.enrol(
            session, playbook.member(session), sequence, [playbook.jane], now=playbook.clock.now
        )
    assert (result.enrolled, result.already) == ([], [JANE])
    # The database itself refuses a second running enrolment, whoever writes it.
    with pytest.raises(IntegrityError), session_scope(playbook.sessions) as session:
        session.add(
            Enrolment(
                workspace_id=playbook.team.workspace_id,
                sequence_id=sequence,
                contact_id=playbook.jane,
                state="paused",
                current_step=1,
            )
        )


def test_an_enduser_who_unsubscribed_is_left_out_with_the_reason(playbook: Playbook) -> None:
    sequence = playbook.create(THREE_STEPS)
    [enrolment] = playbook.enrol(sequence, playbook.jane)
    with session_scope(playbook.sessions) as session:
        jane = session.get(Contact, playbook.jane)
        assert jane is not None
        jane.unsubscribed_at = playbook.clock.now
    assert [d.outcome for d in playbook.tick()] == ["unsubscribed"]
    row = playbook.enrolment(enrolment)
    assert row.state == "unenrolled"
    assert row.reason is not None
    assert "unsubscribed" in row.reason
    assert playbook.outbound() == []


class Killed(BaseException):
    """The worker process dying: not an error any code handles."""


def test_a_worker_killed_before_committing_a_step_sends_each_step_once(playbook: Playbook) -> None:
    sequence = playbook.create(THREE_STEPS)
    [enrolment] = playbook.enrol(sequence, playbook.jane)

    def kill(session: Session, done: scheduler.StepDone) -> None:
        assert done.outcome == "queued"  # the email is stored, the job not yet sent
        raise Killed

    for _ in THREE_STEPS:
        with pytest.raises(Killed):
            playbook.tick(before_commit=kill)
        assert playbook.tick() != []  # the restarted worker runs the same step
        assert playbook.tick() == []
        playbook.clock.advance(days=7)
    assert playbook.runs(enrolment) == [(1, "queued"), (2, "queued"), (3, "queued")]
    assert [row.sequence_step for row in playbook.outbound()] == [1, 2, 3]
    assert playbook.enrolment(enrolment).state == "finished"


def test_an_unexpected_error_in_one_enrolment_leaves_the_others_and_is_retried(playbook: Playbook) -> None:
    sequence = playbook.create(THREE_STEPS)
    jane, bob = playbook.enrol(sequence, playbook.jane, playbook.bob)
    calls: list[int] = []

    def fails_once(session: Session, outbound_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, Engagement]:
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("engagement records could not be read")
        return {}

    first = [d.enrolment_id for d in playbook.tick(engagement=fails_once)]
    assert len(first) == 1
    assert [d.enrolment_id for d in playbook.tick(engagement=fails_once)] == [
        {jane, bob}.difference(first).pop()
    ]
    assert sorted(len(playbook.runs(e)) for e in (jane, bob)) == [1, 1]
    assert len(playbook.outbound()) == 2


def test_a_second_worker_finds_a_step_already_taken(playbook: Playbook) -> None:
    sequence = playbook.create(THREE_STEPS)
    [enrolment] = playbook.enrol(sequence, playbook.jane)
    with session_scope(playbook.sessions) as session:
        assert scheduler.due_enrolments(session, playbook.clock.now) == [enrolment]
    playbook.tick()
    # A worker that listed the enrolment before the first committed now finds it no longer due.
    with session_scope(playbook.sessions) as session:
        assert scheduler._claim(session, enrolment, playbook.clock.now) is None
    assert len(playbook.outbound()) == 1


def test_enrol_by_filter(playbook: Playbook) -> None:
    sequence = playbook.create(THREE_STEPS)
    with session_scope(playbook.sessions) as session:
        result = sequences.enrol_where(
            session,
            playbook.member(session),
            sequence,
            ["enduser.email~bob", "company.custom.tier=gold"],
            now=playbook.clock.now,
        )
        assert [row.contact_id for row in result.enrolled] == [playbook.bob]
