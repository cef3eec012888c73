"""The admin's "Apply to all users" job."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from touchline.db import session_scope
from touchline.mailboxes import service
from touchline.models import BackgroundTask
from touchline.worker import JobContext, job


@job(service.APPLY_DEFAULT_LABELS_JOB, retries=2, retry_delay=10)
def apply_default_labels(context: JobContext, *, task_id: str) -> None:
    with session_scope(context.sessions) as session:
        task = session.get(BackgroundTask, uuid.UUID(task_id))
        if task is None or task.status == "done":
            return
        task.status = "running"
        parameters = dict(task.parameters)
        workspace_id = task.workspace_id
        already = task.done
    outcomes: dict[str, int] = {}
    try:
        # One transaction per user, so progress shows as it goes and a retry resumes where it stopped.
        for index, user_id in enumerate(parameters["user_ids"]):
            if index < already:
                continue
            with session_scope(context.sessions) as session:
                outcome = service.apply_default_labels_to_user(
                    session,
                    workspace_id,
                    uuid.UUID(user_id),
                    inbox=parameters["inbox"],
                    sent=parameters["sent"],
                )
                task = session.get(BackgroundTask, uuid.UUID(task_id))
                assert task is not None
                task.done = index + 1
                counts = dict(task.result)
                counts[outcome] = counts.get(outcome, 0) + 1
                task.result = counts
                outcomes = counts
    except Exception as error:
        with session_scope(context.sessions) as session:
            task = session.get(BackgroundTask, uuid.UUID(task_id))
            if task is not None:
                task.status, task.error = "failed", str(error)
        raise
    with session_scope(context.sessions) as session:
        task = session.get(BackgroundTask, uuid.UUID(task_id))
        if task is not None:
            task.status, task.finished_at, task.result = (
                "done",
                datetime.now(UTC),
                outcomes or dict(task.result),
            )
