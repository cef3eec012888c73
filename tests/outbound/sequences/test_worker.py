"""The tick in a real worker process: a due step is queued by `outbound.sequence_tick` and delivered
by the same worker to the relay sink; after the worker is killed, a tick finds nothing left to send."""

from __future__ import annotations

import signal
import subprocess
import sys
from datetime import UTC, datetime, time
from pathlib import Path

from tests.conftest import touchline_environment
from tests.outbound.sequences.conftest import Playbook
from touchline.outbound.sequences.tasks import SEQUENCE_TICK
from touchline.worker import Queue


def _worker(playbook: Playbook, log: Path) -> subprocess.Popen[bytes]:
    env = touchline_environment(playbook.settings) | {
        "TOUCHLINE_RELAY_SMTP_HOST": playbook.settings.relay_smtp_host,
        "TOUCHLINE_RELAY_SMTP_PORT": str(playbook.settings.relay_smtp_port),
        "TOUCHLINE_RELAY_SMTP_SECURITY": playbook.settings.relay_smtp_security,
        "TOUCHLINE_BASE_URL": playbook.settings.base_url,
    }
    return subprocess.Popen(
        [sys.executable, "-m", "touchline.cli", "worker", "--threads", "1"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=log.open("w"),
    )


def test_a_worker_process_runs_the_tick_and_delivers_the_step(playbook: Playbook, tmp_path: Path) -> None:
    # The worker reads the real clock: a window open all day, every day.
    playbook.clock.now = datetime.now(UTC)
    sequence = playbook.create(
        [("Welcome", 0, ""), ("Nudge", 30, "")],
        zone="UTC",
        business_days=False,
        window=(time(0), time(23, 59, 59)),
    )
    [enrolment] = playbook.enrol(sequence, playbook.jane)
    log = tmp_path / "worker.log"
    worker = _worker(playbook, log)
    queue = Queue(playbook.settings)
    try:
        queue.send(SEQUENCE_TICK)
        assert playbook.relay.arrived.wait(timeout=60), log.read_text()
        worker.send_signal(signal.SIGKILL)
        worker.wait(timeout=15)
        [received] = playbook.relay.received
        assert received.message["Subject"] == "Welcome for Acme"
        assert received.message["List-Unsubscribe"] is not None
        assert playbook.runs(enrolment) == [(1, "queued")]
        assert playbook.enrolment(enrolment).current_step == 2
        # Step 2 is a month away: a restarted worker's tick finds nothing due.
        assert playbook.tick() == []
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait(timeout=15)
        queue.close()
