"""``locker-harness bench``: the load benchmarks P1, P2 and P5, each a ratio measured in this one run.

Starts its own virtual sandbox in a child process (and, for P2, the same server stack answering a
static JSON, started the same way), alternates the compared runs over ``--rounds`` rounds, and reports the ratio of the
medians with the p95 and p99 of each side (and, for P2, requests per server CPU-second, which
other processes on the machine do not skew). Figures go to ``reports/bench-<id>/bench.json``.
Exit 0 when the benchmarks ran (``--strict``: 3 when a goal is missed), 4 when one could not run.
"""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from harness.cli._common import ConfigOption, Output, VerboseOption, run_command
from harness.cli._target import command_settings
from harness.config import Target
from harness.errors import ExitCode, UsageError
from harness.load import BENCHMARKS, BenchOptions, medians_table, run_benchmarks
from harness.report import new_run_id

__all__ = ["command"]


def command(
    context: typer.Context,
    rounds: Annotated[int, typer.Option("--rounds", help="Rounds of each comparison (medians over them).", min=1)] = 3,
    seconds: Annotated[
        float, typer.Option("--seconds", help="Seconds of each P1 and P2 run.", min=1.0, max=600.0)
    ] = 5.0,
    only: Annotated[
        list[str] | None, typer.Option("--only", help="Run only these benchmarks (repeatable): P1, P2, P5.")
    ] = None,
    strict: Annotated[bool, typer.Option("--strict", help="Exit 3 when a benchmark misses its goal.")] = False,
    config: ConfigOption = None,
    verbose: VerboseOption = False,
) -> None:
    """Measure the load benchmarks on loopback: client cost (P1), sandbox cost (P2), coordinated omission (P5)."""

    def body(out: Output) -> int:
        chosen = tuple(name.strip().upper() for value in (only or BENCHMARKS) for name in value.split(","))
        unknown = sorted(set(chosen) - set(BENCHMARKS))
        if unknown:
            raise UsageError(f"unknown benchmark(s) {', '.join(unknown)}; known: {', '.join(BENCHMARKS)}")
        settings = command_settings(context)
        options = BenchOptions(rounds=rounds, seconds=seconds, only=chosen)
        folder = settings.reports_dir / f"bench-{new_run_id()}"
        out.say(f"bench: {', '.join(chosen)}, {rounds} round(s) on loopback; runs under {folder}")
        comparisons = run_benchmarks(settings.with_target(Target.local()), folder, options, say=out.say)
        table = Table(title="load benchmarks (medians over the rounds; a / b as named)", title_justify="left")
        rows = medians_table(comparisons)
        for column in rows[0] if rows else ():
            table.add_column(column, justify="left" if column == "benchmark" else "right")
        for row in rows:
            table.add_row(*row.values())
        out.print(table)
        out.say(f"figures: {folder / 'bench.json'}")
        missed = [comparison.key for comparison in comparisons if not comparison.met]
        if missed:
            out.say(f"goal missed: {', '.join(missed)}")
        return ExitCode.SLO_BREACH if strict and missed else ExitCode.OK

    run_command(body, "bench", verbose=verbose)
