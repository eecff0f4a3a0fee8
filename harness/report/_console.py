"""The run's final table for a terminal: stage, verdict, key figures, time."""

from __future__ import annotations

from typing import Final

from rich.console import Console
from rich.table import Table
from rich.text import Text

from harness.redaction import Redactor
from harness.report._results import RunResult, Verdict
from harness.report._summary import format_figures

__all__ = ["VERDICT_STYLES", "fit_table", "run_table"]

VERDICT_STYLES: Final = {
    Verdict.PASSED: "bold green",
    Verdict.FAILED: "bold red",
    Verdict.BREACHED: "bold yellow",
    Verdict.INFRASTRUCTURE: "bold magenta",
    Verdict.SKIPPED: "dim",
}


def run_table(run: RunResult, *, redactor: Redactor) -> Table:
    """Stage, verdict, key figures and time for each stage, the overall verdict in the caption."""
    verdict = run.verdict
    table = Table(
        title=f"locker-harness run {run.run_id} against {redactor.text(run.target.name)}",
        caption=Text.assemble(
            "verdict: ",
            (verdict.value + (" (interrupted)" if run.interrupted else ""), VERDICT_STYLES[verdict]),
            f", exit code {int(run.exit_code)}",
        ),
        title_justify="left",
        caption_justify="left",
    )
    table.add_column("stage")
    table.add_column("verdict")
    table.add_column("key figures", overflow="fold")
    table.add_column("time", justify="right")
    for stage in run.stages:
        figures = format_figures(stage.figures)
        if stage.reason:
            figures = f"{stage.reason}; {figures}" if figures else stage.reason
        table.add_row(
            stage.name,
            Text(stage.verdict.value, style=VERDICT_STYLES[stage.verdict]),
            redactor.text(figures),
            f"{stage.duration_ns / 1e9:.1f} s",
        )
    return table


def fit_table(table: Table, console: Console) -> Table:
    """A table at its natural width when the output is not a terminal (CI logs, files).

    rich assumes 80 columns there and would wrap or cut every cell; a log has no right edge.
    """
    if not console.is_terminal:
        table.width = Console(width=10_000).measure(table).maximum
    return table
