"""The full simulated day of tests/sync/provider_day.py: 20,000 messages in the window, per provider.

    .venv/bin/python -m bench.providers.day [--messages 20000] [--provider gmail|graph|both]

Runs against the local fakes of Gmail and Microsoft Graph on a test clock (no waiting on throttling)
and a fresh SQLite database, and prints one JSON object per provider: messages in the window, stored,
duplicates, folders left stuck, syncs, 429s answered, quota units spent (Gmail's units as its usage
limits page counts them; for Graph, requests) and units per stored message.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from dataclasses import asdict
from pathlib import Path

from cryptography.fernet import Fernet
from tests.browser import serve
from tests.fakes.gmail import FakeGmail
from tests.fakes.graph import FakeGraph
from tests.sync.conftest import CUSTOMER, INTERNAL
from tests.sync.oauth_world import OAuthWorld, oauth_settings
from tests.sync.provider_day import run_day

from touchline.config import Settings
from touchline.db import make_engine, make_sessionmaker, session_scope
from touchline.jobs import declare
from touchline.kit.crypto import SecretBox
from touchline.mailboxes.oauth_connect import GOOGLE, MICROSOFT
from touchline.schema import upgrade
from touchline.worker import configure_queue
from touchline.workspace import service
from touchline.workspace.permissions import Actor


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--provider", choices=("gmail", "graph", "both"), default="both")
    arguments = parser.parse_args()
    kinds = {"gmail": [GOOGLE], "graph": [MICROSOFT], "both": [GOOGLE, MICROSOFT]}[arguments.provider]
    for kind in kinds:
        with tempfile.TemporaryDirectory() as directory:
            result = _one_day(Path(directory), kind, arguments.messages)
        print(json.dumps({"provider": kind.mailbox_provider, **result}), flush=True)


def _one_day(directory: Path, kind: object, messages: int) -> dict[str, object]:
    gmail, graph = FakeGmail(), FakeGraph()
    key = Fernet.generate_key().decode()
    url = f"sqlite:///{directory / 'touchline.db'}"
    upgrade(url)
    engine = make_engine(url)
    sessions = make_sessionmaker(engine)
    box = SecretBox([key])
    with serve(gmail.app, lifespan="off") as gmail_url, serve(graph.app, lifespan="off") as graph_url:
        settings = oauth_settings(
            Settings(
                data_dir=directory / "data",
                database_url=url,
                secret_key=key,
                in_process_worker=False,
                inbound_domain="log.bench.example",
                allow_private_mail_hosts=True,
            ),
            gmail_url,
            graph_url,
        )
        queue = configure_queue(settings, declare=declare)  # connecting a mailbox enqueues jobs
        try:
            with session_scope(sessions) as session:
                workspace = service.create_workspace(
                    session, box, "Day Co", internal_domains=[INTERNAL], inbound_domain="log.bench.example"
                )
                company = service.create_company(
                    session, Actor.operator(workspace.id), "Customer", domains=[CUSTOMER]
                )
                ids = workspace.id, company.id
            world = OAuthWorld(settings, sessions, box, ids[0], ids[1], gmail, graph)
            result = run_day(world, kind, messages)  # type: ignore[arg-type]
        finally:
            queue.close()
            engine.dispose()
    return {**asdict(result), "units_per_stored_message": round(result.units_per_stored_message, 2)}


if __name__ == "__main__":
    main()
