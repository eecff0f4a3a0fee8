"""Latency histograms: every timing the harness reports lives in an HdrHistogram, never an average.

Values are recorded in nanoseconds (from ``time.perf_counter_ns()`` differences) with three
significant digits, and reported in milliseconds. Histograms travel between processes (load
workers, the hardware rig, the run history) as the compressed base64 strings HdrHistogram
defines, so merging is exact rather than an average of percentiles.
"""

from __future__ import annotations

import functools
import math
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Final

import numpy as np
from hdrh.histogram import HdrHistogram

__all__ = [
    "HIGHEST_NS",
    "LOWEST_NS",
    "Latencies",
    "LatencySummary",
    "Timeline",
    "TimelinePoint",
    "new_histogram",
    "percentile_bounds",
    "resolvable",
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
    """The lowest value each counts slot stands for, and the width of its range (read-only: shared)."""
    index = np.arange(counts_len, dtype=np.int64)
    bucket = (index >> half_count_magnitude) - 1
    sub_bucket = (index & (half_count - 1)) + half_count
    first = bucket < 0
    sub_bucket[first] -= half_count
    bucket[first] = 0
    lowest, width = sub_bucket << (bucket + unit_magnitude), np.int64(1) << (bucket + unit_magnitude)
    lowest.flags.writeable = width.flags.writeable = False
    return lowest, width


@functools.cache
def _slot_middles(counts_len: int, half_count_magnitude: int, half_count: int, unit_magnitude: int) -> np.ndarray:
    """The middle of each counts slot's range, as floats (read-only: shared)."""
    lowest, width = _slot_ranges(counts_len, half_count_magnitude, half_count, unit_magnitude)
    middles: np.ndarray = (lowest + (width >> 1)).astype(np.float64)
    middles.flags.writeable = False
    return middles


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
    middles = _slot_middles(
        hist.counts_len, hist.sub_bucket_half_count_magnitude, hist.sub_bucket_half_count, hist.unit_magnitude
    )
    counts = np.ctypeslib.as_array(hist.counts)[: hist.counts_len]
    return float(np.dot(counts, middles) / total)


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


def resolvable(percentile: float, count: int) -> bool:
    """Whether ``count`` samples resolve ``percentile``: the p99 needs 100, the p95 20, the median 2.

    Past ``1 - 1/count`` a percentile is the maximum by another name: a curve drawn there runs flat
    to 99.999 % through nine samples and says nothing the maximum does not.
    """
    return count > 0 and percentile <= 100.0 * (1.0 - 1.0 / count) + 1e-9


#: A timeline's intervals: microseconds, 1 µs to an hour, two significant digits (about 26 kB each:
#: a few hundred of them a run, where a full-precision histogram would take 270 kB).
_TIMELINE_HIGHEST_US: Final = HIGHEST_NS // 1000
_TIMELINE_FIGURES: Final = 2
#: A timeline keeps at most this many intervals, doubling their width to stay within it.
MAX_INTERVALS: Final = 90


def _interval_histogram() -> HdrHistogram:
    return HdrHistogram(1, _TIMELINE_HIGHEST_US, _TIMELINE_FIGURES)


@dataclass(frozen=True, slots=True)
class TimelinePoint:
    """One interval of one group: when it started (epoch seconds), how many requests ended in it and
    failed, and its percentiles in ms (``None`` where its count does not resolve them)."""

    start_s: float
    width_s: float
    count: int
    failures: int
    p50_ms: float | None
    p95_ms: float | None
    p99_ms: float | None

    @property
    def per_s(self) -> float:
        return self.count / self.width_s


class Timeline:
    """Requests over wall-clock time, per group of steps: per interval, a count, the failures and the
    latencies in a coarse HdrHistogram. Intervals start at multiples of their width in epoch seconds,
    so processes on different hosts merge interval by interval (their clocks agreeing); the width
    starts at a second and doubles whenever the run outgrows ``MAX_INTERVALS`` of them."""

    def __init__(self, width_s: float = 1.0) -> None:
        self.width_s = width_s
        self._latencies: dict[str, dict[int, HdrHistogram]] = {}
        self._failures: dict[str, dict[int, int]] = {}

    def _key(self, at_s: float | None) -> int:
        return int((time.time() if at_s is None else at_s) // self.width_s)

    def record(self, group: str, latency_ns: int, *, at_s: float | None = None) -> None:
        """A request of ``group`` ended now (or at ``at_s``) after ``latency_ns``."""
        key = self._key(at_s)
        intervals = self._latencies.setdefault(group, {})
        histogram = intervals.get(key)
        if histogram is None:
            histogram = intervals[key] = _interval_histogram()
            self._fit()
        histogram.record_value(min(max(latency_ns // 1000, 1), _TIMELINE_HIGHEST_US))

    def fail(self, group: str, *, at_s: float | None = None) -> None:
        """A request of ``group`` failed now (or at ``at_s``)."""
        failures = self._failures.setdefault(group, {})
        key = self._key(at_s)
        if key in failures:
            failures[key] += 1
            return
        failures[key] = 1
        self._fit()

    def _keys(self) -> set[int]:
        keys = {key for intervals in self._latencies.values() for key in intervals}
        return keys | {key for failures in self._failures.values() for key in failures}

    def _fit(self) -> None:
        keys = self._keys()
        while keys and max(keys) - min(keys) + 1 > MAX_INTERVALS:
            self._coarsen(2)
            keys = self._keys()

    def _coarsen(self, factor: int) -> None:
        """Intervals ``factor`` times wider: each new one holds the ones it covers."""
        self.width_s *= factor
        for group, intervals in self._latencies.items():
            merged: dict[int, HdrHistogram] = {}
            for key, histogram in intervals.items():
                target = merged.get(key // factor)
                if target is None:
                    merged[key // factor] = histogram
                else:
                    target.add(histogram)
            self._latencies[group] = merged
        for group, failures in self._failures.items():
            counted: dict[int, int] = {}
            for key, count in failures.items():
                counted[key // factor] = counted.get(key // factor, 0) + count
            self._failures[group] = counted

    def merge(self, other: Timeline) -> None:
        """Add ``other`` interval by interval (the narrower of the two is widened first)."""
        other = other._copy()
        while other.width_s < self.width_s:
            other._coarsen(2)
        while self.width_s < other.width_s:
            self._coarsen(2)
        for group, intervals in other._latencies.items():
            mine = self._latencies.setdefault(group, {})
            for key, histogram in intervals.items():
                if key in mine:
                    mine[key].add(histogram)
                else:
                    mine[key] = histogram
        for group, failures in other._failures.items():
            counts = self._failures.setdefault(group, {})
            for key, count in failures.items():
                counts[key] = counts.get(key, 0) + count
        self._fit()

    def _copy(self) -> Timeline:
        return Timeline.decode(self.encode())

    def groups(self) -> list[str]:
        return sorted(set(self._latencies) | set(self._failures))

    def __bool__(self) -> bool:
        return bool(self._keys())

    def span(self) -> tuple[float, float] | None:
        """The first interval's start and the last one's end (epoch seconds); ``None`` when empty."""
        keys = self._keys()
        return (min(keys) * self.width_s, (max(keys) + 1) * self.width_s) if keys else None

    def points(self, group: str) -> list[TimelinePoint]:
        """Each interval of ``group`` from the timeline's first to its last, empty ones included."""
        keys = self._keys()
        if not keys:
            return []
        intervals, failures = self._latencies.get(group, {}), self._failures.get(group, {})
        points = []
        for key in range(min(keys), max(keys) + 1):
            histogram = intervals.get(key)
            count = int(histogram.get_total_count()) if histogram is not None else 0
            values: list[float | None] = [None, None, None]
            if histogram is not None and count:
                wanted = [p for p in (50.0, 95.0, 99.0) if resolvable(p, count)]
                found = dict(zip(wanted, _percentiles(histogram, wanted), strict=True))
                values = [round(found[p] / 1000, 3) if p in found else None for p in (50.0, 95.0, 99.0)]
            points.append(TimelinePoint(key * self.width_s, self.width_s, count, failures.get(key, 0), *values))
        return points

    def encode(self) -> dict[str, Any]:
        """JSON-ready: the width, and per group and interval the histogram (compressed base64) and failures."""
        return {
            "width_s": self.width_s,
            "latencies": {
                group: {str(key): histogram.encode().decode("ascii") for key, histogram in intervals.items()}
                for group, intervals in self._latencies.items()
            },
            "failures": {
                group: {str(key): count for key, count in failures.items()}
                for group, failures in self._failures.items()
            },
        }

    @classmethod
    def decode(cls, data: Mapping[str, Any]) -> Timeline:
        """The timeline ``encode`` wrote; ``ValueError`` if it is not one."""
        try:
            timeline = cls(float(data["width_s"]))
            for group, intervals in data["latencies"].items():
                decoded = timeline._latencies.setdefault(str(group), {})
                for key, blob in intervals.items():
                    histogram = _interval_histogram()
                    histogram.decode_and_add(str(blob).encode("ascii"))
                    decoded[int(key)] = histogram
            for group, failures in data["failures"].items():
                timeline._failures[str(group)] = {int(key): int(count) for key, count in failures.items()}
        except (KeyError, TypeError, AttributeError, ValueError) as exc:
            raise ValueError(f"malformed timeline: {type(exc).__name__}: {exc}") from None
        if not timeline.width_s > 0:
            raise ValueError("malformed timeline: its width must be positive")
        return timeline
