"""Latency plots: HdrHistogram's percentile distribution curve, one SVG per histogram.

The x axis is ``1 / (1 - percentile)`` on a log scale, as HdrHistogram's own plotter draws it,
so the tail (99 %, 99.9 %) gets as much room as the median: that is where lockers time out.
Figures are drawn the object-oriented way on matplotlib's Agg canvas, never through pyplot: no
display, no GUI toolkit, no global backend switched under a user's feet, safe in CI and threads.
matplotlib is imported on the first plot, so loading the reports costs nothing.

A run draws a plot per BLE phase and per load step (thirty or more), so drawing is kept cheap:
one figure is built per call and only its line, limits and texts change from plot to plot; the
margins are fixed (no layout engine measuring every label twice), and the x axis is linear in
``log10(1 / (1 - percentile))`` with six fixed ticks instead of a log scale's minor ticks.
That took a plot from about 300 ms to about 25 ms (measured on 2 cores, 30 plots).
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Final

from harness.metrics import Latencies

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D
    from matplotlib.text import Text

__all__ = ["MAX_PLOTS_PER_STAGE", "plot_latencies", "plot_name"]

#: Percentiles the curve is drawn through; more points where the tail bends.
_PERCENTILES: Final = (
    0.0, 10.0, 20.0, 30.0, 40.0, 50.0, 60.0, 70.0, 75.0, 80.0, 85.0, 90.0, 92.5, 95.0, 96.0, 97.0, 97.5,
    98.0, 98.5, 99.0, 99.25, 99.5, 99.75, 99.9, 99.95, 99.99, 99.999, 100.0,
)  # fmt: skip
_TICKS: Final = ((0.0, "0%"), (90.0, "90%"), (99.0, "99%"), (99.9, "99.9%"), (99.99, "99.99%"), (99.999, "99.999%"))
#: A run has a handful of phases and steps; a stage with hundreds of names is plotted up to this.
MAX_PLOTS_PER_STAGE: Final = 40
#: Fixed margins (fractions of the figure) that fit the labels of a 7 x 3.6 inch figure.
_MARGINS: Final = {"left": 0.115, "right": 0.98, "bottom": 0.14, "top": 0.91}


def plot_name(stage: str, histogram: str) -> str:
    """A file name for a stage's histogram that any file system accepts."""
    slug = re.sub(r"[^A-Za-z0-9._-]+", "-", f"{stage}-{histogram}").strip("-.")
    return f"{slug or 'latency'}.svg"


def _x(percentile: float) -> float:
    """Decades of ``1 / (1 - percentile)``: 90 % is 1, 99 % is 2; 100 % is one decade past 99.999 %."""
    return math.log10(1.0 / max(1.0 - percentile / 100.0, 1e-6))


class _PercentileCurve:
    """One figure whose curve, limits and texts are replaced for each histogram it saves."""

    def __init__(self) -> None:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
        from matplotlib.ticker import NullLocator

        # Figure directly (not pyplot): no global state, nothing to close, safe from any thread.
        self.figure: Figure = Figure(figsize=(7.0, 3.6))
        FigureCanvasAgg(self.figure)
        self.figure.subplots_adjust(**_MARGINS)
        axes: Axes = self.figure.add_subplot()
        axes.set_xticks([_x(p) for p, _ in _TICKS], [label for _, label in _TICKS])
        axes.xaxis.set_minor_locator(NullLocator())
        axes.set_xlim(0.0, _x(100.0))
        axes.set_xlabel("percentile")
        axes.set_ylabel("latency (ms)")
        # Fixed places for the axis labels and the title: matplotlib would otherwise measure
        # every tick label on every save to push them clear of it.
        axes.xaxis.set_label_coords(0.5, -0.105)
        axes.yaxis.set_label_coords(-0.095, 0.5)
        axes.grid(True, which="major", alpha=0.4)
        self.line: Line2D = axes.plot([], [], marker=".", linewidth=1.5)[0]
        self.title: Text = axes.set_title("", fontsize=10, y=1.015)
        self.note: Text = axes.text(0.01, 0.97, "", transform=axes.transAxes, fontsize=8, verticalalignment="top")
        self.axes = axes

    def save(self, xs: Sequence[float], ys_ms: Sequence[float], *, title: str, note: str, path: Path) -> Path:
        self.line.set_data(xs, ys_ms)
        top = max(ys_ms, default=0.0)
        # Headroom for the note in the top left corner; a flat zero curve still gets an axis.
        self.axes.set_ylim(0.0, top * 1.15 if top > 0 else 1.0)
        self.title.set_text(title)
        self.note.set_text(note)
        path.parent.mkdir(parents=True, exist_ok=True)
        # A fixed hash salt and no date keep the SVG byte-stable for the same data.
        self.figure.savefig(path, format="svg", metadata={"Date": None})
        return path


def plot_latencies(
    latencies: Latencies, out_dir: Path, *, stage: str, target: str = "", min_count: int = 1
) -> list[Path]:
    """One percentile-curve SVG per histogram of ``latencies`` with at least ``min_count`` values."""
    names = [name for name in latencies.names() if latencies.count(name) >= max(min_count, 1)]
    if not names:
        return []  # no matplotlib import, no figure, for a stage without timings
    import matplotlib

    xs = [_x(p) for p in _PERCENTILES]
    written: list[Path] = []
    # A fixed hash salt keeps the SVG's ids stable; text stays text; no "+1e4" offset on the y axis.
    with matplotlib.rc_context(
        {"svg.hashsalt": "locker-harness", "svg.fonttype": "none", "axes.formatter.useoffset": False}
    ):
        curve = _PercentileCurve()
        for name in names[:MAX_PLOTS_PER_STAGE]:
            summary = latencies.summary(name)
            ys = [latencies.percentile_ms(name, p) for p in _PERCENTILES]
            title = f"{stage}: {name}" + (f"  ({target})" if target else "")
            note = (
                f"n={summary.count}  p50={summary.p50_ms:.2f}  p95={summary.p95_ms:.2f}  "
                f"p99={summary.p99_ms:.2f}  max={summary.max_ms:.2f} ms"
            )
            written.append(curve.save(xs, ys, title=title, note=note, path=out_dir / plot_name(stage, name)))
    return written
