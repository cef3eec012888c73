"""The Sent by the demo page: what `touchline demo`'s sink received, for admins. Thin."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from touchline.demo import sent_message, sent_messages
from touchline.kit.errors import NotFoundError
from touchline.ui import render
from touchline.workspace.auth import AppSettings, PageActor
from touchline.workspace.permissions import Permission

router = APIRouter(include_in_schema=False)


@router.get("/demo/sent", response_class=HTMLResponse)
def demo_sent(request: Request, actor: PageActor, settings: AppSettings) -> HTMLResponse:
    actor.require(Permission.ADMIN_ACCESS)
    if settings.demo_sent_folder is None:
        raise NotFoundError("this page exists only under touchline demo")
    received = sent_messages(settings.demo_sent_folder)
    return render(
        request, "demo_sent.html", actor, {"messages": received, "folder": settings.demo_sent_folder}
    )


@router.get("/demo/sent/{message_name}", response_class=HTMLResponse)
def demo_sent_message(
    request: Request, message_name: str, actor: PageActor, settings: AppSettings
) -> HTMLResponse:
    actor.require(Permission.ADMIN_ACCESS)
    folder = settings.demo_sent_folder
    message = sent_message(folder, message_name) if folder else None
    if message is None:
        raise NotFoundError("no such message was received")
    return render(request, "demo_sent_message.html", actor, {"message": message})
