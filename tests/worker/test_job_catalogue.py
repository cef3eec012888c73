"""Every job is named in `touchline.jobs` with the module that declares it: processes that run jobs
declare them all, and processes that only send a few declare each as they first send it."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import touchline
from touchline.jobs import DECLARED_IN, declare_all
from touchline.worker.queue import _REGISTRY

SOURCE = Path(touchline.__file__).parent
DECLARATION = re.compile(r"^@job\(", re.MULTILINE)


def test_the_catalogue_names_every_job_with_the_module_that_declares_it() -> None:
    declare_all()
    declared = {
        name: spec.function.__module__
        for name, spec in _REGISTRY.items()
        if spec.function.__module__.startswith("touchline.")  # not the tests' own jobs
    }
    assert declared == dict(DECLARED_IN)


def test_every_module_that_declares_a_job_is_in_the_catalogue() -> None:
    declaring = {
        ".".join(path.relative_to(SOURCE.parent).with_suffix("").parts)
        for path in SOURCE.rglob("*.py")
        if DECLARATION.search(path.read_text(encoding="utf-8"))
    }
    assert declaring == set(DECLARED_IN.values())


# A process that only sends jobs, as `touchline sync` is: nothing of engagement is loaded until its
# job is sent, and an unknown name is still refused.
SENDER = """
import json, sys
from touchline.config import Settings
from touchline.jobs import declare
from touchline.worker import configure_queue

queue = configure_queue(Settings(), declare=declare)
before = "touchline.outbound.engagement.tasks" in sys.modules
queue.send("engagement.refresh", outbound_ids=[])
after = "touchline.outbound.engagement.tasks" in sys.modules
try:
    queue.send("engagement.no_such_job")
    refused = False
except KeyError:
    refused = True
pending = [task.name for huey in queue.lanes.values() for task in huey.pending()]
queue.close()
print(json.dumps({"before": before, "after": after, "refused": refused, "pending": pending}))
"""


def test_a_sending_process_declares_a_job_as_it_first_sends_it(tmp_path: Path) -> None:
    from cryptography.fernet import Fernet

    env = {
        "TOUCHLINE_DATA_DIR": str(tmp_path),
        "TOUCHLINE_SECRET_KEY": Fernet.generate_key().decode(),
        "PATH": "/usr/bin:/bin",
    }
    ran = subprocess.run(
        [sys.executable, "-c", SENDER], env=env, capture_output=True, text=True, timeout=120, check=True
    )
    outcome = json.loads(ran.stdout.splitlines()[-1])
    assert outcome == {"before": False, "after": True, "refused": True, "pending": ["engagement.refresh"]}
