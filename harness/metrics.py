"""Latency histograms: every timing the harness reports lives in an HdrHistogram, never an average.

Values are recorded in nanoseconds (from ``time.perf_counter_ns()`` differences) with three
significant digits, and reported in milliseconds. Histograms travel between processes (load
workers, the hardware rig, the run history) as the compressed base64 strings HdrHistogram
defines, so merging is exact rather than an average of percentiles.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Final

import numpy as np
from hdrh.histogram import HdrHistogram

__all__ = [
    "HIGHEST_NS",
    "LOWEST_NS",
    "Latencies",
    "LatencySummary",
    "new_histogram",
    "percentile_bounds",
]

LOWEST_NS = 1  # record nanoseconds exactly: 3 significant digits at every scale
HIGHEST_NS = 3_600_000_000_000  # 1 h: longer is a hang, recorded as the maximum
SIGNIFICANT_FIGURES = 3
PERCENTILES = (50.0, 90.0, 95.0, 99.0, 99.9)


def new_histogram() -> HdrHistogram:
    return HdrHistogram(LOWEST_NS, HIGHEST_NS, SIGNIFICANT_FIGURES)


@dataclass(frozen=True, slots=True)
class LatencySummary:
    """What a report shows for one step: counts and percentiles in milliseconds."""

    name: str
    count: int
    min_ms: float
    p50_ms: float
    p90_ms: float
    p95_ms: float
    p99_ms: float
    p999_ms: float
    max_ms: float
    mean_ms: float

    def as_dict(self) -> dict[str, float | int | str]:
        return {field: getattr(self, field) for field in self.__dataclass_fields__}


def _ms(ns: float) -> float:
    return round(ns / 1e6, 4)


# hdrh walks all ~34k slots in Python for a mean or a percentile (about 90 ms a summary); these
# do the same arithmetic with numpy over the slots at once, with identical results.


@functools.cache
def _slot_ranges(
    counts_len: int, half_count_magnitude: int, half_count: int, unit_magnitude: int
) -> tuple[np.ndarray, np.ndarray]:
    """The lowest value each counts slot stands for, and the width of its range."""
    index = np.arange(counts_len, dtype=np.int64)
    bucket = (index >> half_count_magnitude) - 1
    sub_bucket = (index & (half_count - 1)) + half_count
    first = bucket < 0
    sub_bucket[first] -= half_count
    bucket[first] = 0
    return sub_bucket << (bucket + unit_magnitude), np.int64(1) << (bucket + unit_magnitude)


def _slots(hist: HdrHistogram) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    lowest, width = _slot_ranges(
        hist.counts_len, hist.sub_bucket_half_count_magnitude, hist.sub_bucket_half_count, hist.unit_magnitude
    )
    counts = np.ctypeslib.as_array(hist.counts)[: hist.counts_len].astype(np.int64)
    return counts, lowest, width


def _mean(hist: HdrHistogram) -> float:
    """HdrHistogram's mean: each slot counted at the middle of its range."""
    total = hist.get_total_count()
    if not total:
        return 0.0
    counts, lowest, width = _slots(hist)
    middles = (lowest + (width >> 1)).astype(np.float64)
    return float(np.dot(counts.astype(np.float64), middles) / total)


def _percentiles(hist: HdrHistogram, percentiles: Iterable[float]) -> list[int]:
    """HdrHistogram's value at each percentile: the highest value of the slot the target count falls in."""
    total = hist.get_total_count()
    counts, lowest, width = _slots(hist)
    cumulative = np.cumsum(counts)
    values = []
    for percentile in percentiles:
        target = max(int(min(percentile, 100.0) * total / 100 + 0.5), 1)
        slot = int(np.searchsorted(cumulative, target, side="left"))
        values.append(int(lowest[slot] + width[slot] - 1) if slot < len(lowest) else 0)
    return values


def _values_at_ranks(hist: HdrHistogram, ranks: Iterable[int]) -> list[int]:
    """The value of the ``rank``-th smallest sample (1-based), as HdrHistogram reports a percentile."""
    counts, lowest, width = _slots(hist)
    cumulative = np.cumsum(counts)
    values = []
    for rank in ranks:
        slot = int(np.searchsorted(cumulative, max(rank, 1), side="left"))
        values.append(int(lowest[slot] + width[slot] - 1) if slot < len(lowest) else 0)
    return values


#: The normal quantile of a two-sided 95 % interval.
_Z95: Final = 1.96


def percentile_bounds(hist: HdrHistogram, percentile: float, *, z: float = _Z95) -> tuple[int, int]:
    """A distribution-free 95 % confidence interval of a percentile: the samples at ranks
    ``n*p -+ z*sqrt(n*p*(1-p))`` (the binomial approximation of the order statistics). With 600 samples
    the p99 lies somewhere between the 12th and the 2nd largest; with one sample it is that sample."""
    total = int(hist.get_total_count())
    if not total:
        return (0, 0)
    fraction = min(max(percentile / 100.0, 0.0), 1.0)
    centre = total * fraction
    spread = z * math.sqrt(total * fraction * (1.0 - fraction))
    low = min(max(math.floor(centre - spread), 1), total)
    high = min(max(math.ceil(centre + spread), 1), total)
    lower, upper = _values_at_ranks(hist, (low, high))
    return lower, upper


class Latencies:
    """Named histograms, one per step or phase, in insertion order."""

    def __init__(self) -> None:
        self._histograms: dict[str, HdrHistogram] = {}

    def histogram(self, name: str) -> HdrHistogram:
        hist = self._histograms.get(name)
        if hist is None:
            hist = self._histograms[name] = new_histogram()
        return hist

    def record(self, name: str, duration_ns: int) -> None:
        """Record one duration; values beyond the range are clamped so nothing is lost silently."""
        self.histogram(name).record_value(min(max(duration_ns, LOWEST_NS), HIGHEST_NS))

    def record_corrected(self, name: str, duration_ns: int, expected_interval_ns: int) -> None:
        """Record with HdrHistogram's coordinated-omission correction for a fixed-rate sender."""
        value = min(max(duration_ns, LOWEST_NS), HIGHEST_NS)
        self.histogram(name).record_corrected_value(value, expected_interval_ns)

    def names(self) -> list[str]:
        return list(self._histograms)

    def __contains__(self, name: object) -> bool:
        return name in self._histograms

    def __iter__(self) -> Iterator[str]:
        return iter(self._histograms)

    def count(self, name: str) -> int:
        hist = self._histograms.get(name)
        return 0 if hist is None else int(hist.get_total_count())

    def percentile_ms(self, name: str, percentile: float) -> float:
        """The value at ``percentile`` in ms; 0.0 for a step that never ran (gate on ``count`` first)."""
        hist = self._histograms.get(name)
        return _ms(_percentiles(hist, [percentile])[0]) if hist is not None and hist.get_total_count() else 0.0

    def percentile_bounds_ms(self, name: str, percentile: float) -> tuple[float, float]:
        """The 95 % confidence interval of a percentile in ms (``percentile_bounds``); zeros for no samples."""
        hist = self._histograms.get(name)
        if hist is None:
            return (0.0, 0.0)
        lower, upper = percentile_bounds(hist, percentile)
        return (_ms(lower), _ms(upper))

    def summary(self, name: str) -> LatencySummary:
        """Counts and percentiles of one step; reading never creates a step, so a typo is no phantom step."""
        hist = self._histograms.get(name)
        if hist is None or hist.get_total_count() == 0:
            return LatencySummary(name, 0, *([0.0] * 8))
        p = [_ms(value) for value in _percentiles(hist, PERCENTILES)]
        return LatencySummary(
            name=name,
            count=int(hist.get_total_count()),
            min_ms=_ms(hist.get_min_value()),
            p50_ms=p[0],
            p90_ms=p[1],
            p95_ms=p[2],
            p99_ms=p[3],
            p999_ms=p[4],
            max_ms=_ms(hist.get_max_value()),
            mean_ms=_ms(_mean(hist)),
        )

    def summaries(self) -> list[LatencySummary]:
        return [self.summary(name) for name in self._histograms]

    def merge(self, other: Latencies) -> None:
        """Add every histogram of ``other`` into this one (exact, count by count)."""
        for name, hist in other._histograms.items():
            self.histogram(name).add(hist)

    def encode(self) -> dict[str, str]:
        """Each histogram as HdrHistogram's compressed base64 string, for JSON and other processes."""
        return {name: hist.encode().decode("ascii") for name, hist in self._histograms.items()}

    @classmethod
    def decode(cls, encoded: Mapping[str, str]) -> Latencies:
        latencies = cls()
        for name, blob in encoded.items():
            latencies.histogram(name).decode_and_add(blob.encode("ascii"))
        return latencies

    @classmethod
    def merged(cls, parts: Iterable[Latencies]) -> Latencies:
        total = cls()
        for part in parts:
            total.merge(part)
        return total
