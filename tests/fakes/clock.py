"""A clock that moves only when someone sleeps on it: throttling and backoff run without waiting."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from touchline.mailboxes.providers.rest import Pacing


@dataclass
class PacingClock:
    now: float = 1_000_000.0
    slept: list[float] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _seen: threading.local = field(default_factory=threading.local)

    def monotonic(self) -> float:
        with self._lock:
            self._seen.now = self.now
            return self.now

    def sleep(self, seconds: float) -> None:
        """A sleeper wakes ``seconds`` after it last read the clock, as it would in real time, so
        threads sleeping at once do not add their sleeps up; time never goes back."""
        with self._lock:
            self.slept.append(seconds)
            started = getattr(self._seen, "now", self.now)
            self.now = max(self.now, started + seconds)
            self._seen.now = self.now

    def advance(self, seconds: float) -> None:
        with self._lock:
            self.now += seconds

    def pacing(self, *, max_retries: int = 6) -> Pacing:
        # The largest jitter every time, so a test can tell the waits exactly.
        return Pacing(clock=self.monotonic, sleep=self.sleep, random=lambda: 1.0, max_retries=max_retries)
