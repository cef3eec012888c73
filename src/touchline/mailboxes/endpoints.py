"""JSON API for a user's mailbox, its folders, and the admin's "Apply to all users". Thin."""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import APIRouter, Request, Response, status
from starlette.concurrency import run_in_threadpool

from touchline.db import session_scope
from touchline.kit.crypto import SecretBox
from touchline.kit.errors import NotFoundError
from touchline.mailboxes import oauth_connect, service
from touchline.mailboxes.connect import check_imap_login, smtp_connection
from touchline.mailboxes.schemas import (
    FolderSelection,
    ImapConnect,
    LookbackChange,
    MailboxOut,
    RemovalOut,
    TaskOut,
)
from touchline.workspace.auth import ApiActor, AppSettings, Now, Sessions

router = APIRouter(prefix="/api/v1", tags=["mailboxes"])


@router.get("/mailboxes", summary="Every connected mailbox of the workspace (admins)")
def list_mailboxes(actor: ApiActor, sessions: Sessions) -> list[MailboxOut]:
    with session_scope(sessions) as session:
        return [MailboxOut.of(m) for m in service.list_mailboxes(session, actor)]


@router.get("/users/me/mailbox", summary="The caller's connected mailbox")
def read_my_mailbox(actor: ApiActor, sessions: Sessions) -> MailboxOut:
    assert actor.user_id is not None
    with session_scope(sessions) as session:
        mailbox = service.mailbox_of_user(session, actor, actor.user_id)
        if mailbox is None:
            raise NotFoundError("no mailbox is connected; POST /api/v1/mailboxes/imap connects one")
        return MailboxOut.of(mailbox)


@router.post(
    "/mailboxes/imap",
    status_code=status.HTTP_201_CREATED,
    summary="Connect an IMAP mailbox",
    responses={429: {"description": "Too many connection attempts; wait as long as Retry-After says"}},
)
async def connect_imap(
    body: ImapConnect, request: Request, actor: ApiActor, sessions: Sessions, settings: AppSettings, now: Now
) -> MailboxOut:
    # Async, so that the login check is awaited on threads of its own, not on one that serves requests.
    user_id = body.user_id or actor.user_id
    assert user_id is not None

    def count_and_check_permission() -> None:
        with session_scope(sessions) as session:
            service.count_connect_attempt(session, actor, settings, now)
        with session_scope(sessions) as session:
            service.mailbox_of_user(session, actor, user_id)

    await run_in_threadpool(count_and_check_permission)  # before any network I/O
    connection: dict[str, Any] = {
        "host": body.host,
        "port": body.port,
        "security": body.security,
        "username": body.username,
        "smtp": smtp_connection(body.host, body.smtp_host, body.smtp_port, body.smtp_security),
    }
    folders = await check_imap_login(connection, body.password, request.app.state.settings)
    box: SecretBox = request.app.state.secret_box

    def store() -> MailboxOut:
        with session_scope(sessions) as session:
            mailbox = service.connect_mailbox(
                session,
                actor,
                box,
                user_id=user_id,
                provider="imap",
                address=body.username,
                connection=connection,
                credentials={"password": body.password},
                folders=folders,
            )
            return MailboxOut.of(mailbox)

    return await run_in_threadpool(store)


@router.get("/mailboxes/{mailbox_id}", summary="Read a mailbox, its folders and sync status")
def read_mailbox(mailbox_id: uuid.UUID, actor: ApiActor, sessions: Sessions) -> MailboxOut:
    with session_scope(sessions) as session:
        return MailboxOut.of(service.get_mailbox(session, actor, mailbox_id))


@router.put("/mailboxes/{mailbox_id}/selected-folders", summary="Choose exactly which folders are synced")
def select_folders(
    mailbox_id: uuid.UUID, body: FolderSelection, actor: ApiActor, sessions: Sessions
) -> MailboxOut:
    with session_scope(sessions) as session:
        return MailboxOut.of(
            service.select_folders(session, actor, mailbox_id, set(body.selected_folder_ids))
        )


@router.patch("/mailboxes/{mailbox_id}", summary="Extend this mailbox's look-back window (back-fills)")
def change_lookback(
    mailbox_id: uuid.UUID, body: LookbackChange, actor: ApiActor, sessions: Sessions
) -> MailboxOut:
    with session_scope(sessions) as session:
        return MailboxOut.of(service.extend_lookback(session, actor, mailbox_id, body.lookback_days))


@router.delete(
    "/mailboxes/{mailbox_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Disconnect: sync stops, mail stays",
)
def disconnect(mailbox_id: uuid.UUID, request: Request, actor: ApiActor, sessions: Sessions) -> Response:
    oauth_connect.disconnect_and_revoke(
        sessions, request.app.state.settings, request.app.state.secret_box, actor, mailbox_id
    )
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.delete("/users/{user_id}/synced-emails", summary="Remove all of a user's synced emails")
def remove_synced(user_id: uuid.UUID, actor: ApiActor, sessions: Sessions) -> RemovalOut:
    with session_scope(sessions) as session:
        return RemovalOut(**service.remove_synced_emails(session, actor, user_id))


@router.post(
    "/workspace/default-synced-labels/apply",
    status_code=status.HTTP_202_ACCEPTED,
    summary="Apply the default synced labels (Inbox, Sent) to all current users (admins)",
)
def apply_default_labels(actor: ApiActor, sessions: Sessions) -> TaskOut:
    with session_scope(sessions) as session:
        return TaskOut.of(service.start_apply_default_labels(session, actor))


@router.get("/tasks/{task_id}", summary="A background task's progress and result")
def read_task(task_id: uuid.UUID, actor: ApiActor, sessions: Sessions) -> TaskOut:
    with session_scope(sessions) as session:
        return TaskOut.of(service.get_task(session, actor, task_id))
