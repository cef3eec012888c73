"""The process settings of the commands that work through mail."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from touchline.kit.runtime import YOUNG_COLLECTION_EVERY, tune_garbage_collector


@pytest.fixture
def restored_collector() -> Iterator[None]:
    thresholds = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*thresholds)


@pytest.mark.usefixtures("restored_collector")
def test_the_collector_runs_less_often_and_skips_what_start_up_loaded() -> None:
    tune_garbage_collector()
    assert gc.get_threshold()[0] == YOUNG_COLLECTION_EVERY
    assert gc.get_freeze_count() > 0
    # Cycles are still collected.
    cycle: list[object] = []
    cycle.append(cycle)
    del cycle
    assert gc.collect() >= 1
