"""Run a producer a few items ahead of its consumer, on a thread of its own."""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TypeVar

Item = TypeVar("Item")


@dataclass(frozen=True)
class _Raised:
    error: BaseException


_DONE = object()


def run_ahead(
    produce: Callable[[], Iterator[Item]], *, depth: int = 1, name: str = "ahead"
) -> Iterator[Item]:
    """The items of `produce()`, made on another thread up to `depth` items ahead of the caller.

    Whatever the producer raises is raised here, in order, after the items it made before. When the
    caller stops early (it breaks, or raises while handling an item), the producer is told to stop
    and waited for before this returns, so whatever it uses is never used by two threads at once.
    """
    handoff: queue.Queue[object] = queue.Queue(maxsize=max(depth, 1))
    stop = threading.Event()

    def put(item: object) -> bool:
        while not stop.is_set():
            try:
                handoff.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def run() -> None:
        try:
            for item in produce():
                if not put(item):
                    return
            put(_DONE)
        except BaseException as error:  # handed to the consumer, which raises it
            put(_Raised(error))

    thread = threading.Thread(target=run, name=name, daemon=True)
    thread.start()
    try:
        while True:
            item = handoff.get()
            if item is _DONE:
                return
            if isinstance(item, _Raised):
                raise item.error
            yield item  # type: ignore[misc]  # anything else was made by produce()
    finally:
        stop.set()
        thread.join()
