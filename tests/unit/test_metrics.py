"""Latency histograms: exact percentiles, exact merges, lossless transport between processes."""

from __future__ import annotations

import random

import pytest

from harness.metrics import Latencies, _mean, _percentiles

PERCENTILES = [0.1, 1, 25, 50, 90, 95, 99, 99.9, 99.99, 100]


@pytest.mark.parametrize("seed", range(4))
def test_fast_percentiles_and_mean_equal_hdrhistograms_own(seed: int) -> None:
    """The numpy shortcut gives exactly the values HdrHistogram's own loops give."""
    latencies, rng = Latencies(), random.Random(seed)
    for _ in range(3000):
        latencies.record("step", int(rng.lognormvariate(11 + seed, 2)))
    hist = latencies.histogram("step")
    assert _percentiles(hist, PERCENTILES) == [hist.get_value_at_percentile(q) for q in PERCENTILES]
    assert _mean(hist) == pytest.approx(hist.get_mean_value(), rel=1e-9)


def test_summary_reports_milliseconds_to_three_significant_digits() -> None:
    """1..1000 µs gives a median of 0.5 ms and a p99 of 0.99 ms, within HdrHistogram's precision."""
    latencies = Latencies()
    for micros in range(1, 1001):
        latencies.record("reserve", micros * 1_000)
    summary = latencies.summary("reserve")
    assert summary.count == 1000
    assert summary.p50_ms == pytest.approx(0.5, rel=1e-3)
    assert summary.p99_ms == pytest.approx(0.99, rel=1e-3)
    assert summary.max_ms == pytest.approx(1.0, rel=1e-3)


def test_merge_after_encode_is_exact() -> None:
    """Histograms sent between processes as strings merge count by count, not by averaging."""
    left, right = Latencies(), Latencies()
    for value in range(1, 501):
        left.record("open", value * 1_000_000)
        right.record("open", (value + 500) * 1_000_000)
    merged = Latencies.merged([Latencies.decode(left.encode()), Latencies.decode(right.encode())])
    assert merged.count("open") == 1000
    assert merged.percentile_ms("open", 50) == pytest.approx(500, rel=1e-3)
    assert merged.percentile_ms("open", 100) == pytest.approx(1000, rel=1e-3)


def test_values_out_of_range_are_clamped_not_lost() -> None:
    """A zero or absurdly long duration is still counted."""
    latencies = Latencies()
    latencies.record("hang", 0)
    latencies.record("hang", 10**15)
    assert latencies.count("hang") == 2


def test_an_empty_step_summarises_to_zeros() -> None:
    """A step that never ran has a zero summary rather than an error."""
    latencies = Latencies()
    assert latencies.summary("never").count == 0
    assert latencies.percentile_ms("never", 99) == 0.0
    assert latencies.names() == [], "reading a step must not create it"
