"""The tracking endpoints on both databases: pixel, redirects, refusals, labels, durability; and the
tracked email as it was sent."""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import sqlite3
import subprocess
import sys
import uuid
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Connection

from tests.conftest import touchline_environment
from tests.outbound.track.conftest import TRACKING_BASE, RecordingJobs, Tracked
from tests.services import free_port
from touchline.db import session_scope
from touchline.models import OutboundEmail, User
from touchline.models.base import time_ordered_uuids, utcnow
from touchline.outbound.engagement import REFRESH_JOB
from touchline.outbound.send import service as outbox
from touchline.outbound.send import tasks
from touchline.outbound.templates import service as templates
from touchline.outbound.track.app import PIXEL, EventWriter, Hit
from touchline.workspace import service as workspace

Client = tuple[TestClient, RecordingJobs]
BROWSER = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) "
    "AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0 Safari/537.36"
)
GOOGLE_PROXY = "Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko Firefox/11.0 (via ggpht.com GoogleImageProxy)"


def _path(url: str) -> str:
    assert url.startswith(TRACKING_BASE)
    return url.removeprefix(TRACKING_BASE)


def test_a_tracked_email_leaves_with_its_links_rewritten_a_pixel_and_a_honeypot(tracked: Tracked) -> None:
    outbound_id = tracked.send()
    html = tracked.received().part("text/html")
    links = tracked.links(outbound_id)
    [click] = links["click"]
    [pixel] = links["open"]
    [honeypot] = links["honeypot"]
    assert click.url == "https://acme.example/renewal?plan=pro"
    assert f'href="{TRACKING_BASE}/t/c/{click.token}"' in html
    assert f'src="{TRACKING_BASE}/t/o/{pixel.token}.gif"' in html
    hidden = 'style="display:none" aria-hidden="true" tabindex="-1"'
    assert f'<a href="{TRACKING_BASE}/t/c/{honeypot.token}" {hidden}></a>' in html
    for kept in (
        'href="mailto:help@team-a.example"',
        'href="#terms"',
        'href="https://acme.example/private" data-touchline-track="off"',
    ):
        assert kept in html
    assert "acme.example/renewal" not in html
    # No address or other personal data in any tracking URL: the token is all it holds.
    found = re.findall(r'"(https://t\.touchline\.test/[^"]*)"', html)
    assert len(found) == 3
    assert all(re.fullmatch(r"https://t\.touchline\.test/t/[oc]/[\w-]{22}(\.gif)?", url) for url in found)
    text = tracked.received().part("text/plain")
    assert "https://acme.example/renewal?plan=pro" in text
    assert "/t/c/" not in text
    assert tracked.received().login is None  # it went through the relay


def test_an_untracked_email_has_no_pixel_no_honeypot_and_its_links_as_written(tracked: Tracked) -> None:
    outbound_id = tracked.send(opens=False, clicks=False)
    html = tracked.received().part("text/html")
    assert tracked.links(outbound_id) == {"open": [], "click": [], "honeypot": []}
    assert "/t/" not in html
    assert "<img" not in html
    assert 'href="https://acme.example/renewal?plan=pro"' in html


def test_the_pixel_answers_a_gif_that_is_never_cached_and_stores_the_open(
    tracked: Tracked, tracking_client: Client
) -> None:
    client, jobs = tracking_client
    outbound_id = tracked.send()
    [pixel] = tracked.links(outbound_id)["open"]
    answer = client.get(f"/t/o/{pixel.token}.gif", headers={"User-Agent": BROWSER})
    assert answer.status_code == 200
    assert answer.headers["content-type"] == "image/gif"
    assert answer.headers["cache-control"] == "no-store"
    assert answer.content == PIXEL
    [event] = tracked.events()
    assert (event.kind, event.link_id, event.outbound_email_id, event.method) == (
        "open",
        pixel.id,
        outbound_id,
        "GET",
    )
    assert (event.user_agent, event.machine_reason) == (BROWSER, None)
    assert jobs.sent == [(REFRESH_JOB, {"outbound_ids": [str(outbound_id)]})]


def test_a_click_redirects_to_exactly_the_recorded_url_with_utm_merged(
    tracked: Tracked, tracking_client: Client
) -> None:
    client, _ = tracking_client
    outbound_id = _send_with_utm(tracked)
    [mine, plain] = tracked.links(outbound_id)["click"]
    # The template's values, the send's own replacing them, merge fields filled in, the link's own kept.
    assert mine.url == "https://acme.example/a?utm_source=site&utm_medium=email&utm_campaign=for+Jane"
    assert plain.url == "https://acme.example/b?utm_source=touchline&utm_medium=email&utm_campaign=for+Jane"
    for path in (f"/t/c/{mine.token}", f"/t/c/{mine.token}?url=https://evil.example"):
        answer = client.get(path, follow_redirects=False)
        assert answer.status_code == 302
        assert answer.headers["location"] == mine.url
    assert [event.kind for event in tracked.events()] == ["click", "click"]


def _send_with_utm(tracked: Tracked) -> uuid.UUID:
    html = '<a href="https://acme.example/a?utm_source=site">a</a> <a href="https://acme.example/b">b</a>'
    with session_scope(tracked.sessions) as session:
        admin = session.get(User, tracked.team.admin_id)
        assert admin is not None
        actor = workspace.actor_for(admin)
        utm = {"utm_source": "touchline", "utm_medium": "web", "utm_campaign": "for {{ enduser.first_name }}"}
        templates.create_template(
            session, actor, "utm", templates.TemplateText("Renewal", html, None, True, True, utm)
        )
        to = [outbox.Recipient("jane@acme.example")]
        draft = outbox.Draft(
            sender="admin@team-a.example", to=to, template="utm", utm={"utm_medium": "email"}
        )
        row = outbox.send_email(session, actor, draft, settings=tracked.settings, now=tracked.clock.now)
        assert row.utm == {"utm_source": "touchline", "utm_medium": "email", "utm_campaign": "for Jane"}
        outbound_id = row.id
    delivered = tasks.deliver(
        tracked.sessions, tracked.box, tracked.settings, outbound_id, clock=tracked.clock
    )
    assert delivered == "sent"
    return outbound_id


def test_forged_altered_unknown_and_wrong_kind_tokens_get_404_and_store_nothing(
    tracked: Tracked, tracking_client: Client
) -> None:
    client, jobs = tracking_client
    links = tracked.links(tracked.send())
    [click], [pixel], [honeypot] = links["click"], links["open"], links["honeypot"]
    altered = click.token[:-1] + ("A" if click.token[-1] != "A" else "B")
    refused = [
        f"/t/c/{altered}",
        f"/t/o/{pixel.token[:5]}x{pixel.token[6:]}.gif",
        "/t/c/AAAAAAAAAAAAAAAAAAAAAA",
        "/t/c/x?url=https://evil.example",
        "/t/c//evil.example",
        "/t/c/%2F%2Fevil.example",
        "/t/c/https%3A%2F%2Fevil.example",
        f"/t/c/{pixel.token}",
        f"/t/o/{click.token}.gif",
        f"/t/o/{honeypot.token}.gif",
        f"/t/c/{click.token}/https://evil.example",
        f"/t/o/{pixel.token}",
        "/t/",
    ]
    for path in refused:
        answer = client.get(path, follow_redirects=False)
        assert answer.status_code == 404, path
        assert "location" not in answer.headers
    assert client.post(f"/t/c/{click.token}").status_code == 405
    assert tracked.events() == []
    assert jobs.sent == []


def test_the_honeypot_answers_204_and_its_hit_is_stored(tracked: Tracked, tracking_client: Client) -> None:
    client, _ = tracking_client
    [honeypot] = tracked.links(tracked.send())["honeypot"]
    answer = client.get(f"/t/c/{honeypot.token}", follow_redirects=False)
    assert answer.status_code == 204
    assert "location" not in answer.headers
    [event] = tracked.events()
    assert (event.kind, event.link_id) == ("honeypot", honeypot.id)


def test_head_requests_and_scanners_are_stored_with_their_reasons(
    tracked: Tracked, tracking_client: Client
) -> None:
    client, _ = tracking_client
    links = tracked.links(tracked.send())
    [click], [pixel] = links["click"], links["open"]
    head = client.head(f"/t/o/{pixel.token}.gif", headers={"User-Agent": BROWSER})
    assert head.status_code == 200
    assert head.content == b""
    scanned = client.get(
        f"/t/c/{click.token}", headers={"User-Agent": "x" * 600 + " Mimecast"}, follow_redirects=False
    )
    assert scanned.status_code == 302
    proxied = client.get(
        f"/t/o/{pixel.token}.gif",
        headers={
            "User-Agent": (
                "Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko Firefox/11.0 (via ggpht.com GoogleImageProxy)"
            )
        },
    )
    assert proxied.status_code == 200
    events = tracked.events()
    assert [(event.method, event.machine_reason) for event in events] == [
        ("HEAD", "HEAD request"),
        ("GET", None),  # what names the scanner lies past the 500 characters that are read
        ("GET", "user agent: Google image proxy"),
    ]
    assert len(events[1].user_agent or "") == 500


def test_an_apple_relay_address_is_labelled_and_not_stored(tracked: Tracked, tracking_client: Client) -> None:
    client, _ = tracking_client
    [pixel] = tracked.links(tracked.send())["open"]
    relayed = TestClient(client.app, base_url=TRACKING_BASE, client=("172.224.224.1", 50000))
    assert relayed.get(f"/t/o/{pixel.token}.gif", headers={"User-Agent": BROWSER}).status_code == 200
    [event] = tracked.events()
    assert event.machine_reason == "Apple Private Relay address"
    assert "172.224" not in repr(
        {column: getattr(event, column) for column in ("user_agent", "detail", "machine_reason")}
    ).replace("Apple Private Relay address", "")


def test_an_event_whose_commit_fails_is_answered_5xx_and_not_stored(
    tracked: Tracked, tracking_client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    client, jobs = tracking_client
    [pixel] = tracked.links(tracked.send())["open"]
    writer = client.app.state.tracking.writer  # type: ignore[attr-defined]
    stored = writer.store

    def failing(connection: Connection, rows: list[list[object]]) -> None:
        # The batch's own row written, then one the database refuses (its id again): none is kept.
        stored(connection, [*rows, rows[0]])

    monkeypatch.setattr(writer, "store", failing)
    answer = client.get(f"/t/o/{pixel.token}.gif")
    assert answer.status_code == 503
    assert tracked.events() == []
    assert jobs.sent == []
    monkeypatch.setattr(writer, "store", stored)
    assert client.get(f"/t/o/{pixel.token}.gif").status_code == 200
    assert len(tracked.events()) == 1


def test_concurrent_hits_are_committed_together_and_each_one_stored(
    tracked: Tracked, tracking_client: Client
) -> None:
    client, jobs = tracking_client
    [pixel] = tracked.links(tracked.send())["open"]
    with ThreadPoolExecutor(8) as pool:
        codes = list(pool.map(lambda _: client.get(f"/t/o/{pixel.token}.gif").status_code, range(40)))
    assert codes == [200] * 40
    assert len(tracked.events()) == 40
    assert 1 <= len(jobs.sent) <= 40


def test_a_small_batch_waits_for_the_concurrency_seen_lately_and_a_lone_hit_only_so_long(
    tracked: Tracked, monkeypatch: pytest.MonkeyPatch
) -> None:
    [pixel] = tracked.links(tracked.send())["open"]
    writer = EventWriter(tracked.sessions, None, gather=3600.0, concurrency_window=3600.0)
    batches: list[int] = []
    store = writer.store

    def counting(connection: Connection, rows: list[list[object]]) -> None:
        batches.append(len(rows))
        store(connection, rows)

    monkeypatch.setattr(writer, "store", counting)

    def hit() -> Hit:
        return (pixel.workspace_id, pixel.outbound_email_id, "open", utcnow(), pixel.id, "GET", None, None)

    async def hits() -> None:
        await asyncio.gather(writer.record(hit()), writer.record(hit()))  # two clients at once
        first = asyncio.create_task(writer.record(hit()))
        while writer.waiting() < 1:  # the writer holds the first and waits for a second
            await asyncio.sleep(0)
        for _ in range(10):
            await asyncio.sleep(0)
        assert not first.done()
        await asyncio.gather(first, writer.record(hit()))
        writer.gather = 0.01
        await writer.record(hit())  # the second client is gone: its wait is bounded
        await writer.close()

    with ThreadPoolExecutor(1) as pool:  # a loop of its own, whatever this thread runs
        pool.submit(asyncio.run, hits()).result()
    assert batches == [2, 2, 1]
    assert len(tracked.events()) == 5


def test_the_writer_checkpoints_sqlites_log_itself_outside_its_commits(tracked: Tracked) -> None:
    [pixel] = tracked.links(tracked.send())["open"]
    writer = EventWriter(tracked.sessions, None, checkpoint_every=3600.0)
    hit: Hit = (pixel.workspace_id, pixel.outbound_email_id, "open", utcnow(), pixel.id, "GET", None, None)

    async def hits() -> None:
        for _ in range(3):
            await writer.record(hit)
        await writer.close()  # and what was committed since the last checkpoint is checkpointed

    with ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, hits()).result()
    engine = tracked.sessions.kw["bind"]
    if engine.dialect.name == "sqlite":
        # The database file alone, without its write-ahead log: only what a checkpoint copied.
        with contextlib.closing(sqlite3.connect(f"file:{engine.url.database}?immutable=1", uri=True)) as file:
            [(in_file,)] = file.execute(
                "SELECT count(*) FROM engagement_events WHERE link_id = ?", (pixel.id.hex,)
            ).fetchall()
        assert in_file == 3
    assert [event.link_id for event in tracked.events()].count(pixel.id) == 3


def test_events_get_time_ordered_ids(tracked: Tracked, tracking_client: Client) -> None:
    client, _ = tracking_client
    [pixel] = tracked.links(tracked.send())["open"]
    before = utcnow()
    for _ in range(3):
        assert client.get(f"/t/o/{pixel.token}.gif").status_code == 200
    after = utcnow()
    for event in tracked.events():
        assert event.id.version == 7
        milliseconds = event.id.int >> 80
        assert before.timestamp() * 1000 - 1 <= milliseconds <= after.timestamp() * 1000


def test_time_ordered_ids_sort_by_their_millisecond_and_are_unique() -> None:
    first = time_ordered_uuids(1000)
    assert len(set(first)) == 1000
    assert {made.version for made in first} == {7}
    assert {made.int >> 80 for made in first} == {first[0].int >> 80}  # one read of the clock
    later = time_ordered_uuids(1)[0]
    while later.int >> 80 == first[0].int >> 80:
        later = time_ordered_uuids(1)[0]
    assert all(made < later for made in first)


def test_a_burst_of_hits_sends_one_refresh_at_once_and_the_rest_together_when_due(
    tracked: Tracked, tracking_client: Client
) -> None:
    client, jobs = tracking_client
    writer = client.app.state.tracking.writer  # type: ignore[attr-defined]
    writer.refresh_every = 3600.0
    first, second = tracked.send(), tracked.send()
    [first_pixel], [second_pixel] = tracked.links(first)["open"], tracked.links(second)["open"]
    assert client.get(f"/t/o/{first_pixel.token}.gif").status_code == 200
    assert jobs.sent == [(REFRESH_JOB, {"outbound_ids": [str(first)]})]
    for pixel in (second_pixel, first_pixel, second_pixel):
        assert client.get(f"/t/o/{pixel.token}.gif").status_code == 200
    assert len(tracked.events()) == 4
    assert len(jobs.sent) == 1  # stored, and their refresh waits for the interval
    client.portal.call(writer.close)  # type: ignore[union-attr]  # as at shutdown: what is due is sent
    assert jobs.sent[1:] == [(REFRESH_JOB, {"outbound_ids": sorted([str(first), str(second)])})]


def test_touchline_tracking_serves_the_endpoints_alone(tracked: Tracked) -> None:
    [pixel] = tracked.links(tracked.send())["open"]
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "touchline.cli", "tracking", "--port", str(port)],
        env=touchline_environment(tracked.settings),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stderr is not None
        for line in process.stderr:  # uvicorn says so once it listens
            if "Uvicorn running on" in line:
                break
        answer = httpx.get(f"http://127.0.0.1:{port}/t/o/{pixel.token}.gif")
        assert answer.status_code == 200
        assert answer.content == PIXEL
        assert httpx.get(f"http://127.0.0.1:{port}/o/{pixel.token}.gif").status_code == 404
    finally:
        process.terminate()
        process.wait(timeout=30)
    assert [event.kind for event in tracked.events()] == ["open"]


def test_the_api_takes_a_sends_utm_parameters_and_refuses_unknown_ones(
    tracked: Tracked, tracking_client: Client
) -> None:
    client, _ = tracking_client
    body = {
        "from": "admin@team-a.example",
        "to": [{"address": "jane@acme.example"}],
        "subject": "Hello",
        "html": '<p><a href="https://acme.example/">x</a></p>',
        "utm": {"utm_source": "api", "utm_campaign": "{{ enduser.first_name | lower }}"},
    }
    answer = client.post("/api/v1/outbox", json=body, headers=tracked.team.headers("admin"))
    assert answer.status_code == 201, answer.text
    with session_scope(tracked.sessions) as session:
        row = session.get(OutboundEmail, uuid.UUID(answer.json()["id"]))
        assert row is not None
        assert row.utm == {"utm_source": "api", "utm_campaign": "jane"}
    body["utm"] = {"utm_term": "x"}
    refused = client.post("/api/v1/outbox", json=body, headers=tracked.team.headers("admin"))
    assert refused.status_code == 422
    body["utm"] = {"utm_source": "{{ enduser.shoe_size }}"}
    refused = client.post("/api/v1/outbox", json=body, headers=tracked.team.headers("admin"))
    assert refused.status_code == 422
    assert "UTM" in refused.json()["detail"]


def test_touchline_send_takes_utm_options(tracked: Tracked) -> None:
    html_file = tracked.settings.data_dir / "body.html"
    html_file.write_text('<p><a href="https://acme.example/">x</a></p>', encoding="utf-8")
    env = touchline_environment(tracked.settings)
    env.update(TOUCHLINE_RELAY_SMTP_HOST="127.0.0.1", TOUCHLINE_RELAY_SMTP_SECURITY="plain")
    done = subprocess.run(
        [
            *(sys.executable, "-m", "touchline.cli", "send", "--workspace", "Team A"),
            *("--as", "admin@team-a.example", "--from", "admin@team-a.example", "--to", "jane@acme.example"),
            *("--subject", "Hi", "--html-file", str(html_file), "--json"),
            *("--utm-source", "cli", "--utm-content", "{{ enduser.first_name }}"),
        ],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    with session_scope(tracked.sessions) as session:
        row = session.get(OutboundEmail, uuid.UUID(json.loads(done.stdout)["id"]))
        assert row is not None
        assert row.utm == {"utm_source": "cli", "utm_content": "Jane"}
