"""Connecting an IMAP mailbox through the API and the Email tab: private targets refused unless an
operator allows them, the server's words never shown, and slow servers never holding up other requests."""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from playwright.sync_api import Page, expect

from tests.conftest import Team
from tests.mailboxes.scripted_server import SECRET, imap_answers, scripted_server
from tests.pages.test_companies_pages import log_in
from touchline.config import Settings
from touchline.kit.errors import InvalidInputError
from touchline.mailboxes import connect as mailbox_connect
from touchline.mailboxes.connect import LOGIN_CHECK_THREADS, check_imap_login

HINT = "an operator can allow private mail hosts with TOUCHLINE_ALLOW_PRIVATE_MAIL_HOSTS"


def connect(client: TestClient, team: Team, host: str, port: int, security: str = "plain") -> httpx.Response:
    body = {"host": host, "port": port, "security": security, "username": "sam", "password": "pw"}
    return client.post("/api/v1/mailboxes/imap", json=body, headers=team.headers("member"))


@pytest.mark.parametrize(
    ("host", "refusal"),
    [
        ("127.0.0.1", "127.0.0.1 is a loopback address"),
        ("::1", "::1 is a loopback address"),
        ("localhost", "localhost resolves to 127.0.0.1, which is a loopback address"),
        ("10.20.30.40", "10.20.30.40 is a private address"),
        ("169.254.169.254", "169.254.169.254 is a link-local address"),
        ("::ffff:192.168.0.1", "::ffff:192.168.0.1 is a private address"),
    ],
)
def test_private_targets_are_refused_unless_the_operator_allows_them(
    client: TestClient, team: Team, settings: Settings, host: str, refusal: str
) -> None:
    settings.allow_private_mail_hosts = False
    with scripted_server(b"* OK IMAP4rev1 ready\r\n", imap_answers()) as server:
        response = connect(client, team, host, server.port, security="tls")
        assert server.accepted == 0
    assert response.status_code == 422
    assert response.json()["detail"] == f"could not sign in to {host}: {refusal}; {HINT}"


def test_what_the_server_sent_is_never_in_the_api_error(client: TestClient, team: Team) -> None:
    with scripted_server(b"-ERR " + SECRET + b" redis_version:7.2.4\r\n", imap_answers()) as server:
        banner = connect(client, team, "127.0.0.1", server.port)
    assert banner.status_code == 422
    assert banner.json()["detail"] == (
        f"could not sign in to 127.0.0.1: cannot connect to 127.0.0.1:{server.port}: "
        "it did not answer as an IMAP server"
    )
    login = imap_answers(login=b"NO [AUTHENTICATIONFAILED] " + SECRET)
    with scripted_server(b"* OK " + SECRET + b"\r\n", login) as server:
        refused = connect(client, team, "127.0.0.1", server.port)
    assert refused.status_code == 422
    assert refused.json()["detail"] == "could not sign in to 127.0.0.1: 127.0.0.1 refused the login for sam"
    assert SECRET.decode() not in banner.text + refused.text


@pytest.mark.browser
def test_what_the_server_sent_is_never_on_the_email_tab(page: Page, live_server: str, team: Team) -> None:
    log_in(page, live_server, "admin@team-a.example", "admin-password-123")
    with scripted_server(b"SSH-2.0-OpenSSH_9.6 " + SECRET + b"\r\n", imap_answers()) as server:
        for port in ("70000", str(server.port)):
            page.goto(f"{live_server}/profile/email")
            form = page.locator("#connect-imap")
            form.get_by_label("IMAP server").fill("127.0.0.1")
            form.get_by_label("Port", exact=True).fill(port)
            form.locator("select[name=security]").select_option("plain")
            form.get_by_label("Username").fill("sam")
            form.get_by_label("Password").fill("pw")
            form.get_by_role("button", name="Connect mailbox").click()
            if port == "70000":  # the page checks the form with the API's model, and says what it says
                expect(page.locator("#error")).to_have_text(
                    "port: Input should be less than or equal to 65535"
                )
        expect(page.locator("#error")).to_have_text(
            f"could not sign in to 127.0.0.1: cannot connect to 127.0.0.1:{server.port}: "
            "it did not answer as an IMAP server"
        )
    assert SECRET.decode() not in page.content()


def test_connects_to_a_silent_server_leave_other_requests_served(
    app: FastAPI, live_server: str, team: Team
) -> None:
    """45 connects to a port that accepts and never answers once stalled every request for 27 s."""
    # What is measured here is the request threads, not the per-user limit on connect attempts.
    app.state.settings = app.state.settings.model_copy(update={"mailbox_connects_per_user": 45})
    with scripted_server(None) as silent:
        body = {
            "host": "127.0.0.1",
            "port": silent.port,
            "security": "plain",
            "username": "u",
            "password": "p",
        }
        answers: list[int] = []

        def connect_silently() -> None:
            response = httpx.post(
                f"{live_server}/api/v1/mailboxes/imap", json=body, headers=team.headers("member"), timeout=120
            )
            answers.append(response.status_code)

        connects = [threading.Thread(target=connect_silently) for _ in range(45)]
        for thread in connects:
            thread.start()
        assert silent.wait_for_connections(LOGIN_CHECK_THREADS, timeout=60)
        # A generous budget: when the connects hold the request threads, these wait for their timeout.
        assert httpx.get(f"{live_server}/health", timeout=10).status_code == 200
        assert httpx.get(f"{live_server}/login", timeout=10).status_code == 200
        assert silent.accepted == LOGIN_CHECK_THREADS  # the others wait their turn
        silent.close()  # the waiting checks read the end of their connections, the rest are refused
        for thread in connects:
            thread.join(timeout=120)
    assert answers == [422] * 45


def test_a_login_check_past_its_deadline_lets_go_of_its_connection_at_once(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(mailbox_connect, "LOGIN_CHECK_TIMEOUT_SECONDS", 0.2)
    with scripted_server(None) as silent:
        connection = {"host": "127.0.0.1", "port": silent.port, "security": "plain", "username": "sam"}
        # On a thread of its own: the browser tests leave an event loop running on this one.
        with ThreadPoolExecutor(1) as runner, pytest.raises(InvalidInputError, match=r"within 0\.2 seconds"):
            runner.submit(asyncio.run, check_imap_login(connection, "pw", settings)).result()
        # Shut down by the check rather than by its socket's 30 s timeout: the thread is free again.
        assert silent.wait_for_hangups(1, timeout=10)
