"""Huey's consumers as touchline runs them: beside a server, or as a worker process's main loop."""

from __future__ import annotations

from huey.consumer import Consumer

from touchline.worker.queue import stopping


class InProcessConsumer(Consumer):  # type: ignore[misc]
    """A consumer that runs beside the web server: the server's process owns the signal handlers."""

    def _set_signal_handlers(self) -> None:
        return None


class WorkerConsumer(Consumer):  # type: ignore[misc]
    """A worker process's main consumer. SIGTERM (what systemd and Docker send on stop) stops it
    gracefully, like SIGINT: long jobs are told to hand back their work, and running jobs finish."""

    def _handle_signal(self, signum: int, frame: object) -> None:
        super()._handle_signal(signum, frame)
        if self._graceful:
            stopping.set()
