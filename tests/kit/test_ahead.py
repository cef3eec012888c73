"""Running a producer ahead of its consumer: order, errors, early stops."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from touchline.kit.ahead import run_ahead


def test_items_arrive_in_order_and_the_producer_runs_ahead() -> None:
    second_made = threading.Event()

    def produce() -> Iterator[int]:
        for number in range(20):
            if number == 1:
                second_made.set()
            yield number

    seen = []
    for number in run_ahead(produce, depth=1):
        if number == 0:
            # While the first item is handled here, the producer makes the next one unasked.
            assert second_made.wait(timeout=30)
        seen.append(number)
    assert seen == list(range(20))


def failing_after_two() -> Iterator[int]:
    yield 1
    yield 2
    raise LookupError("the producer failed")


def test_an_error_arrives_after_the_items_made_before_it() -> None:
    items = run_ahead(failing_after_two)
    assert next(items) == 1
    assert next(items) == 2
    with pytest.raises(LookupError, match="the producer failed"):
        next(items)


def test_a_consumer_that_fails_stops_the_producer_before_the_error_is_seen() -> None:
    started = threading.Event()
    stopped = threading.Event()

    def produce() -> Iterator[int]:
        try:
            for number in range(1000):
                started.set()
                yield number
        finally:
            stopped.set()

    def consume() -> None:
        for _ in run_ahead(produce, name="test-producer"):
            assert started.wait(1)
            raise RuntimeError("handling failed")

    with pytest.raises(RuntimeError, match="handling failed"):
        consume()
    assert stopped.is_set()
    assert not any(thread.name == "test-producer" for thread in threading.enumerate())


def test_a_consumer_that_stops_early_stops_the_producer() -> None:
    items = run_ahead(lambda: iter(range(1000)), name="test-early")
    assert next(items) == 0
    items.close()
    assert not any(thread.name == "test-early" for thread in threading.enumerate())
