"""``locker-harness load``: Locust drives deliveries, browsing and contention against the target.

Closed model with ``--users N`` (users run flows back to back), open model with ``--rate R``
(deliveries arrive R times a second, latency counted from when each was meant to start). On
``local`` it starts the virtual sandbox in a child process; Locust always runs as a child
process. It prints a table per step (requests, failures, conflicts, p50/p95/p99) and writes
Locust's HTML and CSV and the harness's ``load/summary.json`` under ``reports/<run-id>/``.

Exit 0 green, 1 an oracle saw a product defect (double booking, a status the model does not
predict, a 5xx), 2 usage (load against production is refused), 3 an SLO gate was breached, 4 could
not test, 130 on Ctrl-C after every locker the run held was given back.
"""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from harness.cli._common import (
    ConfigOption,
    Output,
    SimDialectOption,
    TargetOption,
    TowerOption,
    VerboseOption,
    run_command,
    tell_evidence,
)
from harness.cli._target import command_settings, running_target
from harness.cli.run import RichProgress
from harness.config import Settings, TargetKind
from harness.history import History
from harness.load import LoadPlan, LoadSummary, SloGates, StepRow
from harness.report import TargetInfo, fit_table
from harness.run import LoadStage, execute, new_context
from harness.stopping import terminated

__all__ = ["command"]

#: Seconds the run may take beyond the load itself: Locust's start and a stop ending in a kill
#: (the load stage keeps 95 s of its budget for those and the sweep), and the reports.
_OVERHEAD_S = 150.0


def _ms(value: float) -> str:
    return f"{value:.2f}" if value < 100 else f"{value:.0f}"


def step_table(summary: LoadSummary) -> Table:
    """The per-step table: each step, every request together, then each flow end to end."""
    table = Table(title="load", title_justify="left")
    for column in ("step", "requests", "failures", "conflicts", "p50 ms", "p95 ms", "p99 ms", "max ms"):
        table.add_column(column, justify="left" if column == "step" else "right")

    def add(row: StepRow, name: str | None = None, *, end_section: bool = False) -> None:
        failures = f"{row.failures} ({row.violations} oracle)" if row.violations else str(row.failures)
        table.add_row(
            name or row.name, str(row.requests), failures, str(row.conflicts),
            _ms(row.p50_ms), _ms(row.p95_ms), _ms(row.p99_ms), _ms(row.max_ms),
            end_section=end_section,
        )  # fmt: skip

    for index, row in enumerate(summary.steps):
        add(row, end_section=index == len(summary.steps) - 1)
    add(summary.overall, end_section=bool(summary.flows))
    for row in summary.flows:
        table.add_row(
            f"{row.name} (end to end)", str(row.requests), "-", "-",
            _ms(row.p50_ms), _ms(row.p95_ms), _ms(row.p99_ms), _ms(row.max_ms),
        )  # fmt: skip
    return table


def _report(out: Output, summary: LoadSummary) -> None:
    out.print(fit_table(step_table(summary), out.console))
    record = summary.record
    flows = ", ".join(f"{count} {outcome}" for outcome, count in record.flows.items() if count)
    out.say(
        f"{record.requests:,} requests in {summary.duration_s:.1f} s ({summary.requests_per_s:,.0f}/s), "
        f"{summary.deliveries_per_min:,.0f} deliveries/min; flows: {flows or 'none'}"
    )
    if record.violation_count:
        kinds = ", ".join(f"{count} {kind}" for kind, count in record.violations.items() if count)
        out.say(f"ORACLE VIOLATIONS (product defects): {kinds}")
        for example in record.examples[:5]:
            out.say(f"  {example.kind}: {example.step} locker {example.locker_id}: {example.detail}")
    if record.server_errors or record.answers_lost:
        out.say(
            f"lost answers (errors, never findings: the users looked again before judging): "
            f"{record.server_errors:,} x 5xx, {record.answers_lost:,} x no answer"
        )
    for reason, count in list(record.errors.items())[:5]:
        out.say(f"  error x{count}: {reason}")
    for result in summary.breaches:
        out.say(f"SLO BREACHED: {result.describe()}")
    cleanup = record.cleanup
    sweep = summary.sweep
    left = f"the sweep found {sweep.found} left held" if sweep.checked else "the sweep could not check"
    out.say(f"cleanup: {cleanup['released']} holds given back by the users, {cleanup['failed']} failed; {left}")
    for note in [*sweep.notes[:5], *summary.notes]:
        out.say(f"  {note}")


def _run(out: Output, settings: Settings, stage: LoadStage, duration_s: float, environment: dict[str, str]) -> int:
    plan = stage.plan
    assert plan is not None
    shape = f"{plan.rate:g} deliveries/s" if plan.rate is not None else f"{plan.users} users"
    out.say(
        f"load: {shape} for {plan.duration_s:g} s ({plan.mode} model) against {settings.target.name} "
        f"({settings.target.api_url}), tower {settings.tower()}"
    )
    out.detail(f"settings: {settings!r}")
    target = TargetInfo(settings.target.name, settings.target.api_url, settings.tower_id)
    with RichProgress(out) as progress, History.open(settings.state_dir) as history:
        context = new_context(
            settings=settings,
            target=target,
            redactor=out.redactor,
            budget_s=duration_s + _OVERHEAD_S,
            observer=progress,
        )
        context.environment.update(environment)
        run = execute([stage], context, history=history)
    if stage.summary is not None:
        _report(out, stage.summary)
    if stage.files is not None:
        out.say(f"reports: {context.reports_dir} (load/summary.json, load/locust.html, load/locust_stats.csv)")
    tell_evidence(out, run.evidence_lost, recorded=True)
    if run.interrupted:
        stopped = "terminated (SIGTERM)" if terminated() else "interrupted"
        out.say(f"{stopped}: the users gave back what they held (see cleanup above)")
    return int(run.exit_code)


def command(
    context: typer.Context,
    users: Annotated[
        int | None,
        typer.Option(
            "--users",
            "-u",
            help="Closed model: users running flows back to back (default 10); with --rate: most deliveries in flight.",
            min=1,
        ),
    ] = None,
    rate: Annotated[
        float | None,
        typer.Option("--rate", help="Open model: deliveries arriving per second (latency counts from each arrival)."),
    ] = None,
    duration: Annotated[
        float | None, typer.Option("--duration", "-d", help="Seconds of load, at most 3600 (default 10).")
    ] = None,
    processes: Annotated[
        int | None, typer.Option("--processes", help="Locust worker processes on this host (default 1).", min=1)
    ] = None,
    think: Annotated[
        str | None, typer.Option("--think", help="Seconds between a user's flows: SECONDS or MIN,MAX (default 0).")
    ] = None,
    weights: Annotated[
        str | None,
        typer.Option("--weights", help="User mix, e.g. delivery=3,browsing=1,contention=1 (the default)."),
    ] = None,
    contention_lockers: Annotated[
        int | None, typer.Option("--contention-lockers", help="Lockers the contention users fight over (default 3).")
    ] = None,
    max_rps: Annotated[
        float | None,
        typer.Option("--max-rps", help="Cap on requests per second (on Harbor's sandbox: sandbox_max_rps, default 2)."),
    ] = None,
    slo: Annotated[
        list[str] | None,
        typer.Option(
            "--slo", help="A gate [STEP.]METRIC=LIMIT (repeatable): p99=250, reserve.p95=50, failure_ratio=0.01."
        ),
    ] = None,
    target: TargetOption = None,
    tower: TowerOption = None,
    config: ConfigOption = None,
    sim_bug: Annotated[
        list[str] | None,
        typer.Option("--sim-bug", help="local only: switch a sandbox bug on (repeatable), e.g. double_booking."),
    ] = None,
    sim_fault: Annotated[
        list[str] | None,
        typer.Option("--sim-fault", help="local only: a sandbox fault profile, e.g. stall:seconds=1,every=10."),
    ] = None,
    sim_dialect: SimDialectOption = None,
    verbose: VerboseOption = False,
) -> None:
    """Put the delivery flow under load with Locust: per-step percentiles, oracles, SLO gates."""

    def body(out: Output) -> int:
        settings = command_settings(context)
        plan, note = LoadPlan.resolve(
            settings,
            users=users,
            rate=rate,
            duration_s=duration,
            processes=processes,
            think=think,
            weights=weights,
            contention_lockers=contention_lockers,
            max_rps=max_rps,
        )
        gates = SloGates.resolve(settings, slo or ())
        stage = LoadStage(plan, gates, notes=(note,) if note else ())
        if note:
            out.say(note)
        environment = {"stages": "load", "load.mode": plan.mode}
        if settings.target.kind is TargetKind.LOCAL:
            environment |= {"sim.bugs": ",".join(sim_bug or ()) or "-", "sim.faults": ";".join(sim_fault or ()) or "-"}
            environment |= {"sim.dialects": ",".join(sim_dialect or ()) or "-"}
        # On local the sandbox runs as its own process: it does not share a GIL with the harness.
        with running_target(
            settings, sim_bug=sim_bug, sim_fault=sim_fault or (), sim_dialect=sim_dialect or (), subprocess=True
        ) as running:
            return _run(out, running.settings, stage, plan.duration_s, environment)

    run_command(body, verbose=verbose)
