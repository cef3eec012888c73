"""JSON API of sequences: define them, enrol endusers, pause, resume and unenrol. Thin."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Response, status

from touchline.db import session_scope
from touchline.kit.errors import InvalidInputError
from touchline.outbound.sequences import service
from touchline.outbound.sequences.schemas import EnrolIn, EnrolmentOut, EnrolOut, SequenceIn, SequenceOut
from touchline.workspace.auth import ApiActor, Now, Sessions

router = APIRouter(prefix="/api/v1/sequences", tags=["sequences"])


@router.post("", status_code=status.HTTP_201_CREATED, summary="Create a sequence (needs send_email)")
def create_sequence(body: SequenceIn, actor: ApiActor, sessions: Sessions) -> SequenceOut:
    with session_scope(sessions) as session:
        return SequenceOut.of(service.create_sequence(session, actor, body.spec()))


@router.get("", summary="The workspace's sequences with how many enrolments are in each state")
def list_sequences(actor: ApiActor, sessions: Sessions) -> list[SequenceOut]:
    with session_scope(sessions) as session:
        rows = service.list_sequences(session, actor)
        counts = service.counts_by_state(session, actor, [row.id for row in rows])
        return [SequenceOut.of(row, counts.get(row.id)) for row in rows]


@router.get("/{sequence_id}", summary="One sequence and its steps")
def read_sequence(sequence_id: uuid.UUID, actor: ApiActor, sessions: Sessions) -> SequenceOut:
    with session_scope(sessions) as session:
        row = service.get_sequence(session, actor, sequence_id)
        return SequenceOut.of(row, service.counts_by_state(session, actor, [row.id]).get(row.id))


@router.put("/{sequence_id}", summary="Save a sequence as given; the saver sends its steps from now on")
def update_sequence(
    sequence_id: uuid.UUID, body: SequenceIn, actor: ApiActor, sessions: Sessions
) -> SequenceOut:
    with session_scope(sessions) as session:
        return SequenceOut.of(service.update_sequence(session, actor, sequence_id, body.spec()))


@router.delete("/{sequence_id}", status_code=status.HTTP_204_NO_CONTENT, summary="Delete a sequence")
def delete_sequence(sequence_id: uuid.UUID, actor: ApiActor, sessions: Sessions) -> Response:
    with session_scope(sessions) as session:
        service.delete_sequence(session, actor, sequence_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post("/{sequence_id}/pause", summary="Pause the whole sequence: no step of it runs")
def pause_sequence(sequence_id: uuid.UUID, actor: ApiActor, sessions: Sessions, now: Now) -> SequenceOut:
    with session_scope(sessions) as session:
        return SequenceOut.of(service.set_sequence_status(session, actor, sequence_id, paused=True, now=now))


@router.post("/{sequence_id}/resume", summary="Resume it; steps due meanwhile go at the next window")
def resume_sequence(sequence_id: uuid.UUID, actor: ApiActor, sessions: Sessions, now: Now) -> SequenceOut:
    with session_scope(sessions) as session:
        return SequenceOut.of(service.set_sequence_status(session, actor, sequence_id, paused=False, now=now))


@router.post("/{sequence_id}/enrolments", summary="Enrol endusers by id or by filters (never twice at once)")
def enrol(sequence_id: uuid.UUID, body: EnrolIn, actor: ApiActor, sessions: Sessions, now: Now) -> EnrolOut:
    if bool(body.contact_ids) == bool(body.where):
        raise InvalidInputError("give either contact_ids or where filters")
    with session_scope(sessions) as session:
        if body.contact_ids:
            result = service.enrol(session, actor, sequence_id, body.contact_ids, now=now)
        else:
            result = service.enrol_where(session, actor, sequence_id, body.where, now=now)
        return EnrolOut(
            enrolled=[EnrolmentOut.of(row) for row in result.enrolled],
            already=result.already,
            unsubscribed=result.unsubscribed,
        )


@router.get("/{sequence_id}/enrolments", summary="The sequence's enrolments, their state and step runs")
def list_enrolments(sequence_id: uuid.UUID, actor: ApiActor, sessions: Sessions) -> list[EnrolmentOut]:
    with session_scope(sessions) as session:
        rows = service.list_enrolments(session, actor, sequence_id)
        runs = service.step_runs(session, actor, [row.id for row in rows])
        return [EnrolmentOut.of(row, runs.get(row.id)) for row in rows]


@router.post("/enrolments/{enrolment_id}/pause", summary="Pause one enrolment")
def pause(enrolment_id: uuid.UUID, actor: ApiActor, sessions: Sessions, now: Now) -> EnrolmentOut:
    with session_scope(sessions) as session:
        return EnrolmentOut.of(service.pause(session, actor, enrolment_id, now=now))


@router.post(
    "/enrolments/{enrolment_id}/resume", summary="Resume it; an overdue step goes at the next window"
)
def resume(enrolment_id: uuid.UUID, actor: ApiActor, sessions: Sessions, now: Now) -> EnrolmentOut:
    with session_scope(sessions) as session:
        return EnrolmentOut.of(service.resume(session, actor, enrolment_id, now=now))


@router.post("/enrolments/{enrolment_id}/unenrol", summary="End one enrolment; no further step runs")
def unenrol(enrolment_id: uuid.UUID, actor: ApiActor, sessions: Sessions, now: Now) -> EnrolmentOut:
    with session_scope(sessions) as session:
        return EnrolmentOut.of(service.unenrol(session, actor, enrolment_id, now=now))
