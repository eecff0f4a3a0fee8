"""The run's final table for a terminal: stage, verdict, key figures, time.

It stays readable in a 100-column terminal: the stage, verdict and time columns never wrap and
a light frame leaves the rest to the key figures, which wrap between figures, never inside one
("p99 ms 13.3" stays on one line). A reason keeps its first line, without module paths, whole
(it wraps: a reason cut short hides what to do about it), and figures that count nothing
(``failed 0``) are left out: the verdict beside them says so already. ``summary.md`` and
``summary.json`` keep every figure and the whole reason.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from typing import Final

from rich import box
from rich.cells import cell_len
from rich.console import Console, ConsoleOptions, Group, RenderableType
from rich.measure import Measurement
from rich.table import Table
from rich.text import Text

from harness.redaction import Redactor
from harness.report._results import Figure, GateLine, RunResult, StageResult, Verdict
from harness.report._summary import format_figures

__all__ = ["VERDICT_STYLES", "fit_table", "gate_table", "run_table", "table_figures"]

VERDICT_STYLES: Final = {
    Verdict.PASSED: "bold green",
    Verdict.FAILED: "bold red",
    Verdict.BREACHED: "bold yellow",
    Verdict.INFRASTRUCTURE: "bold magenta",
    Verdict.SKIPPED: "dim",
}

#: ``schemathesis.core.failures.FailureGroup`` reads as ``FailureGroup``: the class says what happened.
_QUALIFIED_NAME: Final = re.compile(r"\b(?:[a-z_][a-z0-9_]*\.)+(?=[A-Z]\w*)")


def _counts_nothing(value: Figure) -> bool:
    if isinstance(value, str):
        return value.strip() in ("0", "0.0")
    return value == 0


def _short_reason(reason: str) -> str:
    lines = reason.strip().splitlines()
    return _QUALIFIED_NAME.sub("", lines[0].strip()) if lines else ""


def table_figures(stage: StageResult, *, redactor: Redactor) -> tuple[str, list[str]]:
    """A stage's reason (its first line, whole) and its key figures that count something, as the table
    shows them; redacted before module paths are taken out of the reason."""
    figures = [format_figures({key: value}) for key, value in stage.figures.items() if not _counts_nothing(value)]
    return _short_reason(redactor.text(stage.reason)), [redactor.text(figure) for figure in figures]


class _Figures:
    """Figures joined by commas that wrap only between figures; one wider than the column folds."""

    def __init__(self, figures: Sequence[str]) -> None:
        self._pieces = [figure + ("," if index < len(figures) - 1 else "") for index, figure in enumerate(figures)]

    def __rich_measure__(self, console: Console, options: ConsoleOptions) -> Measurement:
        widest = max((cell_len(piece) for piece in self._pieces), default=0)
        return Measurement(min(widest, options.max_width), cell_len(" ".join(self._pieces)))

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> Iterator[Text]:
        line = ""
        for piece in self._pieces:
            joined = f"{line} {piece}" if line else piece
            if line and cell_len(joined) > options.max_width:
                yield Text(line, overflow="fold")
                line = piece
            else:
                line = joined
        if line:
            yield Text(line, overflow="fold")


def _cell(stage: StageResult, redactor: Redactor) -> RenderableType:
    reason, figures = table_figures(stage, redactor=redactor)
    parts: list[RenderableType] = []
    if reason:
        parts.append(Text(reason))
    if figures:
        parts.append(_Figures(figures))
    return Group(*parts) if len(parts) > 1 else parts[0] if parts else ""


def run_table(run: RunResult, *, redactor: Redactor) -> Table:
    """Stage, verdict, key figures and time for each stage, the overall verdict in the caption."""
    verdict = run.verdict
    refuted = len(run.findings())
    table = Table(
        title=f"locker-harness run {run.run_id} against {redactor.text(run.target.name)}",
        caption=Text.assemble(
            "verdict: ",
            (verdict.value + (" (interrupted)" if run.interrupted else ""), VERDICT_STYLES[verdict]),
            f", exit code {int(run.exit_code)}",
            (f", {refuted} assumption{'s' if refuted != 1 else ''} refuted (see below)", "bold cyan")
            if refuted
            else "",
        ),
        title_justify="left",
        caption_justify="left",
        box=box.SIMPLE_HEAD,
        show_edge=False,
    )
    table.add_column("stage", no_wrap=True)
    table.add_column("verdict", no_wrap=True)
    table.add_column("key figures", ratio=1)
    table.add_column("time", justify="right", no_wrap=True)
    for stage in run.stages:
        table.add_row(
            stage.name,
            Text(stage.verdict.value, style=VERDICT_STYLES[stage.verdict]),
            _cell(stage, redactor),
            f"{stage.duration_ns / 1e9:.1f} s",
        )
    return table


_MARK_STYLES: Final = {"✓": "bold green", "✗": "bold red", "-": "dim"}


def gate_table(gates: Sequence[GateLine], *, title: str = "gates") -> Table:
    """Every gate, its limit, its measured value and ✓ or ✗, as k6 prints its thresholds."""
    table = Table(title=title, title_justify="left", box=box.SIMPLE_HEAD, show_edge=False)
    table.add_column("", no_wrap=True)
    table.add_column("gate", no_wrap=True)
    table.add_column("limit", justify="right", no_wrap=True)
    table.add_column("measured", justify="right", no_wrap=True)
    table.add_column("note")
    for gate in gates:
        table.add_row(Text(gate.mark, style=_MARK_STYLES[gate.mark]), gate.name, gate.limit, gate.measured, gate.note)
    return table


def fit_table(table: Table, console: Console) -> Table:
    """A table at its natural width when the output is not a terminal (CI logs, files).

    rich assumes 80 columns there and would wrap or cut every cell; a log has no right edge.
    """
    if not console.is_terminal:
        table.width = Console(width=10_000).measure(table).maximum
    return table
