"""``locker-harness run``: every stage against the target, one verdict, evidence under ``reports/<run-id>/``.

Against ``local`` (the default) it starts the virtual sandbox itself. Stages run smoke ->
contract -> properties -> hw -> load within ``--budget`` seconds (``--only`` / ``--skip``
choose). Exit 0 all green, 1 a check failed, 2 usage, 3 an SLO breach, 4 could not test,
5 green but an assumption of ours refuted (only with ``--strict-assumptions``; without it the
refuted assumptions are listed and the run exits 0), 130 interrupted. With
``$GITHUB_STEP_SUMMARY`` set, the Markdown summary is appended to it.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TaskID, TextColumn, TimeElapsedColumn

from harness.cli._common import (
    ConfigOption,
    ExclusiveOption,
    JunitXmlOption,
    Output,
    ProductionWritesOption,
    QuietOption,
    ReportsDirOption,
    RunIdOption,
    SimBugOption,
    SimDialectOption,
    SimFaultOption,
    StatusTimeoutOption,
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
from harness.config import Settings, TargetKind
from harness.errors import HarnessError, UsageError
from harness.history import History
from harness.report import (
    RunResult,
    StageResult,
    TargetInfo,
    build_html,
    findings_table,
    gate_table,
    run_table,
)
from harness.run import DEFAULT_BUDGET_S, STAGE_ORDER, Stage, available_stages, execute, new_context, select_stages
from harness.targets import RadioLink

__all__ = ["command"]

_STEP_SUMMARY_ENV = "GITHUB_STEP_SUMMARY"


class RichProgress:
    """The live display: a spinner per stage while it runs, its verdict when it ends (on stderr)."""

    def __init__(self, out: Output) -> None:
        self._redact = out.redactor.text
        self._progress = Progress(
            SpinnerColumn(finished_text="•"),
            TextColumn("{task.description}"),
            TimeElapsedColumn(),
            console=Console(stderr=True, highlight=False),
            transient=False,
            disable=out.quiet,
        )
        self._tasks: dict[str, TaskID] = {}

    def __enter__(self) -> RichProgress:
        self._progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._progress.stop()

    def stage_started(self, name: str) -> None:
        self._tasks[name] = self._progress.add_task(f"{name}: starting", total=1)

    def stage_progress(self, name: str, message: str) -> None:
        task = self._tasks.get(name)
        if task is not None:
            self._progress.update(task, description=self._redact(f"{name}: {message}"))

    def stage_finished(self, result: StageResult) -> None:
        task = self._tasks.get(result.name)
        if task is not None:
            # The verdict only: a live line is cut at the terminal's edge, and the table below says why whole.
            self._progress.update(task, description=f"{result.name}: {result.verdict.value}", completed=1)


def _target_info(settings: Settings) -> TargetInfo:
    return TargetInfo(
        name=settings.target.name,
        url=settings.target.api_url,
        tower=settings.tower_id,
        firmware=None,  # the hardware rig's stage learns it from the tower
    )


def _publish_step_summary(out: Output, run_dir: Path) -> None:
    """Append ``summary.md`` to a GitHub Actions step summary when the job provides one."""
    target = os.environ.get(_STEP_SUMMARY_ENV)
    if not target:
        return
    try:
        with open(target, "a", encoding="utf-8") as summary:
            summary.write((run_dir / "summary.md").read_text(encoding="utf-8") + "\n")
    except OSError as exc:
        out.say(f"could not append to ${_STEP_SUMMARY_ENV}: {exc.strerror}")


def _refuse_unmet_ble_faults(stages: Sequence[Stage], faults: Sequence[str]) -> None:
    """A BLE fault profile no chosen stage meets is a usage error, never a fault silently ignored."""
    ble = [spec for spec in faults if spec.partition(":")[0].strip().startswith("ble_")]
    if ble and not any(getattr(stage, "ble_faults", False) for stage in stages):
        raise UsageError(
            f"--sim-fault {ble[0]} would be ignored: none of the stages chosen ({', '.join(s.name for s in stages)}) "
            "opens doors over the embedded sandbox's radio; the smoke stage does"
        )


def _execute(
    out: Output,
    settings: Settings,
    stages: list[Stage],
    skipped: list[StageResult],
    *,
    budget: float,
    seed: int,
    environment: dict[str, str],
    html: bool,
    sim_bugs: Sequence[str] = (),
    sim_faults: Sequence[str] = (),
    sim_dialects: Sequence[str] = (),
    radio_link: RadioLink | None = None,
    exclusive: bool = False,
    strict_assumptions: bool = False,
    run_id: str | None = None,
    junit_xml: Path | None = None,
) -> int:
    out.say(
        f"run: {', '.join(stage.name for stage in stages)} against {settings.target.name} "
        f"({settings.target.api_url}), budget {budget:g} s, seed {seed}"
    )
    out.detail(f"settings: {settings!r}")
    # The folders first: one that cannot be written is a usage error before any display starts.
    with History.open(settings.state_dir) as history:
        context = new_context(
            settings=settings,
            target=_target_info(settings),
            redactor=out.redactor,
            budget_s=budget,
            seed=seed,
            sim_bugs=sim_bugs,
            sim_faults=sim_faults,
            sim_dialects=sim_dialects,
            radio_link=radio_link,
            exclusive=exclusive,
            strict_assumptions=strict_assumptions,
            run_id=run_id,
        )
        context.environment.update(environment)
        with RichProgress(out) as progress:
            context.observer = progress
            run: RunResult = execute(stages, context, skipped=skipped, history=history)
    out.print(run_table(run, redactor=out.redactor))
    for stage in run.stages:
        if stage.gates:
            out.print(gate_table(stage.gates, title=f"{stage.name} gates"))
    refuted = run.findings()
    if refuted:
        out.print(findings_table(refuted, redactor=out.redactor))
    out.say(f"reports: {context.reports_dir}")
    tell_junit(out, run, context.folder, junit_xml)
    tell_evidence(out, run.evidence_lost, recorded=True)
    _publish_step_summary(out, context.reports_dir)
    if html:
        try:
            report = build_html(
                context.folder.allure_results,
                context.folder.html_dir,
                report_name=f"locker-harness {run.run_id}",
                redactor=out.redactor,
            )
        except HarnessError as exc:
            # The run's verdict stands: a missing Node says nothing about the target (`report --html` retries).
            out.error(f"HTML report not written: {exc}")
        else:
            out.say(
                f"HTML report: {report.path} ({report.total} tests, {report.failed} failed, {report.broken} broken)"
            )
    tell_verdict(
        out, "run", int(run.exit_code), run_id=run.run_id, where=context.reports_dir, refuted=len(run.findings())
    )
    return int(run.exit_code)


def command(
    context: typer.Context,
    target: TargetOption = None,
    tower: TowerOption = None,
    only: Annotated[
        list[str] | None,
        typer.Option(
            "--only", help=f"Run only these stages (repeatable or comma-separated): {', '.join(STAGE_ORDER)}."
        ),
    ] = None,
    skip: Annotated[
        list[str] | None, typer.Option("--skip", help="Leave these stages out (repeatable or comma-separated).")
    ] = None,
    budget: Annotated[
        float,
        typer.Option(
            "--budget", help="Seconds the whole run may take; each stage keeps within it.", min=1.0, max=86_400.0
        ),
    ] = DEFAULT_BUDGET_S,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the generated tests, recorded with the run.")] = 0,
    html: Annotated[bool, typer.Option("--html", help="Also write the HTML report (needs Node.js 20+).")] = False,
    status_timeout: StatusTimeoutOption = None,
    exclusive: ExclusiveOption = False,
    config: ConfigOption = None,
    sim_bug: SimBugOption = None,
    sim_fault: SimFaultOption = None,
    sim_dialect: SimDialectOption = None,
    allow_production_writes: ProductionWritesOption = False,
    strict_assumptions: Annotated[
        bool,
        typer.Option(
            "--strict-assumptions",
            help="Exit 5 when the run is green but the target refuted an assumption of ours ([I]/[G]); "
            "without it refuted assumptions are listed and the run exits 0.",
        ),
    ] = False,
    reports_dir: ReportsDirOption = None,
    run_id: RunIdOption = None,
    junit_xml: JunitXmlOption = None,
    quiet: QuietOption = False,
    verbose: VerboseOption = False,
) -> None:
    """Run every stage against the target and write reports/<run-id>/: one verdict, one exit code."""

    def body(out: Output) -> int:
        settings = command_settings(context)
        chosen_id = fresh_run_id(settings.reports_dir, run_id)
        stages, skipped = select_stages(available_stages(), only=only or (), skip=skip or ())
        environment = {"stages": ",".join(stage.name for stage in stages)}
        if settings.target.kind is TargetKind.LOCAL:
            _refuse_unmet_ble_faults(stages, sim_fault or ())
            environment |= {"sim.bugs": ",".join(sim_bug or ()) or "-", "sim.faults": ";".join(sim_fault or ()) or "-"}
            environment |= {"sim.dialects": ",".join(sim_dialect or ()) or "-"}
        settings.check_writes_allowed("run the stages (they reserve lockers and create tokens)")
        with running_target(
            settings, sim_bug=sim_bug or (), sim_fault=sim_fault or (), sim_dialect=sim_dialect or ()
        ) as running:
            return _execute(
                out,
                running.settings,
                stages,
                skipped,
                budget=budget,
                seed=seed,
                environment=environment,
                html=html,
                sim_bugs=sim_bug or (),
                sim_faults=sim_fault or (),
                sim_dialects=sim_dialect or (),
                radio_link=running.radio_link,
                exclusive=exclusive,
                strict_assumptions=strict_assumptions,
                run_id=chosen_id,
                junit_xml=junit_xml,
            )

    run_command(body, "run", verbose=verbose, quiet=quiet)
