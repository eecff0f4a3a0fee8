"""``locker-harness history`` and ``locker-harness compare [RUN] [RUN]``: this release against the last.

``history`` lists recorded runs, newest first. ``compare`` puts two runs' per-step p95, p99 and
failures side by side (default: the last two runs; one RUN: it against the latest) and flags a
step whose p95 or p99 grew by more than ``--tolerance`` *and* ``--floor-ms``, whose failures grew,
or that the later run lacks (and a stage that ran before and not now), so CI can gate on it: exit 1
when failures grew, else 3 when only latency grew, else 4 when only steps or stages went missing.
Steps only one run was asked to take (a load run's cleanup after its stop, a stage run in another
mode) are shown as not comparable and never flagged.

``--json`` prints one JSON document on stdout instead of the table (``harness.history`` documents
its fields: ``RunRecord.as_json`` and ``Comparison.as_json``); the exit codes stay the same.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer
from rich import box
from rich.table import Table
from rich.text import Text

from harness.cli._common import ConfigOption, Output, QuietOption, VerboseOption, run_command
from harness.cli._target import command_settings
from harness.errors import ExitCode
from harness.history import (
    DEFAULT_FLOOR_MS,
    JSON_SCHEMA,
    Comparison,
    History,
    RunRecord,
    StepChange,
    StepFigures,
    Tolerance,
    compare,
    parse_tolerance,
)
from harness.report import VERDICT_STYLES, Verdict

__all__ = ["command", "compare_command"]


def _verdict(verdict: Verdict) -> Text:
    return Text(verdict.value, style=VERDICT_STYLES[verdict])


def history_table(records: list[RunRecord], out: Output) -> Table:
    table = Table(title="run history (newest first)", title_justify="left", box=box.SIMPLE_HEAD)
    table.add_column("run", no_wrap=True)
    table.add_column("started (UTC)", no_wrap=True)
    table.add_column("target", overflow="fold")
    table.add_column("verdict", no_wrap=True)
    table.add_column("exit", justify="right")
    table.add_column("time", justify="right", no_wrap=True)
    table.add_column("stages (failures)")
    for record in records:
        stages = Text()
        for index, (name, verdict, failures) in enumerate(record.stages):
            if index:
                stages.append(" ")
            stages.append(name, style=VERDICT_STYLES[verdict])
            if failures:
                stages.append(f"({failures})", style="red")
        table.add_row(
            record.run_id,
            f"{record.started_at:%Y-%m-%d %H:%M}",
            out.redactor.text(record.target),
            _verdict(record.verdict),
            str(record.exit_code),
            f"{record.duration_ms / 1000:.1f} s",
            stages,
        )
    return table


def _ms(figures: StepFigures | None, attribute: str) -> str:
    if figures is None or not figures.count:
        return "-"
    return f"{getattr(figures, attribute):.2f}"


def _side_by_side(change: StepChange, quantile: str) -> tuple[Text, Text]:
    """``before → after`` and the relative change, red when this quantile regressed."""
    attribute = f"{quantile}_ms"
    flagged = quantile in change.regressions
    style = "bold red" if flagged else ""
    pair = Text(f"{_ms(change.before, attribute)} → {_ms(change.after, attribute)}", style=style)
    delta = Text("")
    before, after = change.before, change.after
    if before is not None and after is not None and before.count and after.count:
        old, new = getattr(before, attribute), getattr(after, attribute)
        if old > 0:
            delta = Text(f"{(new - old) / old:+.0%}", style="bold red" if flagged else "dim")
    return pair, delta


def _failures(change: StepChange) -> Text:
    before = change.before.failures if change.before is not None else 0
    after = change.after.failures if change.after is not None else 0
    return Text(f"{before} → {after}", style="bold red" if "failures" in change.regressions else "")


def _flag(change: StepChange) -> Text:
    if change.not_comparable:
        return Text(f"not comparable: {change.not_comparable}", style="dim")
    if "missing" in change.regressions:
        return Text("MISSING", style="bold red")
    return Text("REGRESSED", style="bold red") if change.regressed else Text("")


def comparison_table(comparison: Comparison) -> Table:
    before, after = comparison.before, comparison.after
    tolerance = comparison.tolerance
    table = Table(
        title=f"{before.run_id} ({before.verdict.value}) → {after.run_id} ({after.verdict.value})",
        caption=f"flagged: p95/p99 up by more than {tolerance.relative:.0%} and {tolerance.floor_ms:g} ms, "
        "more failures, or a step the later run lacks; steps only one run was asked to take are not compared",
        title_justify="left",
        caption_justify="left",
        box=box.SIMPLE_HEAD,
    )
    table.add_column("stage/step", no_wrap=True)
    table.add_column("n", justify="right", no_wrap=True)
    table.add_column("p95 ms", justify="right", no_wrap=True)
    table.add_column("", justify="right", no_wrap=True)
    table.add_column("p99 ms", justify="right", no_wrap=True)
    table.add_column("", justify="right", no_wrap=True)
    table.add_column("failures", justify="right", no_wrap=True)
    table.add_column("", overflow="fold")
    for change in comparison.changes:
        counts = "/".join(str(f.count) if f is not None else "-" for f in (change.before, change.after))
        table.add_row(
            f"{change.stage}/{change.step}",
            counts,
            *_side_by_side(change, "p95"),
            *_side_by_side(change, "p99"),
            _failures(change),
            _flag(change),
        )
    return table


JsonOption = Annotated[
    bool, typer.Option("--json", help="Print one JSON document on stdout instead of the table (for machines).")
]


def _print_json(out: Output, document: dict[str, Any]) -> None:
    """One JSON document on stdout, through the redactor by key and value, never wrapped."""
    typer.echo(json.dumps(out.redactor.value(document), indent=2, ensure_ascii=False))


def command(
    context: typer.Context,
    limit: Annotated[
        int, typer.Option("--limit", "-n", help="How many runs to list (at most 100,000).", min=1, max=100_000)
    ] = 20,
    as_json: JsonOption = False,
    config: ConfigOption = None,
    verbose: VerboseOption = False,
) -> None:
    """List recorded runs, newest first: verdict, exit code, time and each stage's verdict."""

    def body(out: Output) -> int:
        settings = command_settings(context)
        with History.open(settings.state_dir) as history:
            records = history.runs(limit)
        if as_json:
            _print_json(out, {"schema": JSON_SCHEMA, "runs": [record.as_json() for record in records]})
            return ExitCode.OK
        if not records:
            out.say(f"no runs recorded yet in {settings.state_dir}: run `locker-harness run` first")
            return ExitCode.OK
        out.print(history_table(records, out))
        return ExitCode.OK

    run_command(body, "history", verbose=verbose)


def compare_command(
    context: typer.Context,
    runs: Annotated[
        list[str] | None,
        typer.Argument(help="Zero, one or two run ids, unique prefixes or random tails (default: the last two runs)."),
    ] = None,
    tolerance: Annotated[
        str, typer.Option("--tolerance", help="Relative growth of p95/p99 allowed, e.g. 20% or 0.2.")
    ] = "20%",
    floor_ms: Annotated[
        float,
        typer.Option("--floor-ms", help="Growth in ms below which a change is noise, not a regression.", min=0),
    ] = DEFAULT_FLOOR_MS,
    as_json: JsonOption = False,
    config: ConfigOption = None,
    quiet: QuietOption = False,
    verbose: VerboseOption = False,
) -> None:
    """Compare two runs step by step: exit 1 more failures, 3 slower beyond the tolerance, 4 steps gone."""

    def body(out: Output) -> int:
        allowed = Tolerance(parse_tolerance(tolerance), floor_ms)
        settings = command_settings(context)
        with History.open(settings.state_dir) as history:
            before, after = history.pair(runs or [])
        comparison = compare(before, after, allowed)
        if as_json:
            _print_json(out, comparison.as_json())
            return comparison.exit_code
        out.print(comparison_table(comparison))
        regressions = comparison.regressions
        if regressions:
            names = ", ".join(f"{c.stage}/{c.step} ({'+'.join(c.regressions)})" for c in regressions)
            out.say(f"{len(regressions)} regression(s): {names}")
        if comparison.missing_stages:
            gone = ", ".join(comparison.missing_stages)
            out.say(f"stage(s) that ran in {before.run_id} and not in {after.run_id}: {gone}")
        if comparison.exit_code is ExitCode.OK:
            out.say("no regression beyond the tolerance")
        found = f"{len(regressions)} regression(s)" if regressions else "no regression beyond the tolerance"
        if comparison.missing_stages:
            found += f", {len(comparison.missing_stages)} stage(s) gone"
        out.verdict(f"compare {before.run_id} -> {after.run_id}: {found}, exit {int(comparison.exit_code)}")
        return comparison.exit_code

    run_command(body, "compare", verbose=verbose, quiet=quiet)
