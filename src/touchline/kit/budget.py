"""A budget of units per minute that a client spends before each request (an API's per-user quota).

The budget counts what was spent within the last sixty seconds, as the quota does: a request whose
cost would take that over the limit is given the moment at which enough older spending has left the
window, and the caller waits until then. Reservations are handed out in order, so callers on several
threads queue behind each other instead of waking up together. Safe to share between threads.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable

WINDOW_SECONDS = 60.0
# Waits end this much after the spending they wait for has left the window: requests reach the
# server a little after the moment they were given, and the server must not see the two at once.
_MARGIN_SECONDS = 1.0


class UnitBudget:
    def __init__(self, units_per_minute: float, clock: Callable[[], float]) -> None:
        if units_per_minute <= 0:
            raise ValueError("a budget needs a positive number of units per minute")
        self.units_per_minute = units_per_minute
        self._clock = clock
        self._spent: deque[tuple[float, float]] = deque()  # (moment, units), in moment order
        self._lock = threading.Lock()
        self.spent = 0.0

    def reserve(self, units: float) -> float:
        """Take ``units``; returns how many seconds the caller must wait before spending them."""
        units = min(units, self.units_per_minute)  # one request dearer than a minute's worth still runs
        with self._lock:
            now = self._clock()
            while self._spent and self._spent[0][0] <= now - WINDOW_SECONDS:
                self._spent.popleft()
            moment = max(now, self._spent[-1][0]) if self._spent else now
            in_window = [entry for entry in self._spent if entry[0] > moment - WINDOW_SECONDS]
            total = sum(spent for _, spent in in_window)
            for started, spent in in_window:
                if total + units <= self.units_per_minute:
                    break
                moment = started + WINDOW_SECONDS + _MARGIN_SECONDS
                total -= spent
            self._spent.append((moment, units))
            self.spent += units
            return moment - now
