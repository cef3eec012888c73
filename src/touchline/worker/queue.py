"""Job registry, queue configuration, enqueue-after-commit and the in-process consumer.

Jobs run in two lanes, each a Huey queue of its own with its own threads: `long` for mailbox syncs,
which may run for minutes, and `quick` for everything else (logging the log address's mail, pings,
sends, the schedules), so quick jobs never wait behind long ones. Every job logs one line when it
starts and one when it ends (with its counts and duration) or fails (with the reason), as
`key=value` pairs an operator can grep.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from sqlalchemy.orm import Session, sessionmaker

from touchline.config import Settings
from touchline.db import make_engine, make_sessionmaker
from touchline.kit.files import create_private_file
from touchline.worker import outbox

if TYPE_CHECKING:
    from huey import Huey
    from huey.consumer import Consumer

log = logging.getLogger(__name__)
jobs_log = logging.getLogger("touchline.jobs")

JobFunction = Callable[..., Any]
Declare = Callable[[str], bool]
"""Declares the job of that name (imports the module that holds it); False when there is none."""
Lane = Literal["quick", "long"]
LANES: tuple[Lane, ...] = ("quick", "long")

stopping = threading.Event()
"""Set when this process was asked to stop: long jobs hand their work back at their next checkpoint."""


@dataclass(frozen=True)
class JobContext:
    """What every job receives first: the settings, a session factory of its own process, its queue."""

    settings: Settings
    sessions: sessionmaker[Session]
    queue: Queue


@dataclass(frozen=True)
class _JobSpec:
    name: str
    function: JobFunction
    retries: int
    retry_delay: int
    every_minutes: int | None = None
    at_start: bool = False
    lane: Lane = "quick"


_REGISTRY: dict[str, _JobSpec] = {}


def job(
    name: str,
    *,
    retries: int = 3,
    retry_delay: int = 10,
    every_minutes: int | None = None,
    at_start: bool = False,
    lane: Lane = "quick",
) -> Callable[[JobFunction], JobFunction]:
    """Declare a job. The function takes a JobContext first, then JSON-serialisable keyword arguments.

    With `every_minutes`, the consumers' scheduler also runs it on that period (without arguments);
    with `at_start` too, a worker that runs the schedules runs it once before it takes any job.
    `lane="long"` runs it beside the other long jobs, never in the threads quick jobs wait for. A job
    may return a mapping of counts; they are logged with its end.
    """
    if lane == "long" and every_minutes is not None:
        raise ValueError("periodic jobs run in the quick lane, which holds the schedules")

    def register(function: JobFunction) -> JobFunction:
        if name in _REGISTRY and _REGISTRY[name].function is not function:
            raise ValueError(f"job {name!r} is declared twice")
        _REGISTRY[name] = _JobSpec(name, function, retries, retry_delay, every_minutes, at_start, lane)
        return function

    return register


def _fields(values: Mapping[str, object]) -> str:
    # A list argument (a batch's ids) is logged by its length: a line per job stays one short line.
    return " ".join(
        f"{key}_count={len(value)}" if isinstance(value, list | tuple) else f"{key}={_value(value)}"
        for key, value in values.items()
    )


def _value(value: object) -> str:
    text = str(value)
    if not text or any(c in text for c in ' "=\n'):
        return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", " ") + '"'
    return text


def run_logged(spec_name: str, function: Callable[[], Any], arguments: Mapping[str, object]) -> Any:
    """Run a job between its start and end lines; an exception is logged with its reason and raised."""
    jobs_log.info("%s", _fields({"event": "job_start", "job": spec_name, **arguments}))
    started = time.monotonic()
    try:
        result = function()
    except Exception as error:
        jobs_log.error(
            "%s",
            _fields(
                {
                    "event": "job_error",
                    "job": spec_name,
                    **arguments,
                    "duration_s": f"{time.monotonic() - started:.3f}",
                    "reason": f"{type(error).__name__}: {error}",
                }
            ),
        )
        raise
    counts = dict(result) if isinstance(result, Mapping) else {}
    jobs_log.info(
        "%s",
        _fields(
            {
                "event": "job_end",
                "job": spec_name,
                **arguments,
                **counts,
                "duration_s": f"{time.monotonic() - started:.3f}",
            }
        ),
    )
    return result


class Queue:
    """This process's Huey queues (one per lane) and the declared jobs bound to them.

    Huey itself is loaded and the queues made when a job is first sent or a consumer starts: a
    command that configures its queue and then has nothing to send (a sync that finds no new mail)
    never loads it.
    """

    def __init__(
        self, settings: Settings, *, immediate: bool = False, declare: Declare | None = None
    ) -> None:
        self.settings = settings
        self._declare = declare
        self._immediate = immediate
        if not settings.uses_redis_queue:
            settings.ensure_data_dir()
            create_private_file(settings.queue_file)
        self._lanes: dict[Lane, Huey] | None = None
        self._lanes_lock = threading.Lock()
        self._engine = make_engine(settings.resolved_database_url)
        self.context = JobContext(settings, make_sessionmaker(self._engine), self)
        self._tasks: dict[str, Any] = {}
        self._consumers: list[Consumer] = []

    @property
    def lanes(self) -> dict[Lane, Huey]:
        with self._lanes_lock:
            if self._lanes is None:
                self._lanes = {
                    lane: self._huey("touchline" if lane == "quick" else f"touchline-{lane}")
                    for lane in LANES
                }
                for spec in _REGISTRY.values():
                    self._bind(spec, self._lanes)
            return self._lanes

    @property
    def huey(self) -> Huey:
        """The quick lane's queue, which also holds the schedules and the workers' replies."""
        return self.lanes["quick"]

    def _huey(self, name: str) -> Huey:
        from huey import RedisHuey, SqliteHuey

        if self.settings.uses_redis_queue:
            return RedisHuey(name, url=self.settings.queue_url, immediate=self._immediate)
        # One SQLite file holds both lanes; Huey keeps each queue's rows apart by its name.
        return SqliteHuey(
            name,
            filename=str(self.settings.queue_file),
            immediate=self._immediate,
            immediate_use_memory=False,
        )

    def _bind(self, spec: _JobSpec, lanes: dict[Lane, Huey]) -> None:
        from huey import crontab

        context = self.context

        def run(**kwargs: Any) -> Any:
            return run_logged(spec.name, lambda: spec.function(context, **kwargs), kwargs)

        run.__name__ = spec.name
        huey = lanes[spec.lane]
        if spec.every_minutes is not None:
            schedule = crontab(minute=f"*/{spec.every_minutes}")
            self._tasks[spec.name] = huey.periodic_task(schedule, retries=spec.retries, name=spec.name)(run)
            return
        self._tasks[spec.name] = huey.task(
            retries=spec.retries, retry_delay=spec.retry_delay, name=spec.name
        )(run)

    def knows(self, name: str) -> bool:
        """Whether a job of that name is declared, declaring it first when this queue was given how."""
        if name not in _REGISTRY and self._declare is not None:
            self._declare(name)
        return name in _REGISTRY

    def task(self, name: str) -> Any:
        if name not in self._tasks:
            if not self.knows(name):
                raise KeyError(f"no job named {name!r}; declare it with @job")
            self._bind_declared()
        return self._tasks[name]

    def send(self, name: str, **kwargs: Any) -> Any:
        return self.task(name)(**kwargs)

    def pending_count(self) -> int:
        return sum(int(huey.pending_count()) for huey in self.lanes.values())

    def ping(self) -> None:
        """Raises when the queue's storage cannot be reached."""
        self.huey.pending_count()

    def _bind_declared(self) -> None:
        """Bind the jobs declared since this queue was made: before a consumer takes any job, and
        when a job declared as it is sent is sent for the first time."""
        lanes = self.lanes
        with self._lanes_lock:
            for spec in _REGISTRY.values():
                if spec.name not in self._tasks:
                    self._bind(spec, lanes)

    def start_in_process(self, workers: int, *, periodic: bool = True) -> None:
        """Consumers for both lanes, `workers` threads each, beside whatever this process serves."""
        from touchline.worker.consumers import InProcessConsumer

        self._bind_declared()
        if periodic:
            self.run_start_jobs()
        for lane, huey in self.lanes.items():
            consumer = InProcessConsumer(
                huey, workers=workers, worker_type="thread", periodic=periodic and lane == "quick"
            )
            consumer.start()
            self._consumers.append(consumer)

    def stop_in_process(self) -> None:
        stopping.set()
        try:
            for consumer in self._consumers:
                consumer.stop(graceful=True)
        finally:
            self._consumers = []
            stopping.clear()

    def run_start_jobs(self) -> None:
        """The `at_start` jobs, once, in this process; one that fails is logged and the rest run."""
        for spec in _REGISTRY.values():
            if spec.at_start:
                try:
                    spec.function(self.context)
                except Exception:
                    log.exception("the start-up run of %s failed", spec.name)

    def run_worker(self, workers: int) -> None:
        """A separate worker process: blocks until SIGINT or SIGTERM, then stops gracefully.

        The long lane's consumer runs this thread and owns the signal handlers; the quick lane's runs
        beside it and is stopped, gracefully too, once the long lane has handed back its work."""
        from touchline.worker.consumers import InProcessConsumer, WorkerConsumer

        self._bind_declared()
        self.run_start_jobs()
        quick = InProcessConsumer(self.lanes["quick"], workers=workers, worker_type="thread", periodic=True)
        quick.start()
        try:
            WorkerConsumer(
                self.lanes["long"],
                workers=workers,
                worker_type="thread",
                periodic=False,
                graceful_signal="TERM",
            ).run()
        finally:
            stopping.set()
            quick.stop(graceful=True)

    def ping_worker(self, timeout: float) -> float | None:
        """Round trip through a worker in seconds, or None when no worker answered within `timeout`."""
        import secrets
        import time

        from touchline.worker.tasks import PING_REPLY_PREFIX

        reply_key = secrets.token_hex(8)
        started = time.monotonic()
        self.send("worker.ping", reply_key=reply_key)
        while time.monotonic() - started < timeout:
            if self.huey.get(PING_REPLY_PREFIX + reply_key) is not None:
                return time.monotonic() - started
            time.sleep(0.05)
        return None

    def close(self) -> None:
        self.stop_in_process()
        self._engine.dispose()


_CURRENT: Queue | None = None
_LOCK = threading.Lock()


def configure_queue(settings: Settings, *, immediate: bool = False, declare: Declare | None = None) -> Queue:
    """This process's queue. With `declare` (`touchline.jobs.declare`), a job not yet declared is
    declared as it is first sent, so a process need not import every feature to send any job."""
    global _CURRENT  # noqa: PLW0603 -- one queue per process, like the settings it is built from
    with _LOCK:
        if _CURRENT is not None:
            _CURRENT.close()
        _CURRENT = Queue(settings, immediate=immediate, declare=declare)
        return _CURRENT


def current_queue() -> Queue:
    if _CURRENT is None:
        raise RuntimeError("the job queue is not configured; call configure_queue(settings) at start-up")
    return _CURRENT


def enqueue(session: Session, name: str, **kwargs: Any) -> None:
    """Send a job once `session` commits; a rolled-back transaction sends nothing.

    The job is recorded in `session`'s own transaction (the outbox, `touchline.worker.outbox`), so a
    committed request never loses its job, even when the queue cannot be reached just then.
    """
    queue = current_queue()
    if not queue.knows(name):
        raise KeyError(f"no job named {name!r}; declare it with @job")
    outbox.record(session, queue, name, kwargs)
