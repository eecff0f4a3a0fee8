"""``locker-harness load``: Locust drives deliveries, browsing and contention against the target.

Closed model with ``--users N`` (users run flows back to back), open model with ``--rate R``
(deliveries arrive R times a second, latency counted from when each was meant to start). On
``local`` it starts the virtual sandbox in a child process; Locust always runs as a child
process. It prints a table per step (requests, failures, conflicts, p50/p95/p99) and writes
Locust's HTML and CSV and the harness's ``load/summary.json`` under ``reports/<run-id>/``.

Every gate is shown after the run with its limit, its measured value and ✓ or ✗; an abort gate
(``--slo p99=250:abort``) stops the run as soon as it is breached. ``--spawn-rate`` ramps the users up.

Distributed: ``--master --expect-workers N`` runs Locust's master here (no users of its own) and
``--worker --master-host H`` runs a worker on any host with the checkout and the credentials in its
environment; the master's run gets the same gates, summary, JUnit, plots, history and exit code
as a run on one host.

Exit 0 green, 1 an oracle saw a product defect (double booking, a status the model does not
predict, a 5xx), 2 usage (load against production is refused), 3 an SLO gate was breached, 4 could
not test, 130 on Ctrl-C after every locker the run held was given back.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from harness.cli._common import (
    ConfigOption,
    JunitXmlOption,
    Output,
    QuietOption,
    ReportsDirOption,
    RunIdOption,
    SimDialectOption,
    TargetOption,
    TowerOption,
    VerboseOption,
    fresh_run_id,
    run_command,
    tell_evidence,
    tell_junit,
    tell_verdict,
)
from harness.cli._target import command_settings, running_target
from harness.cli.run import RichProgress
from harness.config import PROJECT_ROOT, Settings, TargetKind, load_settings
from harness.errors import ExitCode, InfrastructureError, UsageError
from harness.history import History
from harness.load import (
    DEFAULT_MASTER_PORT,
    LOCUSTFILE,
    MAX_DURATION_S,
    LoadPlan,
    LoadSummary,
    LocustMaster,
    LocustWorker,
    SloGates,
    StepRow,
    run_worker,
    worker_command,
)
from harness.report import TargetInfo, gate_table
from harness.run import LoadStage, execute, new_context
from harness.stopping import terminated

__all__ = ["command"]

#: Options that shape a run's plan, target or evidence: a worker takes the first two from its master,
#: and the master alone writes the evidence.
_PLAN_OPTIONS = frozenset(
    {"users", "rate", "duration", "think", "weights", "contention_lockers", "max_rps", "slo", "spawn_rate",
     "target", "tower", "config", "sim_bug", "sim_fault", "reports_dir", "run_id", "junit_xml"}
)  # fmt: skip

#: Seconds the run may take beyond the load itself: Locust's start and a stop ending in a kill
#: (the load stage keeps 95 s of its budget for those and the sweep), and the reports.
_OVERHEAD_S = 150.0
#: Seconds a master waits for its workers to connect unless told otherwise (``--worker-wait``).
_WORKER_WAIT_S = 60.0
#: About how long Locust lets a worker try to reach its master before it gives up (60 tries, 5 s each).
_WORKER_CONNECT_S = 300.0


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
    out.print(step_table(summary))
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
    lines = summary.gate_lines()
    if lines:
        out.print(gate_table(lines, title="gates (✓ held, ✗ breached, - not measured)"))
    if summary.aborted is not None:
        out.say(f"ABORTED: {summary.aborted.describe()}")
    for result in summary.breaches:
        if summary.aborted is None or result.gate != summary.aborted.gate:
            out.say(f"SLO BREACHED: {result.describe()}")
    cleanup = record.cleanup
    sweep = summary.sweep
    left = f"the sweep found {sweep.found} left held" if sweep.checked else "the sweep could not check"
    out.say(f"cleanup: {cleanup['released']} holds given back by the users, {cleanup['failed']} failed; {left}")
    for note in [*sweep.notes[:5], *summary.notes]:
        out.say(f"  {note}")


def _run(
    out: Output,
    settings: Settings,
    stage: LoadStage,
    duration_s: float,
    environment: dict[str, str],
    *,
    run_id: str | None = None,
    junit_xml: Path | None = None,
) -> int:
    plan = stage.plan
    assert plan is not None
    shape = f"{plan.rate:g} deliveries/s" if plan.rate is not None else f"{plan.users} users"
    ramp = f", {plan.spawn_rate:g} users/s ramp-up" if plan.spawn_rate is not None else ""
    out.say(
        f"load: {shape} for {plan.duration_s:g} s ({plan.mode} model{ramp}) against {settings.target.name} "
        f"({settings.target.api_url}), tower {settings.tower()}"
    )
    master = stage.master
    if master is not None:
        out.say(
            f"master: waiting up to {master.wait_s:g} s for {master.workers} Locust worker(s) on "
            f"{master.bind_host}:{master.bind_port}; start each with "
            f"`locker-harness load --worker --master-host <this host> --master-port {master.bind_port}`"
        )
    out.detail(f"settings: {settings!r}")
    target = TargetInfo(settings.target.name, settings.target.api_url, settings.tower_id)
    with RichProgress(out) as progress, History.open(settings.state_dir) as history:
        context = new_context(
            settings=settings,
            target=target,
            redactor=out.redactor,
            budget_s=duration_s + _OVERHEAD_S + (master.wait_s if master is not None else 0.0),
            observer=progress,
            run_id=run_id,
        )
        context.environment.update(environment)
        run = execute([stage], context, history=history)
    if stage.summary is not None:
        _report(out, stage.summary)
    if stage.files is not None:
        out.say(f"reports: {context.reports_dir} (load/summary.json, load/locust.html, load/locust_stats.csv)")
    tell_junit(out, run, context.folder, junit_xml)
    tell_evidence(out, run.evidence_lost, recorded=True)
    if run.interrupted:
        stopped = "terminated (SIGTERM)" if terminated() else "interrupted"
        out.say(f"{stopped}: the users gave back what they held (see cleanup above)")
    else:
        # The verdict and why, whole: what ended a run that could not finish is said nowhere else.
        for result in run.stages:
            why = f": {result.reason}" if result.reason else ""
            out.say(f"verdict: {result.verdict.value}, exit code {int(run.exit_code)}{why}")
    tell_verdict(
        out, "load", int(run.exit_code), run_id=run.run_id, where=context.reports_dir, refuted=len(run.findings())
    )
    return int(run.exit_code)


def _work(out: Output, worker: LocustWorker) -> int:
    """Serve as a worker of a distributed run until its master ends it."""
    settings = load_settings({})
    settings.credentials()  # name the missing variables before Locust starts: the users need them
    if not LOCUSTFILE.is_file():
        raise UsageError(f"no locustfile at {LOCUSTFILE}: a worker runs from a checkout of the harness")
    processes = f" ({worker.processes} processes)" if worker.processes > 1 else ""
    out.say(
        f"worker{processes}: joining the master at {worker.master_host}:{worker.master_port}; the plan and the "
        "target come from it, the credentials from this environment"
    )
    environment = {key: value for key, value in os.environ.items() if key != "HARBOR_CONFIG"}
    outcome = run_worker(
        worker_command(LOCUSTFILE, worker),
        env=environment,
        echo=out.say,  # Locust's own lines, through the redactor
        # Locust gives up on a master that never comes after about 5 minutes, and on one that went
        # away after 60 s without a heartbeat; the longest run, with its start and stop, fits in this.
        max_s=MAX_DURATION_S + _WORKER_CONNECT_S + _OVERHEAD_S,
        cwd=PROJECT_ROOT,
    )
    if outcome.interrupted:
        raise KeyboardInterrupt
    if outcome.returncode != 0:
        raise InfrastructureError(
            f"the Locust worker exited {outcome.returncode}: it could not join or serve the master at "
            f"{worker.master_host}:{worker.master_port} (see its lines above)"
        )
    out.say("worker: the master ended the run; its verdict and reports are on the master's host")
    return ExitCode.OK


def _distribution(
    *,
    master: bool,
    worker: bool,
    expect_workers: int | None,
    master_bind_host: str | None,
    master_bind_port: int | None,
    worker_wait: float | None,
    master_host: str | None,
    master_port: int | None,
    processes: int | None,
) -> LocustMaster | LocustWorker | None:
    """The distributed role the options ask for, each option checked against it."""
    if master and worker:
        raise UsageError("--master and --worker exclude each other: a process is one or the other")
    master_only = {"--expect-workers": expect_workers, "--master-bind-host": master_bind_host,
                   "--master-bind-port": master_bind_port, "--worker-wait": worker_wait}  # fmt: skip
    worker_only = {"--master-host": master_host, "--master-port": master_port}
    for name, value in master_only.items():
        if value is not None and not master:
            raise UsageError(f"{name} applies to a distributed master: add --master")
    for name, value in worker_only.items():
        if value is not None and not worker:
            raise UsageError(f"{name} applies to a worker: add --worker")
    if master:
        if processes is not None:
            raise UsageError(
                "--processes forks workers on this host; a master's workers are `locker-harness load --worker` "
                "(each may take --processes)"
            )
        return LocustMaster(
            workers=expect_workers or 1,
            bind_host=master_bind_host or "*",
            bind_port=master_bind_port or DEFAULT_MASTER_PORT,
            wait_s=worker_wait if worker_wait is not None else _WORKER_WAIT_S,
        )
    if worker:
        if not master_host:
            raise UsageError("a worker needs --master-host: the host its master runs on")
        return LocustWorker(master_host, master_port or DEFAULT_MASTER_PORT, processes or 1)
    return None


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
        int | None,
        typer.Option(
            "--processes", help="Locust worker processes on this host (default 1; at most two per core).", min=1
        ),
    ] = None,
    spawn_rate: Annotated[
        float | None,
        typer.Option(
            "--spawn-rate", help="Ramp-up: users started per second (default: all at once, at most 100 a second)."
        ),
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
            "--slo",
            help="A gate [STEP.]METRIC=LIMIT (repeatable): p99=250, reserve.p95=50, failure_ratio=0.01; "
            "add :abort to stop the run as soon as it breaches (p99=250:abort).",
        ),
    ] = None,
    master: Annotated[
        bool,
        typer.Option("--master", help="Distributed: run Locust's master here; the users run in --worker processes."),
    ] = False,
    expect_workers: Annotated[
        int | None,
        typer.Option(
            "--expect-workers", min=1, max=1000, help="With --master: Locust worker processes to wait for (default 1)."
        ),
    ] = None,
    master_bind_host: Annotated[
        str | None,
        typer.Option(
            "--master-bind-host", help="With --master: the interface workers connect to (default: every one, *)."
        ),
    ] = None,
    master_bind_port: Annotated[
        int | None,
        typer.Option(
            "--master-bind-port",
            min=1,
            max=65535,
            help=f"With --master: the port workers connect to (default {DEFAULT_MASTER_PORT}).",
        ),
    ] = None,
    worker_wait: Annotated[
        float | None,
        typer.Option(
            "--worker-wait",
            min=1.0,
            max=3600.0,
            help=f"With --master: seconds to wait for every worker (default {_WORKER_WAIT_S:g}), else exit 4.",
        ),
    ] = None,
    worker: Annotated[
        bool,
        typer.Option(
            "--worker", help="Distributed: serve a master's run (plan and target from it; credentials from HARBOR_*)."
        ),
    ] = False,
    master_host: Annotated[
        str | None, typer.Option("--master-host", help="With --worker: the host the master runs on.")
    ] = None,
    master_port: Annotated[
        int | None,
        typer.Option(
            "--master-port", min=1, max=65535, help=f"With --worker: the master's port (default {DEFAULT_MASTER_PORT})."
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
    reports_dir: ReportsDirOption = None,
    run_id: RunIdOption = None,
    junit_xml: JunitXmlOption = None,
    quiet: QuietOption = False,
    verbose: VerboseOption = False,
) -> None:
    """Put the delivery flow under load with Locust: per-step percentiles, oracles, SLO gates."""

    def body(out: Output) -> int:
        role = _distribution(
            master=master,
            worker=worker,
            expect_workers=expect_workers,
            master_bind_host=master_bind_host,
            master_bind_port=master_bind_port,
            worker_wait=worker_wait,
            master_host=master_host,
            master_port=master_port,
            processes=processes,
        )
        if isinstance(role, LocustWorker):
            planned = {name: value for name, value in context.params.items() if name in _PLAN_OPTIONS and value}
            if planned:
                shown = ", ".join(f"--{name.replace('_', '-')}" for name in planned)
                raise UsageError(f"a worker takes its plan and target from the master: leave out {shown}")
            return _work(out, role)
        settings = command_settings(context)
        chosen_id = fresh_run_id(settings.reports_dir, run_id)
        if role is not None and settings.target.kind is TargetKind.LOCAL:
            if settings.client_id is None or settings.client_secret is None:
                raise UsageError(
                    "a distributed run on local needs HARBOR_CLIENT_ID and HARBOR_CLIENT_SECRET set here and on "
                    "each worker: the embedded sandbox takes them as its identity"
                )
            out.say(
                "note: the embedded sandbox listens on loopback; workers on other hosts need a target they can "
                "reach (--target URL or sandbox)"
            )
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
            spawn_rate=spawn_rate,
        )
        gates = SloGates.resolve(settings, slo or ())
        stage = LoadStage(plan, gates, notes=(note,) if note else (), master=role)
        if note:
            out.say(note)
        environment = {"stages": "load", "load.mode": plan.mode}
        if role is not None:
            environment["load.workers"] = str(role.workers)
        if settings.target.kind is TargetKind.LOCAL:
            environment |= {"sim.bugs": ",".join(sim_bug or ()) or "-", "sim.faults": ";".join(sim_fault or ()) or "-"}
            environment |= {"sim.dialects": ",".join(sim_dialect or ()) or "-"}
        # On local the sandbox runs as its own process: it does not share a GIL with the harness.
        with running_target(
            settings, sim_bug=sim_bug or (), sim_fault=sim_fault or (), sim_dialect=sim_dialect or (), subprocess=True
        ) as running:
            return _run(
                out, running.settings, stage, plan.duration_s, environment, run_id=chosen_id, junit_xml=junit_xml
            )

    run_command(body, "load", verbose=verbose, quiet=quiet)
