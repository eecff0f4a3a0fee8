"""Latency plots: an overview of the run over time, HdrHistogram's percentile curves, one page of both.

**Overview** (``overview.svg``, a run with a timeline: the load stage's). One panel per group of
steps (the delivery end to end, its steps, browsing, contention, ...): p50, p95 and p99 per
interval of wall-clock time on the left axis, requests (and failures) per second on the right, the
SLO gates that bound the group as dashed lines, and the stalls the target was told to make shaded.
An interval's percentile is drawn only where its requests resolve it (``harness.metrics.resolvable``).

**Percentile curves** (one SVG per histogram). The x axis is ``1 / (1 - percentile)`` on a log
scale, as HdrHistogram's own plotter draws it, so the tail (99 %, 99.9 %) gets as much room as the
median: that is where lockers time out. A curve stops where its samples stop resolving it, at
``1 - 1/n``, and ends with the maximum there: nine samples say nothing of the 99.999th percentile.

**Page** (``index.html``): the overview and every curve in one self-contained file.
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

import base64
import html
import math
import re
import textwrap
from collections.abc import Sequence
from contextlib import AbstractContextManager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from harness.metrics import Latencies, Timeline, TimelinePoint, resolvable
from harness.report._results import LatencyLimit, Window

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D
    from matplotlib.text import Text

__all__ = [
    "MAX_PLOTS_PER_STAGE",
    "OVERVIEW",
    "PLOTS_PAGE",
    "plot_latencies",
    "plot_name",
    "plot_overview",
    "write_page",
]

#: The overview figure's and the page's file names in the plots folder.
OVERVIEW: Final = "overview.svg"
PLOTS_PAGE: Final = "index.html"

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
        # Up to where the samples reach (at least 90 %), with room for the last point's marker.
        self.axes.set_xlim(0.0, max(max(xs, default=0.0), 1.0) + 0.15)
        top = max(ys_ms, default=0.0)
        # Headroom for the note in the top left corner; a flat zero curve still gets an axis.
        self.axes.set_ylim(0.0, top * 1.15 if top > 0 else 1.0)
        self.title.set_text(title)
        self.note.set_text(note)
        path.parent.mkdir(parents=True, exist_ok=True)
        # A fixed hash salt and no date keep the SVG byte-stable for the same data.
        self.figure.savefig(path, format="svg", metadata={"Date": None})
        return path


def _curve(latencies: Latencies, name: str, count: int) -> tuple[list[float], list[float], float]:
    """The curve's points up to the resolution ``count`` samples give, then the maximum there; and that limit."""
    limit = 100.0 * (1.0 - 1.0 / count)
    shown = [p for p in _PERCENTILES if resolvable(p, count) and p < limit]
    xs = [_x(p) for p in shown] + [_x(limit)]
    ys = [latencies.percentile_ms(name, p) for p in shown] + [latencies.percentile_ms(name, 100.0)]
    return xs, ys, limit


def plot_latencies(
    latencies: Latencies, out_dir: Path, *, stage: str, target: str = "", min_count: int = 1
) -> list[Path]:
    """One percentile-curve SVG per histogram of ``latencies`` with at least ``min_count`` values."""
    names = [name for name in latencies.names() if latencies.count(name) >= max(min_count, 1)]
    if not names:
        return []  # no matplotlib import, no figure, for a stage without timings
    written: list[Path] = []
    with _stable_svg():
        curve = _PercentileCurve()
        for name in names[:MAX_PLOTS_PER_STAGE]:
            summary = latencies.summary(name)
            xs, ys, limit = _curve(latencies, name, summary.count)
            title = f"{stage}: {name}" + (f"  ({target})" if target else "")
            note = (
                f"n={summary.count}  p50={summary.p50_ms:.2f}  p95={summary.p95_ms:.2f}  "
                f"p99={summary.p99_ms:.2f}  max={summary.max_ms:.2f} ms  (cut at {limit:.4g} %: 1 - 1/n)"
            )
            written.append(curve.save(xs, ys, title=title, note=note, path=out_dir / plot_name(stage, name)))
    return written


def _stable_svg() -> AbstractContextManager[Any]:
    """matplotlib's settings for every plot: a fixed hash salt keeps the SVG's ids stable, text stays
    text (the series' names can be found in the file), no "+1e4" offset on the y axis."""
    import matplotlib

    return matplotlib.rc_context(
        {"svg.hashsalt": "locker-harness", "svg.fonttype": "none", "axes.formatter.useoffset": False}
    )


#: The overview's panels, in this order when present; other groups follow by name.
_GROUP_ORDER: Final = ("delivery (end to end)", "delivery", "browsing", "contention", "authenticate", "cleanup")
_SERIES: Final = (("p50", "p50_ms", "-", 1.2), ("p95", "p95_ms", "-", 1.4), ("p99", "p99_ms", "-", 1.8))
#: A group of steps gets a panel from this many requests (enough for its p95): a token fetched once
#: per process, or a cleanup after the stop, is a row of the tables, not a curve over time.
_MIN_PANEL_REQUESTS: Final = 20
#: Characters of a legend line: the right margin holds this many at the legends' size.
_LEGEND_CHARS: Final = 24
#: An SLO line far above the data would squash it flat: past this many times the data's top it is
#: named in the panel's corner instead of drawn.
_LIMIT_HEADROOM: Final = 3.0


def _ordered(groups: Sequence[str]) -> list[str]:
    known = [group for group in _GROUP_ORDER if group in groups]
    return known + sorted(group for group in groups if group not in _GROUP_ORDER)


def _values(points: Sequence[TimelinePoint], attribute: str) -> list[float]:
    return [math.nan if getattr(p, attribute) is None else float(getattr(p, attribute)) for p in points]


def plot_overview(
    timeline: Timeline,
    path: Path,
    *,
    title: str,
    limits: Sequence[LatencyLimit] = (),
    windows: Sequence[Window] = (),
) -> Path | None:
    """The run over time, a panel per group of steps (see the module's docstring); ``None`` for an empty timeline."""
    span = timeline.span()
    groups = [
        group
        for group in _ordered(timeline.groups())
        if sum(point.count for point in timeline.points(group)) >= _MIN_PANEL_REQUESTS
    ]
    if span is None or not groups:
        return None
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    start = span[0]
    with _stable_svg():
        figure = Figure(figsize=(11.0, 1.0 + 2.3 * len(groups)))
        FigureCanvasAgg(figure)
        figure.subplots_adjust(
            left=0.07,
            right=0.78,
            top=1.0 - 0.55 / figure.get_figheight(),
            bottom=0.5 / figure.get_figheight(),
            hspace=0.45,
        )
        figure.suptitle(title, fontsize=10)
        shared = None
        for row, group in enumerate(groups):
            axes = figure.add_subplot(len(groups), 1, row + 1, sharex=shared)
            shared = shared or axes
            _panel(axes, group, timeline.points(group), start, limits, windows)
            if row == len(groups) - 1:
                axes.set_xlabel("seconds since the first request")
        path.parent.mkdir(parents=True, exist_ok=True)
        # The legends fit in the right margin as laid out (the longest label, an SLO gate's, ends
        # short of the edge): "tight" would measure every artist in a second draw, 40 % of the figure's time.
        figure.savefig(path, format="svg", metadata={"Date": None})
    return path


def _legend(label: str) -> str:
    """A legend label folded to the right margin's width (the figure is laid out once, not measured)."""
    return "\n".join(textwrap.wrap(label, _LEGEND_CHARS, break_on_hyphens=False)) or label


def _panel(
    axes: Axes,
    group: str,
    points: Sequence[TimelinePoint],
    start: float,
    limits: Sequence[LatencyLimit],
    windows: Sequence[Window],
) -> None:
    """One group's panel: percentiles, rates, its SLO lines and the marked windows."""
    xs = [p.start_s - start + p.width_s / 2 for p in points]
    top = 0.0
    for label, attribute, style, width in _SERIES:
        ys = _values(points, attribute)
        line = axes.plot(xs, ys, style, marker=".", markersize=3, linewidth=width, label=label)[0]
        line.set_gid(f"{group}: {label}")
        top = max([top, *(y for y in ys if not math.isnan(y))])
    named_above: list[str] = []
    whole_flows = group.endswith("(end to end)")
    for limit in limits:
        # An overall gate bounds every request, and a flow's end to end is many requests: not its line.
        if limit.group != group and (limit.group is not None or whole_flows):
            continue
        text = f"{limit.name} {limit.limit_ms:g} ms"
        if top and limit.limit_ms > top * _LIMIT_HEADROOM:
            named_above.append(text)
            continue
        line = axes.axhline(limit.limit_ms, color="tab:red", linestyle="--", linewidth=1.0, label=_legend(text))
        line.set_gid(f"{group}: {text}")
        top = max(top, limit.limit_ms)
    for index, window in enumerate(windows):
        shade = axes.axvspan(
            window.start_s - start, window.end_s - start, color="tab:orange", alpha=0.18, linewidth=0,
            label=_legend(window.label) if index == 0 else None,
        )  # fmt: skip
        shade.set_gid(f"{group}: {window.label} #{index + 1}")
    axes.set_ylim(0.0, top * 1.15 if top > 0 else 1.0)
    axes.set_ylabel("ms")
    axes.set_title(group, fontsize=9, loc="left")
    axes.grid(True, alpha=0.3)
    rates = axes.twinx()
    unit = "flows/s" if whole_flows else "requests/s"
    rate = rates.step(xs, [p.per_s for p in points], where="mid", color="0.55", linewidth=1.0, label=unit)[0]
    rate.set_gid(f"{group}: {unit}")
    failed = [p.failures / p.width_s for p in points]
    if any(failed):
        line = rates.step(xs, failed, where="mid", color="tab:red", linewidth=1.0, label="failures/s")[0]
        line.set_gid(f"{group}: failures/s")
    rates.set_ylim(0.0, max(max((p.per_s for p in points), default=0.0), max(failed, default=0.0), 1.0) * 1.15)
    rates.set_ylabel("per s", color="0.4")
    handles, labels = axes.get_legend_handles_labels()
    more_handles, more_labels = rates.get_legend_handles_labels()
    axes.legend(
        handles + more_handles,
        labels + more_labels,
        loc="upper left",
        bbox_to_anchor=(1.07, 1.0),
        fontsize=7,
        frameon=False,
    )
    if named_above:
        axes.text(
            0.01,
            0.95,
            "above: " + "; ".join(named_above),
            transform=axes.transAxes,
            fontsize=7,
            verticalalignment="top",
        )


def _image(path: Path, title: str) -> str:
    """A figure as an image inside the page (its own document: the SVGs' ids never meet)."""
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    caption = html.escape(title)
    image = f'<img alt="{caption}" src="data:image/svg+xml;base64,{data}">'
    return f"<figure>{image}<figcaption>{caption}</figcaption></figure>"


def write_page(out_dir: Path, *, title: str, overview: Path | None, curves: Sequence[tuple[str, Path]]) -> Path:
    """``index.html``: the overview and every percentile curve in one file that opens offline."""
    sections = []
    if overview is not None:
        sections.append(
            f"<h2>Over time</h2>{_image(overview, 'overview: requests/s and p50/p95/p99 per group of steps')}"
        )
    if curves:
        sections.append("<h2>Percentile curves</h2>" + "".join(_image(path, name) for name, path in curves))
    body = "".join(sections) or "<p>No stage timed enough requests to draw.</p>"
    page = (
        "<!DOCTYPE html><html lang=en><head><meta charset=utf-8>"
        f"<title>{html.escape(title)}</title>"
        "<style>body{font:14px sans-serif;margin:1.5em;max-width:1100px}"
        "figure{margin:0 0 1.5em}img{max-width:100%}figcaption{color:#555;font-size:12px}</style>"
        f"</head><body><h1>{html.escape(title)}</h1>{body}</body></html>\n"
    )
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / PLOTS_PAGE
    path.write_text(page, encoding="utf-8")
    return path
