"""The run's plots: one overview over time (per group of steps, its SLO lines and stall windows marked),
percentile curves cut where their samples stop resolving them, and one page holding them all."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path

import pytest

from harness.load._windows import FaultClock
from harness.metrics import MAX_INTERVALS, Latencies, Timeline, resolvable
from harness.redaction import Redactor
from harness.report import (
    LatencyLimit,
    RunFolder,
    RunResult,
    StageResult,
    Verdict,
    finish_reports,
    plot_latencies,
)
from harness.report._plots import plot_overview

MS = 1_000_000
T0 = 1_796_000_000.0  # an epoch second: where the intervals start


def _timeline(seconds: int = 30, per_s: int = 120) -> Timeline:
    """``per_s`` delivery and browsing requests a second for ``seconds``, 10 ms slower in seconds 10 and 20."""
    timeline = Timeline()
    for second in range(seconds):
        slow = 10 if second in (10, 20) else 0
        for n in range(per_s):
            at = T0 + second + n / per_s
            timeline.record("delivery", (2 + n % 5 + slow) * MS, at_s=at)
            timeline.record("browsing", (1 + n % 3) * MS, at_s=at)
        timeline.record("delivery (end to end)", 40 * MS, at_s=T0 + second)
        if second == 20:
            timeline.fail("delivery", at_s=T0 + second)
    return timeline


def _svg_ids_and_text(path: Path) -> tuple[set[str], str]:
    root = ET.parse(path).getroot()
    ids = {element.get("id", "") for element in root.iter()}
    text = " ".join(" ".join(element.itertext()) for element in root.iter() if element.tag.endswith("text"))
    return ids, text


def test_the_overview_names_every_series_slo_line_and_stall(
    tmp_path: Path, run: RunResult, make_latencies: Callable[..., Latencies]
) -> None:
    """A run with a timeline gets plots/overview.svg: a panel per group with p50/p95/p99 and requests/s
    (failures/s where some failed), the SLO lines that bound each group (named in the corner when far above
    its data), the stall windows shaded; the plots page shows it first."""
    folder = RunFolder.create(tmp_path / "reports", "20261207-101500-c0ffee")
    stalls = FaultClock(seconds=1.0, every=10.0, period_start_s=T0)
    timeline = _timeline()
    span = timeline.span()
    assert span is not None
    stage = StageResult(
        "load",
        Verdict.PASSED,
        latencies=make_latencies(reserve=[float(1 + n % 9) for n in range(50)]),
        timeline=timeline,
        limits=[LatencyLimit("SLO p99", 99.0, 12.0), LatencyLimit("SLO reserve p95", 95.0, 8.0, "delivery")],
        windows=stalls.windows(*span),
    )
    run.stages = [stage]
    finish_reports(run, folder, redactor=Redactor())

    overview = folder.plots_dir / "overview.svg"
    assert overview in stage.artefacts
    ids, text = _svg_ids_and_text(overview)
    for series in ("p50", "p95", "p99", "requests/s"):
        assert f"delivery: {series}" in ids and f"browsing: {series}" in ids, series
    assert "delivery: failures/s" in ids and "browsing: failures/s" not in ids
    assert "delivery: SLO reserve p95 8 ms" in ids and "browsing: SLO reserve p95 8 ms" not in ids
    assert "delivery: SLO p99 12 ms" in ids  # an overall gate bounds every group...
    assert "browsing: SLO p99 12 ms" not in ids and "above: SLO p99 12 ms" in text  # ...named where it would squash
    assert {"delivery: stall 1 s every 10 s #1", "delivery: stall 1 s every 10 s #3"} <= ids
    assert "delivery: stall 1 s every 10 s #4" not in ids  # three stalls in thirty seconds
    assert "delivery (end to end): flows/s" in ids
    assert "delivery (end to end): SLO p99 12 ms" not in ids  # a per-request gate; a flow is many requests
    for words in ("delivery", "browsing", "seconds since the first request", "SLO p99 12 ms", "stall 1 s every 10 s"):
        assert words in text, words
    page = (folder.plots_dir / "index.html").read_text()
    assert page.index("Over time") < page.index("Percentile curves") < page.index("load: reserve")


def test_the_overview_s_legends_stay_inside_the_figure_with_long_gate_names(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The figure is laid out once, not measured: a long SLO gate's name folds onto lines of its own."""
    from matplotlib.figure import Figure

    edges: list[tuple[float, float]] = []
    save = Figure.savefig

    def measured(figure: Figure, *args: object, **kwargs: object) -> None:
        save(figure, *args, **kwargs)  # type: ignore[arg-type]
        width = figure.get_window_extent().x1
        edges.extend((legend.get_window_extent().x1, width) for axes in figure.axes if (legend := axes.get_legend()))

    monkeypatch.setattr(Figure, "savefig", measured)
    limits = [LatencyLimit("SLO close_after_dropoff_p999", 99.9, 12.5, "delivery"), LatencyLimit("SLO p99", 99.0, 9.0)]
    stalls = FaultClock(seconds=0.35, every=0.4, period_start_s=T0)
    timeline = _timeline(seconds=3)
    span = timeline.span()
    assert span is not None
    plot_overview(timeline, tmp_path / "overview.svg", title="t", limits=limits, windows=stalls.windows(*span))
    assert edges and all(right <= width for right, width in edges), edges


def test_a_stall_window_lies_where_the_sandbox_holds_requests() -> None:
    """The last ``seconds`` of each period, from the anchored period start, clipped to the run."""
    clock = FaultClock(seconds=1.0, every=10.0, period_start_s=T0 + 2.0)
    windows = clock.windows(T0, T0 + 25.0)
    assert [(w.start_s - T0, w.end_s - T0) for w in windows] == [(1.0, 2.0), (11.0, 12.0), (21.0, 22.0)]
    assert windows[0].label == "stall 1 s every 10 s"


def test_an_interval_shows_only_the_percentiles_its_requests_resolve() -> None:
    """Nine requests in a second show their median; the p95 needs 20, the p99 100."""
    timeline = Timeline()
    for n, count in enumerate((9, 30, 150)):
        for i in range(count):
            timeline.record("delivery", (1 + i) * MS, at_s=T0 + n)
    points = timeline.points("delivery")
    shown = [(p.count, p.p50_ms is not None, p.p95_ms is not None, p.p99_ms is not None) for p in points]
    assert shown == [(9, True, False, False), (30, True, True, False), (150, True, True, True)]
    assert (resolvable(99.0, 99), resolvable(99.0, 100), resolvable(50.0, 1)) == (False, True, False)


def test_a_long_run_keeps_a_bounded_timeline_and_merges_across_processes() -> None:
    """An hour at one request a second fits in at most MAX_INTERVALS intervals (their width doubles), and
    two processes' timelines of different widths merge into the wider one, counts intact."""
    long, short = Timeline(), Timeline()
    for second in range(3600):
        long.record("delivery", 3 * MS, at_s=T0 + second)
    for second in range(60):
        short.record("delivery", 3 * MS, at_s=T0 + second)
    assert len(long.points("delivery")) <= MAX_INTERVALS and long.width_s >= 3600 / MAX_INTERVALS
    long.merge(short)
    assert sum(p.count for p in long.points("delivery")) == 3660
    decoded = Timeline.decode(long.encode())
    assert decoded.points("delivery") == long.points("delivery")


@pytest.mark.parametrize(("count", "tail_shown"), [(9, False), (100_000, True)])
def test_a_percentile_curve_stops_where_its_samples_stop_resolving_it(
    tmp_path: Path, make_latencies: Callable[..., Latencies], count: int, tail_shown: bool
) -> None:
    """Nine samples draw a curve to 88.9 % (1 - 1/n) and its maximum there, not flat to 99.999 %; a hundred
    thousand reach the 99.999th percentile."""
    [path] = plot_latencies(make_latencies(step=[float(1 + n % 50) for n in range(count)]), tmp_path, stage="load")
    _, text = _svg_ids_and_text(path)
    assert ("99.999%" in text) is tail_shown
    assert "90%" in text
    cut = re.search(r"cut at ([\d.]+) %", text)
    assert cut is not None and float(cut.group(1)) == pytest.approx(100 * (1 - 1 / count), abs=0.01)
