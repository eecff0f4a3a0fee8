"""Latency plots: HdrHistogram's percentile distribution curve, one SVG per histogram.

The x axis is ``1 / (1 - percentile)`` on a log scale, as HdrHistogram's own plotter draws it,
so the tail (99 %, 99.9 %) gets as much room as the median: that is where lockers time out.
Figures are drawn the object-oriented way on matplotlib's Agg canvas, never through pyplot: no
display, no GUI toolkit, no global backend switched under a user's feet, safe in CI and threads.
matplotlib is imported on the first plot, so loading the reports costs nothing.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Final

from harness.metrics import Latencies

__all__ = ["plot_latencies", "plot_name"]

#: Percentiles the curve is drawn through; more points where the tail bends.
_PERCENTILES: Final = (
    0.0, 10.0, 20.0, 30.0, 40.0, 50.0, 60.0, 70.0, 75.0, 80.0, 85.0, 90.0, 92.5, 95.0, 96.0, 97.0, 97.5,
    98.0, 98.5, 99.0, 99.25, 99.5, 99.75, 99.9, 99.95, 99.99, 99.999, 100.0,
)  # fmt: skip
_TICKS: Final = ((0.0, "0%"), (90.0, "90%"), (99.0, "99%"), (99.9, "99.9%"), (99.99, "99.99%"), (99.999, "99.999%"))
#: A run has a handful of phases and steps; a stage with hundreds of names is plotted up to this.
MAX_PLOTS_PER_STAGE: Final = 40


def plot_name(stage: str, histogram: str) -> str:
    """A file name for a stage's histogram that any file system accepts."""
    slug = re.sub(r"[^A-Za-z0-9._-]+", "-", f"{stage}-{histogram}").strip("-.")
    return f"{slug or 'latency'}.svg"


def _x(percentile: float) -> float:
    # 100 % maps to the largest finite tick, one decade past 99.999 %.
    return 1.0 / max(1.0 - percentile / 100.0, 1e-6)


def _plot_one(latencies: Latencies, name: str, title: str, path: Path) -> Path:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    histogram = latencies.histogram(name)
    values = histogram.get_percentile_to_value_dict(list(_PERCENTILES))
    xs = [_x(p) for p in _PERCENTILES]
    ys = [values[p] / 1e6 for p in _PERCENTILES]
    summary = latencies.summary(name)

    # Figure directly (not pyplot): no global state, nothing to close, safe from any thread.
    figure = Figure(figsize=(7.0, 3.6), layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    axes.plot(xs, ys, marker=".", linewidth=1.5)
    axes.set_xscale("log")
    axes.set_xticks([_x(p) for p, _ in _TICKS], [label for _, label in _TICKS])
    axes.set_xlim(1.0, _x(100.0))
    axes.set_ylim(bottom=0)
    axes.set_xlabel("percentile")
    axes.set_ylabel("latency (ms)")
    axes.grid(True, which="major", alpha=0.4)
    axes.set_title(title, fontsize=10)
    axes.text(
        0.01,
        0.97,
        f"n={summary.count}  p50={summary.p50_ms:.2f}  p95={summary.p95_ms:.2f}  "
        f"p99={summary.p99_ms:.2f}  max={summary.max_ms:.2f} ms",
        transform=axes.transAxes,
        fontsize=8,
        verticalalignment="top",
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    # A fixed hash salt and no date keep the SVG byte-stable for the same data.
    figure.savefig(path, format="svg", metadata={"Date": None})
    return path


def plot_latencies(
    latencies: Latencies, out_dir: Path, *, stage: str, target: str = "", min_count: int = 1
) -> list[Path]:
    """One percentile-curve SVG per histogram of ``latencies`` with at least ``min_count`` values."""
    import matplotlib

    written: list[Path] = []
    with matplotlib.rc_context({"svg.hashsalt": "locker-harness", "svg.fonttype": "none"}):
        for name in latencies.names()[:MAX_PLOTS_PER_STAGE]:
            if latencies.count(name) < max(min_count, 1):
                continue
            title = f"{stage}: {name}" + (f"  ({target})" if target else "")
            written.append(_plot_one(latencies, name, title, out_dir / plot_name(stage, name)))
    return written
