"""The A/B test's statistics, free of I/O: an always-valid sequential test that may be checked after
every event without inflating its error rate (SPEC §8).

The test is the normal-mixture sequential probability ratio test (mSPRT) of Johari, Pekelis and Walsh,
"Always valid inference", on the difference of two proportions. With `d` the observed difference of
rates (variant minus control) and `v` its plug-in variance, mixing the
likelihood ratio of "difference = t" against "difference = 0" over t ~ N(0, tau^2) gives

    ratio = sqrt(v / (v + tau^2)) * exp(tau^2 d^2 / (2 v (v + tau^2)))

Under no difference the ratio is (approximately) a martingale with mean 1, so by Ville's inequality it
ever reaches 1/alpha with probability at most alpha, however often it is looked at. A verdict is
therefore given the first time the ratio reaches 1/alpha; the side is the sign of `d`.

The plug-in variance is the larger of `p1(1-p1)/n1 + p0(1-p0)/n0` and the pooled `p(1-p)(1/n1 + 1/n0)`:
the unpooled one alone is 0 when one variant has no successes and the other nothing but, which would
hide the plainest difference there is; the pooled one alone understates the variance of a real lift.

With more than two variants each variant is compared with the control (index 0) at alpha / (k - 1)
(Bonferroni), so the chance of any false verdict stays at most alpha. Below `min_sample` sends in any
variant no verdict is given (the plug-in variance is unreliable on a handful of sends); once every
variant has `horizon` sends without a verdict the test ends and keeps the control.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final, Literal

DEFAULT_ALPHA: Final = 0.05
DEFAULT_MIN_SAMPLE: Final = 100
"""Sends each variant needs before any verdict."""
DEFAULT_HORIZON: Final = 10_000
"""Sends each variant may reach without a verdict; after that the control is kept."""
DEFAULT_TAU: Final = 0.03
"""Spread of the mixing prior on the difference of rates: the test is most sensitive to differences of
about this size (three percentage points). The benchmark in bench/ab measured it (docs/benchmarks.md)."""
_LARGEST_LOG: Final = 700.0
"""exp() of anything above this overflows a float; ratios that large are reported as this bound."""

Reason = Literal["collecting", "significant", "horizon"]
"""Why a decision is what it is: still collecting (no winner yet), a significant difference, or the
horizon reached without one (the control is kept)."""


@dataclass(frozen=True, slots=True)
class Interval:
    low: float
    high: float


@dataclass(frozen=True, slots=True)
class Comparison:
    """One variant against the control."""

    variant: int
    difference: float
    """The variant's rate minus the control's."""
    interval: Interval
    """Always-valid confidence interval of the difference, at the corrected alpha."""
    ratio: float
    """The mixture likelihood ratio; significant once it reaches the decision's bound."""
    significant: bool


@dataclass(frozen=True, slots=True)
class Decision:
    winner: int | None
    """The winning variant's index, the control (0) when the horizon passed, or None while undecided."""
    reason: Reason
    statistic: float
    """The largest mixture likelihood ratio of the comparisons."""
    bound: float
    """The ratio a comparison must reach: 1 / corrected alpha."""
    p_value: float
    """Always-valid p-value of the strongest comparison, Bonferroni-corrected (at most 1)."""
    alpha: float
    """The alpha each comparison is tested at: alpha / (variants - 1)."""
    comparisons: tuple[Comparison, ...]


def decide(
    arms: Sequence[tuple[int, int]],
    *,
    alpha: float = DEFAULT_ALPHA,
    min_sample: int = DEFAULT_MIN_SAMPLE,
    horizon: int = DEFAULT_HORIZON,
    tau: float = DEFAULT_TAU,
) -> Decision:
    """The verdict on `arms`, one `(sends, successes)` per variant counted so far, the control first."""
    if len(arms) < 2:
        raise ValueError("an A/B test needs at least two variants")
    if not 0 < alpha < 1:
        raise ValueError("alpha must lie between 0 and 1")
    for sends, successes in arms:
        if not 0 <= successes <= sends:
            raise ValueError(f"successes ({successes}) must lie between 0 and sends ({sends})")
    corrected = alpha / (len(arms) - 1)
    bound = 1 / corrected
    log_bound = math.log(bound)
    tau_squared = tau * tau
    control_sends, control_successes = arms[0]
    control_rate = _rate(control_sends, control_successes)
    enough = min(sends for sends, _ in arms) >= min_sample
    comparisons = []
    for index, (sends, successes) in enumerate(arms[1:], start=1):
        difference = _rate(sends, successes) - control_rate
        variance = difference_variance(control_sends, control_successes, sends, successes)
        log_ratio = _log_mixture_ratio(difference, variance, tau_squared)
        half_width = mixture_half_width(variance, corrected, tau)
        comparisons.append(
            Comparison(
                variant=index,
                difference=difference,
                interval=Interval(difference - half_width, difference + half_width),
                ratio=math.exp(min(log_ratio, _LARGEST_LOG)),
                significant=enough and log_ratio >= log_bound,
            )
        )
    strongest = max(comparison.ratio for comparison in comparisons)
    p_value = min(1.0, (len(arms) - 1) / strongest)
    winner = _winner(comparisons)
    reason: Reason = "significant" if winner is not None else "collecting"
    if winner is None and min(sends for sends, _ in arms) >= horizon:
        winner, reason = 0, "horizon"
    return Decision(
        winner=winner,
        reason=reason,
        statistic=strongest,
        bound=bound,
        p_value=p_value,
        alpha=corrected,
        comparisons=tuple(comparisons),
    )


def difference_variance(sends_a: int, successes_a: int, sends_b: int, successes_b: int) -> float:
    """The plug-in variance of the difference of two rates (see the module's description)."""
    if not sends_a or not sends_b:
        return 0.0
    rate_a, rate_b = successes_a / sends_a, successes_b / sends_b
    unpooled = rate_a * (1 - rate_a) / sends_a + rate_b * (1 - rate_b) / sends_b
    pooled_rate = (successes_a + successes_b) / (sends_a + sends_b)
    return max(unpooled, pooled_rate * (1 - pooled_rate) * (1 / sends_a + 1 / sends_b))


def rate_interval(
    sends: int, successes: int, *, alpha: float = DEFAULT_ALPHA, tau: float = DEFAULT_TAU
) -> Interval:
    """An always-valid confidence interval of one variant's rate (the same normal mixture as the
    test), clipped to [0, 1]; the whole range before the first send."""
    if sends == 0:
        return Interval(0.0, 1.0)
    rate = _rate(sends, successes)
    # The variance at (successes + 1) / (sends + 2), so that no rate of 0 or 1 looks certain.
    smoothed = (successes + 1) / (sends + 2)
    half_width = mixture_half_width(smoothed * (1 - smoothed) / sends, alpha, tau)
    return Interval(max(0.0, rate - half_width), min(1.0, rate + half_width))


def mixture_half_width(variance: float, alpha: float, tau: float) -> float:
    """Half the width of the normal mixture's confidence sequence: the differences `t` whose ratio
    against the observed difference stays below 1/alpha, given the estimate's variance."""
    if variance <= 0:
        return 0.0
    tau_squared = tau * tau
    spread = variance + tau_squared
    return math.sqrt(
        2 * variance * spread / tau_squared * (math.log(1 / alpha) + 0.5 * math.log(spread / variance))
    )


def _log_mixture_ratio(difference: float, variance: float, tau_squared: float) -> float:
    if variance <= 0:
        # Every send of both variants succeeded, or none did: the counts carry no evidence yet.
        return 0.0
    spread = variance + tau_squared
    return 0.5 * math.log(variance / spread) + tau_squared * difference * difference / (2 * variance * spread)


def _winner(comparisons: Sequence[Comparison]) -> int | None:
    better = [
        comparison for comparison in comparisons if comparison.significant and comparison.difference > 0
    ]
    if better:
        return max(better, key=lambda comparison: comparison.difference).variant
    if all(comparison.significant and comparison.difference < 0 for comparison in comparisons):
        return 0
    return None


def _rate(sends: int, successes: int) -> float:
    return successes / sends if sends else 0.0
