"""Job registry, queue configuration, enqueue-after-commit and the in-process consumer."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from huey import Huey, RedisHuey, SqliteHuey, crontab
from huey.consumer import Consumer
from sqlalchemy.orm import Session, sessionmaker

from touchline.config import Settings
from touchline.db import make_engine, make_sessionmaker
from touchline.kit.files import create_private_file
from touchline.worker import outbox

log = logging.getLogger(__name__)

JobFunction = Callable[..., Any]


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


_REGISTRY: dict[str, _JobSpec] = {}


def job(
    name: str,
    *,
    retries: int = 3,
    retry_delay: int = 10,
    every_minutes: int | None = None,
    at_start: bool = False,
) -> Callable[[JobFunction], JobFunction]:
    """Declare a job. The function takes a JobContext first, then JSON-serialisable keyword arguments.

    With `every_minutes`, the consumers' scheduler also runs it on that period (without arguments);
    with `at_start` too, a worker that runs the schedules runs it once before it takes any job.
    """

    def register(function: JobFunction) -> JobFunction:
        if name in _REGISTRY and _REGISTRY[name].function is not function:
            raise ValueError(f"job {name!r} is declared twice")
        _REGISTRY[name] = _JobSpec(name, function, retries, retry_delay, every_minutes, at_start)
        return function

    return register


class _InProcessConsumer(Consumer):  # type: ignore[misc]
    """A consumer that runs beside the web server: the server's process owns the signal handlers."""

    def _set_signal_handlers(self) -> None:
        return None


class Queue:
    """A configured Huey instance with every declared job bound to it."""

    def __init__(self, settings: Settings, *, immediate: bool = False) -> None:
        self.settings = settings
        if settings.uses_redis_queue:
            self.huey: Huey = RedisHuey("touchline", url=settings.queue_url, immediate=immediate)
        else:
            settings.ensure_data_dir()
            create_private_file(settings.queue_file)
            self.huey = SqliteHuey(
                "touchline",
                filename=str(settings.queue_file),
                immediate=immediate,
                immediate_use_memory=False,
            )
        self._engine = make_engine(settings.resolved_database_url)
        self.context = JobContext(settings, make_sessionmaker(self._engine), self)
        self._tasks: dict[str, Any] = {}
        self._consumer: _InProcessConsumer | None = None
        for spec in _REGISTRY.values():
            self._bind(spec)

    def _bind(self, spec: _JobSpec) -> None:
        context = self.context

        def run(**kwargs: Any) -> Any:
            return spec.function(context, **kwargs)

        run.__name__ = spec.name
        if spec.every_minutes is not None:
            schedule = crontab(minute=f"*/{spec.every_minutes}")
            self._tasks[spec.name] = self.huey.periodic_task(schedule, retries=spec.retries, name=spec.name)(
                run
            )
            return
        self._tasks[spec.name] = self.huey.task(
            retries=spec.retries, retry_delay=spec.retry_delay, name=spec.name
        )(run)

    def task(self, name: str) -> Any:
        if name not in self._tasks:
            spec = _REGISTRY.get(name)
            if spec is None:
                raise KeyError(f"no job named {name!r}; declare it with @job")
            self._bind(spec)
        return self._tasks[name]

    def send(self, name: str, **kwargs: Any) -> Any:
        return self.task(name)(**kwargs)

    def pending_count(self) -> int:
        return int(self.huey.pending_count())

    def ping(self) -> None:
        """Raises when the queue's storage cannot be reached."""
        self.huey.pending_count()

    def start_in_process(self, workers: int, *, periodic: bool = True) -> None:
        if periodic:
            self.run_start_jobs()
        self._consumer = _InProcessConsumer(
            self.huey, workers=workers, worker_type="thread", periodic=periodic
        )
        self._consumer.start()

    def stop_in_process(self) -> None:
        if self._consumer is not None:
            self._consumer.stop(graceful=True)
            self._consumer = None

    def run_start_jobs(self) -> None:
        """The `at_start` jobs, once, in this process; one that fails is logged and the rest run."""
        for spec in _REGISTRY.values():
            if spec.at_start:
                try:
                    spec.function(self.context)
                except Exception:
                    log.exception("the start-up run of %s failed", spec.name)

    def run_worker(self, workers: int) -> None:
        """A separate worker process: blocks until interrupted."""
        self.run_start_jobs()
        Consumer(self.huey, workers=workers, worker_type="thread", periodic=True).run()

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


def configure_queue(settings: Settings, *, immediate: bool = False) -> Queue:
    global _CURRENT  # noqa: PLW0603 -- one queue per process, like the settings it is built from
    with _LOCK:
        if _CURRENT is not None:
            _CURRENT.close()
        _CURRENT = Queue(settings, immediate=immediate)
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
    if name not in _REGISTRY:
        raise KeyError(f"no job named {name!r}; declare it with @job")
    outbox.record(session, current_queue(), name, kwargs)
