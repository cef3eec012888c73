"""The pure A/B statistics: hand-computed values, the rules around them, and symmetry."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from touchline.outbound.analytics.abtest import decide, mixture_half_width, rate_interval


def test_ratio_matches_the_formula_worked_by_hand() -> None:
    # 1000 sends each, 100 vs 140 successes: d = 0.04; unpooled variance 0.09/1000 + 0.1204/1000 =
    # 0.0002104, pooled 0.12 * 0.88 * 2/1000 = 0.0002112, the larger is used; tau^2 = 0.0009:
    # ratio = sqrt(v / (v + tau^2)) * exp(tau^2 d^2 / (2 v (v + tau^2))).
    v, tau2, d = 0.0002112, 0.0009, 0.04
    expected = math.sqrt(v / (v + tau2)) * math.exp(tau2 * d * d / (2 * v * (v + tau2)))
    decision = decide([(1000, 100), (1000, 140)])
    assert decision.statistic == pytest.approx(expected, rel=1e-9)
    assert decision.statistic == pytest.approx(9.3721, rel=1e-4)
    assert decision.bound == pytest.approx(20.0)
    assert decision.p_value == pytest.approx(1 / expected)
    assert (decision.winner, decision.reason) == (None, "collecting")


def test_a_clear_lift_wins_and_a_clear_drop_keeps_the_control() -> None:
    up = decide([(2000, 200), (2000, 300)])
    assert (up.winner, up.reason) == (1, "significant")
    assert up.statistic >= up.bound
    assert up.comparisons[0].interval.low > 0
    down = decide([(2000, 300), (2000, 200)])
    assert (down.winner, down.reason) == (0, "significant")
    assert down.comparisons[0].interval.high < 0


def test_no_verdict_below_the_minimum_sample_however_large_the_difference() -> None:
    decision = decide([(99, 0), (99, 99)], min_sample=100)
    assert decision.winner is None
    assert decision.reason == "collecting"
    assert decision.statistic > decision.bound
    assert decide([(100, 0), (100, 99)], min_sample=100).winner == 1


def test_the_horizon_keeps_the_control_and_says_why() -> None:
    decision = decide([(500, 50), (500, 52)], horizon=500)
    assert (decision.winner, decision.reason) == (0, "horizon")
    assert decide([(500, 50), (499, 52)], horizon=500).reason == "collecting"


def test_more_variants_are_each_tested_against_the_control_at_a_bonferroni_alpha() -> None:
    decision = decide([(1000, 100), (1000, 100), (1000, 100), (1000, 100)], alpha=0.06)
    assert decision.alpha == pytest.approx(0.02)
    assert decision.bound == pytest.approx(50)
    assert [comparison.variant for comparison in decision.comparisons] == [1, 2, 3]
    # A ratio of 30 would be a verdict between two variants (bound 20) but not among three (bound 40).
    arms = [(1500, 150), (1500, 205)]
    two = decide(arms)
    three = decide([*arms, (1500, 150)])
    assert 20 <= two.statistic < 40, two.statistic
    assert two.winner == 1
    assert three.winner is None


def test_the_best_significant_variant_wins_and_the_control_only_when_it_beats_every_other() -> None:
    assert decide([(3000, 300), (3000, 420), (3000, 480)]).winner == 2
    assert decide([(3000, 480), (3000, 300), (3000, 470)]).winner is None
    assert decide([(3000, 480), (3000, 300), (3000, 320)]).winner == 0


def test_no_evidence_when_every_send_succeeded_or_none_did() -> None:
    for arms in ([(500, 0), (500, 0)], [(500, 500), (500, 500)]):
        decision = decide(arms)
        assert decision.statistic == pytest.approx(1.0)
        assert decision.winner is None


@pytest.mark.parametrize(
    ("arms", "message"),
    [
        ([(10, 1)], "two variants"),
        ([(10, 1), (10, 11)], "between 0 and sends"),
        ([(10, -1), (10, 1)], "between"),
    ],
)
def test_impossible_counts_are_refused(arms: list[tuple[int, int]], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        decide(arms)


def test_alpha_must_be_a_probability() -> None:
    with pytest.raises(ValueError, match="alpha"):
        decide([(10, 1), (10, 1)], alpha=0)


counts = st.integers(min_value=0, max_value=5000).flatmap(
    lambda sends: st.tuples(st.just(sends), st.integers(min_value=0, max_value=sends))
)


@given(counts, counts)
def test_swapping_the_variants_mirrors_the_verdict(a: tuple[int, int], b: tuple[int, int]) -> None:
    forward = decide([a, b])
    backward = decide([b, a])
    assert forward.statistic == pytest.approx(backward.statistic, rel=1e-9)
    if forward.reason == "significant":
        assert backward.winner == 1 - (forward.winner or 0)
    else:
        assert forward.reason == backward.reason


@given(counts, counts)
def test_the_difference_lies_in_its_interval_and_verdicts_exclude_zero(
    a: tuple[int, int], b: tuple[int, int]
) -> None:
    decision = decide([a, b])
    comparison = decision.comparisons[0]
    assert comparison.interval.low <= comparison.difference <= comparison.interval.high
    if comparison.significant:
        # The confidence sequence and the test are the same mixture: a verdict excludes no difference.
        assert comparison.interval.low > 0 or comparison.interval.high < 0


@given(counts)
def test_a_rate_interval_holds_the_rate_within_zero_and_one(arm: tuple[int, int]) -> None:
    sends, successes = arm
    interval = rate_interval(sends, successes)
    assert 0 <= interval.low <= interval.high <= 1
    if sends:
        assert interval.low <= successes / sends <= interval.high


def test_intervals_narrow_as_sends_grow_and_widen_as_alpha_shrinks() -> None:
    widths = [mixture_half_width(0.09 / n, 0.05, 0.03) for n in (100, 1000, 10_000)]
    assert widths == sorted(widths, reverse=True)
    assert mixture_half_width(0.09 / 1000, 0.01, 0.03) > widths[1]
    assert mixture_half_width(0.0, 0.05, 0.03) == 0.0
