"""The A/B test's error rate and speed, simulated: A/A tests and a real lift, checked after every event.

    .venv/bin/python bench/ab/run.py [--runs 1000] [--seed 14] [--rate 0.10] [--lifted 0.14]

Each run sends one email at a time, to variant A or B at random (even odds, as the stable hash
splits an audience), and learns at once whether it got a success (a reply); after every send the
test is checked. The statistic is computed for every event of every run at once with numpy, which
only finds where each run would stop; the verdict counted is the one `touchline.outbound.analytics.
abtest.decide` gives on the counts at that event (and the check that it gives none an event earlier),
so the figures are those of the module itself.

1. A/A: both variants at --rate. A false winner is any verdict of a significant difference; the rate
   of false winners and its 95% Wilson interval are printed (goal: at most 5%).
2. Lift: A at --rate, B at --lifted. Printed: how often B is declared the winner within the horizon
   (goal: at least 80%), how often A is (a wrong winner), the median sends to a verdict, and the sends
   a fixed-horizon two-sided two-proportion z-test needs for the same power at the same alpha.
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import time
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np
import numpy.typing as npt

from touchline.outbound.analytics.abtest import (
    DEFAULT_ALPHA,
    DEFAULT_HORIZON,
    DEFAULT_MIN_SAMPLE,
    DEFAULT_TAU,
    Decision,
    decide,
)

CHUNK_EVENTS = 2_000_000
"""Runs are simulated in chunks of about this many events, to bound memory."""


@dataclass(frozen=True, slots=True)
class Outcome:
    """One simulated run: who won (None when the events ran out first) and after how many sends."""

    winner: int | None
    reason: str
    sends: int


@dataclass(frozen=True, slots=True)
class Settings:
    alpha: float = DEFAULT_ALPHA
    min_sample: int = DEFAULT_MIN_SAMPLE
    horizon: int = DEFAULT_HORIZON
    tau: float = DEFAULT_TAU

    def decide(self, arms: list[tuple[int, int]]) -> Decision:
        return decide(arms, alpha=self.alpha, min_sample=self.min_sample, horizon=self.horizon, tau=self.tau)


def simulate(
    rates: tuple[float, float], runs: int, settings: Settings, rng: np.random.Generator
) -> list[Outcome]:
    """`runs` A/B tests with these true rates, each checked after every send until it decides."""
    events = 2 * settings.horizon + 10 * math.isqrt(2 * settings.horizon) + 10
    per_chunk = max(1, CHUNK_EVENTS // events)
    outcomes: list[Outcome] = []
    while len(outcomes) < runs:
        outcomes.extend(_chunk(rates, min(per_chunk, runs - len(outcomes)), events, settings, rng))
    return outcomes


def _chunk(
    rates: tuple[float, float], runs: int, events: int, settings: Settings, rng: np.random.Generator
) -> list[Outcome]:
    to_b = rng.random((runs, events)) < 0.5
    success = rng.random((runs, events)) < np.where(to_b, rates[1], rates[0])
    sends_b = np.cumsum(to_b, axis=1, dtype=np.int64)
    sends_a = np.arange(1, events + 1, dtype=np.int64) - sends_b
    successes_b = np.cumsum(success & to_b, axis=1, dtype=np.int64)
    successes_a = np.cumsum(success & ~to_b, axis=1, dtype=np.int64)
    stops = _stops(sends_a, successes_a, sends_b, successes_b, settings)
    outcomes = []
    for run in range(runs):
        stop = int(stops[run])
        if stop < 0:
            outcomes.append(Outcome(None, "unfinished", events))
            continue
        decision = settings.decide(_arms(sends_a, successes_a, sends_b, successes_b, run, stop))
        if decision.winner is None:
            raise AssertionError(f"decide() gives no verdict where the simulation stopped (run {run})")
        if (
            stop > 0
            and settings.decide(_arms(sends_a, successes_a, sends_b, successes_b, run, stop - 1)).winner
            is not None
        ):
            raise AssertionError(f"decide() gave a verdict before the simulation stopped (run {run})")
        outcomes.append(Outcome(decision.winner, decision.reason, stop + 1))
    return outcomes


def _stops(
    sends_a: npt.NDArray[np.int64],
    successes_a: npt.NDArray[np.int64],
    sends_b: npt.NDArray[np.int64],
    successes_b: npt.NDArray[np.int64],
    settings: Settings,
) -> npt.NDArray[np.int64]:
    """Each run's first event at which the test ends (significant or horizon), or -1."""
    with np.errstate(divide="ignore", invalid="ignore"):
        rate_a = np.where(sends_a > 0, successes_a / np.maximum(sends_a, 1), 0.0)
        rate_b = np.where(sends_b > 0, successes_b / np.maximum(sends_b, 1), 0.0)
        safe_a, safe_b = np.maximum(sends_a, 1), np.maximum(sends_b, 1)
        unpooled = rate_a * (1 - rate_a) / safe_a + rate_b * (1 - rate_b) / safe_b
        pooled_rate = (successes_a + successes_b) / (sends_a + sends_b)
        pooled = pooled_rate * (1 - pooled_rate) * (1 / safe_a + 1 / safe_b)
        variance = np.where((sends_a > 0) & (sends_b > 0), np.maximum(unpooled, pooled), 0.0)
        tau_squared = settings.tau**2
        spread = variance + tau_squared
        log_ratio = np.where(
            variance > 0,
            0.5 * np.log(variance / spread) + tau_squared * (rate_b - rate_a) ** 2 / (2 * variance * spread),
            0.0,
        )
    smallest = np.minimum(sends_a, sends_b)
    ends = ((smallest >= settings.min_sample) & (log_ratio >= math.log(1 / settings.alpha))) | (
        smallest >= settings.horizon
    )
    first = np.argmax(ends, axis=1)
    return np.where(ends[np.arange(len(first)), first], first, -1)


def _arms(
    sends_a: npt.NDArray[np.int64],
    successes_a: npt.NDArray[np.int64],
    sends_b: npt.NDArray[np.int64],
    successes_b: npt.NDArray[np.int64],
    run: int,
    event: int,
) -> list[tuple[int, int]]:
    return [
        (int(sends_a[run, event]), int(successes_a[run, event])),
        (int(sends_b[run, event]), int(successes_b[run, event])),
    ]


def wilson_interval(successes: int, trials: int, confidence: float = 0.95) -> tuple[float, float]:
    z = NormalDist().inv_cdf(0.5 + confidence / 2)
    rate = successes / trials
    centre = (rate + z * z / (2 * trials)) / (1 + z * z / trials)
    half = z * math.sqrt(rate * (1 - rate) / trials + z * z / (4 * trials * trials)) / (1 + z * z / trials)
    return max(0.0, centre - half), min(1.0, centre + half)


def fixed_horizon_sends(rates: tuple[float, float], power: float, alpha: float) -> int:
    """Total sends (both variants) a fixed-horizon two-sided two-proportion z-test needs for `power`."""
    normal = NormalDist()
    z = normal.inv_cdf(1 - alpha / 2) + normal.inv_cdf(power)
    variance = rates[0] * (1 - rates[0]) + rates[1] * (1 - rates[1])
    return 2 * math.ceil(z * z * variance / (rates[1] - rates[0]) ** 2)


@dataclass(frozen=True, slots=True)
class Report:
    aa_runs: int
    aa_false_winners: int
    aa_interval: tuple[float, float]
    lift_runs: int
    lift_right: int
    lift_wrong: int
    lift_median_sends: float
    lift_sends_for_80: int
    """Sends within which 80% of the runs found the right winner."""
    lift_power: float
    """Share of runs that found the right winner before the horizon."""
    fixed_horizon_sends: int
    """Sends a fixed-horizon z-test needs for the power the sequential test reached."""
    fixed_horizon_sends_80: int
    """Sends a fixed-horizon z-test needs for 80% power."""
    seconds: float


def run(runs: int, seed: int, rate: float, lifted: float, settings: Settings) -> Report:
    started = time.perf_counter()
    rng = np.random.default_rng(seed)
    null = simulate((rate, rate), runs, settings, rng)
    false_winners = sum(outcome.reason == "significant" for outcome in null)
    lift = simulate((rate, lifted), runs, settings, rng)
    right = [outcome.sends for outcome in lift if outcome.reason == "significant" and outcome.winner == 1]
    wrong = sum(outcome.reason == "significant" and outcome.winner == 0 for outcome in lift)
    decided = [outcome.sends for outcome in lift if outcome.reason == "significant"]
    power = len(right) / runs
    ordered = sorted(right)
    for_80 = ordered[math.ceil(0.8 * runs) - 1] if len(ordered) >= math.ceil(0.8 * runs) else -1
    return Report(
        aa_runs=runs,
        aa_false_winners=false_winners,
        aa_interval=wilson_interval(false_winners, runs),
        lift_runs=runs,
        lift_right=len(right),
        lift_wrong=wrong,
        lift_median_sends=statistics.median(decided) if decided else math.nan,
        lift_sends_for_80=for_80,
        lift_power=power,
        fixed_horizon_sends=fixed_horizon_sends((rate, lifted), min(power, 0.999), settings.alpha)
        if power > 0.5
        else -1,
        fixed_horizon_sends_80=fixed_horizon_sends((rate, lifted), 0.8, settings.alpha),
        seconds=time.perf_counter() - started,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=14)
    parser.add_argument("--rate", type=float, default=0.10)
    parser.add_argument("--lifted", type=float, default=0.14)
    parser.add_argument("--alpha", type=float, default=DEFAULT_ALPHA)
    parser.add_argument("--min-sample", type=int, default=DEFAULT_MIN_SAMPLE)
    parser.add_argument("--horizon", type=int, default=DEFAULT_HORIZON)
    parser.add_argument("--tau", type=float, default=DEFAULT_TAU)
    args = parser.parse_args(argv)
    settings = Settings(alpha=args.alpha, min_sample=args.min_sample, horizon=args.horizon, tau=args.tau)
    report = run(args.runs, args.seed, args.rate, args.lifted, settings)
    low, high = report.aa_interval
    print(
        f"settings: alpha {settings.alpha}, min sample {settings.min_sample},"
        f" horizon {settings.horizon} per variant, tau {settings.tau}"
    )
    print(
        f"A/A at {args.rate:.0%}: {report.aa_false_winners} false winners in {report.aa_runs} runs = "
        f"{report.aa_false_winners / report.aa_runs:.2%} (95% Wilson interval {low:.2%} to {high:.2%})"
    )
    print(
        f"lift {args.rate:.0%} -> {args.lifted:.0%}:"
        f" right winner in {report.lift_right / report.lift_runs:.1%}, "
        f"wrong winner in {report.lift_wrong / report.lift_runs:.1%} of {report.lift_runs} runs"
    )
    print(
        f"  median sends to a verdict: {report.lift_median_sends:,.0f};"
        f" 80% of runs right within {report.lift_sends_for_80:,} sends"
    )
    print(
        f"  fixed-horizon z-test: {report.fixed_horizon_sends:,} sends"
        f" for the same power ({report.lift_power:.1%}),"
        f" {report.fixed_horizon_sends_80:,} for 80%"
    )
    print(f"simulated in {report.seconds:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
