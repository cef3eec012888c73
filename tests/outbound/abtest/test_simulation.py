"""bench/ab with a fixed seed and fewer runs: the test's error rate and power hold (docs/benchmarks.md)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

REPOSITORY = Path(__file__).resolve().parents[3]


def _bench() -> ModuleType:
    path = REPOSITORY / "bench" / "ab" / "run.py"
    spec = importlib.util.spec_from_file_location("bench_ab_run", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_watched_after_every_send_the_test_keeps_its_error_rate_and_finds_a_real_lift() -> None:
    bench = _bench()
    report = bench.run(runs=200, seed=14, rate=0.10, lifted=0.14, settings=bench.Settings())
    assert report.aa_false_winners <= 0.05 * report.aa_runs
    low, high = report.aa_interval
    assert low <= report.aa_false_winners / report.aa_runs <= high
    assert report.lift_right >= 0.8 * report.lift_runs
    assert report.lift_wrong <= 0.05 * report.lift_runs
    # The figure docs/benchmarks.md states, with room for a smaller sample: 80% right within 4,000 sends.
    assert 0 < report.lift_sends_for_80 <= 4000
    assert report.lift_median_sends < report.fixed_horizon_sends


def test_the_fixed_horizon_z_test_needs_the_textbook_sample() -> None:
    bench = _bench()
    # (1.96 + 0.8416)^2 * (0.09 + 0.1204) / 0.04^2 = 1032.1 per variant.
    assert bench.fixed_horizon_sends((0.10, 0.14), 0.8, 0.05) == 2 * 1033
    assert bench.wilson_interval(0, 100)[0] == 0.0
