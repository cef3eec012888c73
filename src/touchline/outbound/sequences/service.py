"""Sequences: define them, enrol endusers (by hand or by filter), pause, resume and unenrol.

A sequence's steps are sent as its owner (the user who saved it last) from its From choice. Each
enrolment knows the position of its next step and when it is due (timing.py decides when); the
worker's tick (scheduler.py) runs due steps.

Takes a session; may flush, never commits.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from collections.abc import Sequence as Many
from dataclasses import dataclass, field
from datetime import datetime, time
from typing import Final

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from touchline.kit.errors import ConflictError, InvalidInputError, NotFoundError
from touchline.kit.zones import zone_named, zone_problem
from touchline.models import Contact, Enrolment, Sequence, SequenceStep, StepRun, Template, User
from touchline.models.sequences import RUNNING_STATES
from touchline.outbound import repository
from touchline.outbound.compose.conditions import AllOf, Condition, check_condition, parse_condition
from touchline.outbound.compose.filters import FieldFilter, matches_all, parse_filters
from touchline.outbound.compose.senders import ACCOUNT_OWNER
from touchline.outbound.from_field import service as from_field
from touchline.outbound.from_field.service import ComposeContext
from touchline.outbound.sequences.timing import SendWindow, due_after_pause, step_due
from touchline.workspace import service as workspace_service
from touchline.workspace.permissions import Actor, Permission

ACTIVE, PAUSED, FINISHED, EXITED, UNENROLLED, FAILED = (
    "active",
    "paused",
    "finished",
    "exited",
    "unenrolled",
    "failed",
)
CONTACT_ZONE_FIELD: Final = "time_zone"
"""A contact custom field holding an IANA zone name (`Europe/Berlin`): that enduser's steps follow
their own zone; a contact without it (or with a name that is no zone) follows the sequence's."""
MAX_STEPS: Final = 50
MAX_DELAY_DAYS: Final = 365
MAX_NAME_CHARS: Final = 200


@dataclass(frozen=True)
class StepSpec:
    template_id: uuid.UUID
    delay_days: int = 0
    condition: str = ""


@dataclass(frozen=True)
class SequenceSpec:
    """A sequence as written; `time_zone` is an IANA name, or None for the workspace's zone."""

    name: str
    sender: str
    steps: Many[StepSpec]
    exit_on_reply: bool = True
    time_zone: str | None = None
    window_start: time = time(9, 0)
    window_end: time = time(17, 0)
    business_days_only: bool = True


@dataclass(frozen=True)
class EnrolResult:
    """Who was enrolled, and who was not and why (already running, or unsubscribed)."""

    enrolled: list[Enrolment] = field(default_factory=list)
    already: list[str] = field(default_factory=list)
    unsubscribed: list[str] = field(default_factory=list)


# --- conditions and windows ---------------------------------------------------------------------


def step_condition(text: str, position: int) -> Condition | None:
    """A step's condition text read as one condition: every non-empty line must hold."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if not lines:
        return None
    parsed = tuple(parse_condition(line) for line in lines)
    condition: Condition = parsed[0] if len(parsed) == 1 else AllOf(parsed)
    check_condition(condition, position)
    return condition


def window_for(sequence: Sequence, contact: Contact | None) -> SendWindow:
    """The sequence's window, in the contact's own zone when it names one."""
    own = zone_named(str(contact.custom_fields.get(CONTACT_ZONE_FIELD) or "")) if contact else None
    zone = own or zone_named(sequence.time_zone)
    assert zone is not None  # checked when saved
    return SendWindow(sequence.window_start, sequence.window_end, zone, sequence.business_days_only)


# --- defining sequences --------------------------------------------------------------------------


def _check_steps(session: Session, actor: Actor, steps: Many[StepSpec]) -> None:
    templates = set(
        session.scalars(
            select(Template.id).where(
                Template.workspace_id == actor.workspace_id,
                Template.id.in_([step.template_id for step in steps]),
            )
        )
    )
    for position, step in enumerate(steps, start=1):
        if step.template_id not in templates:
            raise InvalidInputError(f"step {position}: choose one of this workspace's templates")
        if not 0 <= step.delay_days <= MAX_DELAY_DAYS:
            raise InvalidInputError(f"step {position}: the delay is 0 to {MAX_DELAY_DAYS} days")
        try:
            step_condition(step.condition, position)
        except InvalidInputError as error:
            raise InvalidInputError(f"step {position}: {error}") from None


def _checked(session: Session, actor: Actor, spec: SequenceSpec) -> SequenceSpec:
    name = " ".join(spec.name.split())
    if not name:
        raise InvalidInputError("a sequence needs a name")
    if len(name) > MAX_NAME_CHARS:
        raise InvalidInputError(f"a sequence name has at most {MAX_NAME_CHARS} characters")
    time_zone = (
        spec.time_zone.strip()
        if spec.time_zone is not None
        else workspace_service.time_zone_name(session, actor.workspace_id)
    )
    if zone_named(time_zone) is None:
        raise InvalidInputError(zone_problem(time_zone))
    if not spec.window_start < spec.window_end:
        raise InvalidInputError("the send window must start before it ends, within one day")
    if not spec.steps:
        raise InvalidInputError("a sequence needs at least one step")
    if len(spec.steps) > MAX_STEPS:
        raise InvalidInputError(f"a sequence has at most {MAX_STEPS} steps")
    sender = spec.sender.strip()
    if sender.casefold() == ACCOUNT_OWNER:
        sender = ACCOUNT_OWNER
    else:
        decision = from_field.check_from(session, actor, sender, ComposeContext())
        if not decision.allowed or decision.choice is None:
            raise InvalidInputError(decision.reason)
        sender = decision.choice.key
    _check_steps(session, actor, spec.steps)
    return SequenceSpec(
        name,
        sender,
        spec.steps,
        spec.exit_on_reply,
        time_zone,
        spec.window_start,
        spec.window_end,
        spec.business_days_only,
    )


def _name_taken(session: Session, actor: Actor, name: str, other_than: uuid.UUID | None) -> bool:
    found = session.scalar(
        select(Sequence.id).where(Sequence.workspace_id == actor.workspace_id, Sequence.name == name)
    )
    return found is not None and found != other_than


def _apply(session: Session, actor: Actor, row: Sequence, spec: SequenceSpec) -> None:
    row.name, row.sender, row.owner_id = spec.name, spec.sender, actor.user_id
    assert spec.time_zone is not None  # `_checked` names the workspace's zone when none was given
    row.exit_on_reply, row.time_zone = spec.exit_on_reply, spec.time_zone
    row.window_start, row.window_end = spec.window_start, spec.window_end
    row.business_days_only = spec.business_days_only
    # Steps are kept by position, so enrolments and their step runs keep pointing at the same step.
    existing = {step.position: step for step in row.steps}
    for position, wanted in enumerate(spec.steps, start=1):
        step = existing.pop(position, None)
        if step is None:
            step = SequenceStep(workspace_id=actor.workspace_id, position=position)
            row.steps.append(step)
        step.template_id, step.delay_days = wanted.template_id, wanted.delay_days
        step.condition = "\n".join(line.strip() for line in wanted.condition.splitlines() if line.strip())
    for dropped in existing.values():
        row.steps.remove(dropped)


def create_sequence(session: Session, actor: Actor, spec: SequenceSpec) -> Sequence:
    actor.require(Permission.SEND_EMAIL)
    checked = _checked(session, actor, spec)
    if _name_taken(session, actor, checked.name, None):
        raise ConflictError(f"a sequence named {checked.name!r} already exists; choose another name")
    row = Sequence(workspace_id=actor.workspace_id, status=ACTIVE)
    session.add(row)
    _apply(session, actor, row, checked)
    session.flush()
    workspace_service.record_audit(session, actor, "sequence.create", "sequence", row.id, {"name": row.name})
    return row


def update_sequence(session: Session, actor: Actor, sequence_id: uuid.UUID, spec: SequenceSpec) -> Sequence:
    """Saves the sequence as written; running enrolments go on at their position with the new steps.
    The saver becomes its owner: steps are sent as them from now on."""
    row = get_sequence(session, actor, sequence_id)
    checked = _checked(session, actor, spec)
    if _name_taken(session, actor, checked.name, row.id):
        raise ConflictError(f"a sequence named {checked.name!r} already exists; choose another name")
    _apply(session, actor, row, checked)
    session.flush()
    workspace_service.record_audit(session, actor, "sequence.update", "sequence", row.id, {"name": row.name})
    return row


def get_sequence(session: Session, actor: Actor, sequence_id: uuid.UUID) -> Sequence:
    actor.require(Permission.SEND_EMAIL)
    row = session.scalar(
        select(Sequence).where(Sequence.id == sequence_id, Sequence.workspace_id == actor.workspace_id)
    )
    if row is None:
        raise NotFoundError("sequence not found")
    return row


def sequence_named(session: Session, actor: Actor, name: str) -> Sequence:
    actor.require(Permission.SEND_EMAIL)
    row = session.scalar(
        select(Sequence).where(Sequence.workspace_id == actor.workspace_id, Sequence.name == name.strip())
    )
    if row is None:
        raise NotFoundError(f"no sequence named {name.strip()!r} in this workspace")
    return row


def list_sequences(session: Session, actor: Actor) -> list[Sequence]:
    actor.require(Permission.SEND_EMAIL)
    return list(
        session.scalars(
            select(Sequence).where(Sequence.workspace_id == actor.workspace_id).order_by(Sequence.name)
        )
    )


def delete_sequence(session: Session, actor: Actor, sequence_id: uuid.UUID) -> None:
    """Its enrolments and step runs go with it; emails already queued still leave."""
    row = get_sequence(session, actor, sequence_id)
    workspace_service.record_audit(session, actor, "sequence.delete", "sequence", row.id, {"name": row.name})
    session.delete(row)
    session.flush()


def counts_by_state(
    session: Session, actor: Actor, sequence_ids: Iterable[uuid.UUID]
) -> dict[uuid.UUID, dict[str, int]]:
    actor.require(Permission.SEND_EMAIL)
    counts: dict[uuid.UUID, dict[str, int]] = {}
    for sequence_id, state in session.execute(
        select(Enrolment.sequence_id, Enrolment.state).where(
            Enrolment.workspace_id == actor.workspace_id, Enrolment.sequence_id.in_(list(sequence_ids))
        )
    ):
        by_state = counts.setdefault(sequence_id, {})
        by_state[state] = by_state.get(state, 0) + 1
    return counts


def set_sequence_status(
    session: Session, actor: Actor, sequence_id: uuid.UUID, *, paused: bool, now: datetime
) -> Sequence:
    """Pause a whole sequence (no step of it runs), or resume it: steps that fell due meanwhile go at
    the next opening of their window."""
    row = get_sequence(session, actor, sequence_id)
    session.refresh(row, with_for_update=True)
    if paused:
        row.status = PAUSED
    elif row.status == PAUSED:
        row.status = ACTIVE
        for enrolment in session.scalars(
            select(Enrolment).where(Enrolment.sequence_id == row.id, Enrolment.state == ACTIVE)
        ):
            if enrolment.next_due_at is not None:
                window = window_for(row, enrolment.contact)
                enrolment.next_due_at = due_after_pause(enrolment.next_due_at, now, window)
    session.flush()
    workspace_service.record_audit(
        session, actor, "sequence.pause" if paused else "sequence.resume", "sequence", row.id, {}
    )
    return row


# --- enrolling -----------------------------------------------------------------------------------


def _running(session: Session, sequence_id: uuid.UUID, contact_ids: Iterable[uuid.UUID]) -> set[uuid.UUID]:
    return set(
        session.scalars(
            select(Enrolment.contact_id).where(
                Enrolment.sequence_id == sequence_id,
                Enrolment.contact_id.in_(list(contact_ids)),
                Enrolment.state.in_(RUNNING_STATES),
            )
        )
    )


def enrol(
    session: Session, actor: Actor, sequence_id: uuid.UUID, contact_ids: Many[uuid.UUID], *, now: datetime
) -> EnrolResult:
    """Enrol the workspace's contacts named; one already in the sequence (active or paused) or
    unsubscribed is left out and named in the result. Step 1 is due its delay after now."""
    actor.require(Permission.SEND_EMAIL)
    sequence = get_sequence(session, actor, sequence_id)
    if not sequence.steps:
        raise InvalidInputError("this sequence has no steps to send")
    contacts = list(
        session.scalars(
            select(Contact)
            .where(Contact.workspace_id == actor.workspace_id, Contact.id.in_(list(contact_ids)))
            .order_by(Contact.email)
        )
    )
    if len(contacts) != len(set(contact_ids)):
        raise NotFoundError("a contact named was not found in this workspace")
    running = _running(session, sequence.id, (contact.id for contact in contacts))
    result = EnrolResult()
    first = sequence.steps[0]
    for contact in contacts:
        if contact.unsubscribed_at is not None:
            result.unsubscribed.append(contact.email)
            continue
        if contact.id in running:
            result.already.append(contact.email)
            continue
        row = Enrolment(
            workspace_id=actor.workspace_id,
            sequence_id=sequence.id,
            contact_id=contact.id,
            state=ACTIVE,
            current_step=1,
            next_due_at=step_due(now, first.delay_days, window_for(sequence, contact)),
            enrolled_by=actor.user_id,
            enrolled_at=now,
        )
        try:
            with session.begin_nested():
                session.add(row)
        except IntegrityError:
            # Enrolled by someone else since we looked: the database keeps one running enrolment.
            result.already.append(contact.email)
            continue
        result.enrolled.append(row)
    workspace_service.record_audit(
        session,
        actor,
        "sequence.enrol",
        "sequence",
        sequence.id,
        {"enrolled": len(result.enrolled), "already": len(result.already)},
    )
    return result


def matching_contacts(
    session: Session, actor: Actor, sequence: Sequence, where: Many[str]
) -> list[uuid.UUID]:
    """The workspace's contacts every filter holds for (`company.custom.tier=gold`), read as the
    sequence's owner would send to them."""
    filters: tuple[FieldFilter, ...] = parse_filters(where)
    if not filters:
        raise InvalidInputError("give at least one filter, such as company.custom.tier=gold")
    sender = session.get(User, sequence.owner_id) if sequence.owner_id else None
    if sender is None:
        sender = workspace_service.get_user(session, actor, actor.user_id) if actor.user_id else None
    if sender is None:
        raise InvalidInputError("act as a user to choose endusers by filter")
    ids = list(session.scalars(select(Contact.id).where(Contact.workspace_id == actor.workspace_id)))
    contexts = repository.merge_contexts(session, actor, ids, sender)
    return sorted(
        (contact_id for contact_id, context in contexts.items() if matches_all(filters, context)), key=str
    )


def enrol_where(
    session: Session, actor: Actor, sequence_id: uuid.UUID, where: Many[str], *, now: datetime
) -> EnrolResult:
    sequence = get_sequence(session, actor, sequence_id)
    return enrol(session, actor, sequence.id, matching_contacts(session, actor, sequence, where), now=now)


def get_enrolment(session: Session, actor: Actor, enrolment_id: uuid.UUID) -> Enrolment:
    actor.require(Permission.SEND_EMAIL)
    row = session.scalar(
        select(Enrolment).where(Enrolment.id == enrolment_id, Enrolment.workspace_id == actor.workspace_id)
    )
    if row is None:
        raise NotFoundError("enrolment not found")
    return row


def list_enrolments(session: Session, actor: Actor, sequence_id: uuid.UUID) -> list[Enrolment]:
    sequence = get_sequence(session, actor, sequence_id)
    return list(
        session.scalars(
            select(Enrolment)
            .where(Enrolment.workspace_id == actor.workspace_id, Enrolment.sequence_id == sequence.id)
            .order_by(Enrolment.enrolled_at.desc(), Enrolment.id)
        )
    )


def step_runs(
    session: Session, actor: Actor, enrolment_ids: Iterable[uuid.UUID]
) -> dict[uuid.UUID, list[StepRun]]:
    actor.require(Permission.SEND_EMAIL)
    runs: dict[uuid.UUID, list[StepRun]] = {}
    for run in session.scalars(
        select(StepRun)
        .where(StepRun.workspace_id == actor.workspace_id, StepRun.enrolment_id.in_(list(enrolment_ids)))
        .order_by(StepRun.position)
    ):
        runs.setdefault(run.enrolment_id, []).append(run)
    return runs


def _move(
    session: Session,
    actor: Actor,
    enrolment_id: uuid.UUID,
    from_states: tuple[str, ...],
    now: datetime,
    **values: object,
) -> Enrolment:
    """One conditional UPDATE: the tick, holding the row while it runs a step, is waited for, and a
    state changed meanwhile is reported instead of overwritten."""
    row = get_enrolment(session, actor, enrolment_id)
    changed = session.execute(
        update(Enrolment)
        .where(Enrolment.id == row.id, Enrolment.state.in_(from_states))
        .values(updated_at=now, **values)
        .execution_options(synchronize_session=False)
    )
    session.refresh(row)
    if not changed.rowcount:  # type: ignore[attr-defined]
        raise ConflictError(f"this enrolment is {row.state}; it can no longer be changed that way")
    return row


def pause(session: Session, actor: Actor, enrolment_id: uuid.UUID, *, now: datetime) -> Enrolment:
    row = _move(session, actor, enrolment_id, (ACTIVE,), now, state=PAUSED)
    workspace_service.record_audit(session, actor, "sequence.enrolment.pause", "enrolment", row.id, {})
    return row


def resume(session: Session, actor: Actor, enrolment_id: uuid.UUID, *, now: datetime) -> Enrolment:
    """Active again; a step that fell due while paused goes at the next opening of the window."""
    row = get_enrolment(session, actor, enrolment_id)
    sequence = session.get(Sequence, row.sequence_id)
    assert sequence is not None
    due = row.next_due_at
    if due is not None:
        due = due_after_pause(due, now, window_for(sequence, row.contact))
    row = _move(session, actor, enrolment_id, (PAUSED,), now, state=ACTIVE, next_due_at=due)
    workspace_service.record_audit(session, actor, "sequence.enrolment.resume", "enrolment", row.id, {})
    return row


def unenrol(session: Session, actor: Actor, enrolment_id: uuid.UUID, *, now: datetime) -> Enrolment:
    row = _move(
        session,
        actor,
        enrolment_id,
        RUNNING_STATES,
        now,
        state=UNENROLLED,
        next_due_at=None,
        ended_at=now,
        reason=f"unenrolled by {actor.label}",
    )
    workspace_service.record_audit(session, actor, "sequence.enrolment.unenrol", "enrolment", row.id, {})
    return row


def end_on_reply(session: Session, enrolment: Enrolment, *, now: datetime) -> bool:
    """End a running enrolment because its enduser replied (the sequence exits on a reply); False when
    it had already ended. The tick would find the reply too, at the step's next due time: this ends
    it when the reply arrives."""
    changed = session.execute(
        update(Enrolment)
        .where(Enrolment.id == enrolment.id, Enrolment.state.in_(RUNNING_STATES))
        .values(
            state=EXITED,
            reason=f"{enrolment.contact.email} replied",
            next_due_at=None,
            ended_at=now,
            updated_at=now,
        )
        .execution_options(synchronize_session=False)
    )
    session.refresh(enrolment)
    return bool(changed.rowcount)  # type: ignore[attr-defined]


def contacts_by_email(session: Session, actor: Actor, emails: Iterable[str]) -> list[uuid.UUID]:
    """The workspace's contacts with these addresses; every address that is no contact is named."""
    actor.require(Permission.VIEW_CUSTOMERS)
    wanted = {email.strip().lower() for email in emails if email.strip()}
    if not wanted:
        raise InvalidInputError("give at least one enduser's email address")
    rows = session.execute(
        select(Contact.email, Contact.id).where(
            Contact.workspace_id == actor.workspace_id, Contact.email.in_(sorted(wanted))
        )
    )
    found = {row.email: row.id for row in rows}
    missing = sorted(wanted - set(found))
    if missing:
        raise InvalidInputError(
            f"no contact with the address {', '.join(missing)}; add them as contacts first"
        )
    return [found[email] for email in sorted(wanted)]
