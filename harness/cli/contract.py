"""``locker-harness contract``: the contract suite (Schemathesis over the API document, with the locker checks).

Runs ``contracts/test_contract.py`` in a child pytest against the target (``local`` starts the
virtual sandbox for it), within ``--budget`` seconds: the generated examples scale with the
budget, and a suite still running when it ends is stopped (exit 4). Prints a summary and leaves
JUnit, Allure results and ``summary.md``/``summary.json`` under ``reports/<run-id>/``. Exit 0 all
green, 1 a check failed, 2 usage, 4 could not test, 130 interrupted.

``run_suite`` is shared with ``locker-harness props``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Final, cast

import typer

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
from harness.config import PROJECT_ROOT, Settings
from harness.errors import InfrastructureError
from harness.report import TargetInfo, run_table
from harness.run import PytestStage, Stage, available_stages, execute, new_context

__all__ = ["BudgetOption", "NoControlPlaneOption", "SeedOption", "command", "run_suite"]

#: Seconds a suite command may take unless told otherwise.
DEFAULT_BUDGET_S: Final = 120.0
#: The share of the budget the generated examples are sized for: the rest is headroom for a slower
#: machine, start-up and the reports (the suite's examples are sized by estimate, not by a clock).
_EXAMPLE_SHARE: Final = 1 / 6
#: Failures listed under the summary table; the rest are in the reports.
_SHOWN_FAILURES: Final = 10

BudgetOption = Annotated[
    float,
    typer.Option(
        "--budget",
        min=30.0,
        max=86_400.0,
        help="Seconds the suite may take; its generated examples scale with it.",
    ),
]
SeedOption = Annotated[int, typer.Option("--seed", help="Seed of the generated examples (Hypothesis, Schemathesis).")]
NoControlPlaneOption = Annotated[
    bool,
    typer.Option(
        "--no-control-plane",
        help="Treat the target as having no /_sim control plane, as Harbor's sandbox has none "
        "(tests that need doors or the virtual clock skip, saying why).",
    ),
]


def run_suite(
    out: Output,
    settings: Settings,
    name: str,
    *,
    budget: float,
    seed: int,
    sim_bugs: Sequence[str],
    sim_dialects: Sequence[str] = (),
    extra_args: Sequence[str] = (),
    exclusive: bool = False,
    run_id: str | None = None,
    junit_xml: Path | None = None,
) -> int:
    """Run a suite of ``contracts/`` as the stage ``name`` in a child pytest against ``settings``'
    target; its exit code. ``run_id``: the run's id (``--run-id``); ``junit_xml``: ``--junit-xml``."""
    args = ("--harbor-budget", f"{max(budget * _EXAMPLE_SHARE, 1.0):g}", *extra_args)
    stages = available_stages()
    if name not in stages:
        raise InfrastructureError(f"this installation has no {name} suite (its tests are not in {PROJECT_ROOT})")
    suite = stages[name]()
    assert isinstance(suite, PytestStage), suite
    # The stage as `run` has it (its suite, its plugins), seeded with --seed, with the command's options.
    stage = dataclasses.replace(suite, seeded=True, extra_args=args)
    settings.check_writes_allowed(f"run the {name} suite (it reserves lockers and creates tokens)")
    chosen_id = fresh_run_id(settings.reports_dir, run_id)
    # The embedded sandbox is always exclusive; the suite's resets keep its switches and dialects (fresh_world).
    with running_target(settings, sim_bug=sim_bugs, sim_dialect=sim_dialects) as running:
        return _execute(
            out,
            stage,
            running.settings,
            budget=budget,
            seed=seed,
            sim_bugs=sim_bugs,
            sim_dialects=sim_dialects,
            exclusive=exclusive,
            run_id=chosen_id,
            junit_xml=junit_xml,
        )


def _execute(
    out: Output,
    stage: PytestStage,
    settings: Settings,
    *,
    budget: float,
    seed: int,
    sim_bugs: Sequence[str],
    sim_dialects: Sequence[str],
    exclusive: bool,
    run_id: str | None = None,
    junit_xml: Path | None = None,
) -> int:
    out.say(
        f"{stage.name}: {' '.join(stage.paths)} against {settings.target.name} ({settings.target.api_url}), "
        f"budget {budget:g} s, seed {seed}"
    )
    info = TargetInfo(name=settings.target.name, url=settings.target.api_url, tower=settings.tower_id)
    context = new_context(
        settings=settings,
        target=info,
        redactor=out.redactor,
        budget_s=budget,
        seed=seed,
        sim_bugs=sim_bugs,
        sim_dialects=sim_dialects,
        exclusive=exclusive,
        run_id=run_id,
    )
    context.environment.update(
        {"stages": stage.name, "sim.bugs": ",".join(sim_bugs) or "-", "sim.dialects": ",".join(sim_dialects) or "-"}
    )
    # A frozen dataclass's name is read-only; the Stage protocol spells it as a plain attribute.
    run = execute([cast(Stage, stage)], context)
    out.print(run_table(run, redactor=out.redactor))
    failures = [failure for result in run.stages for failure in result.failures]
    # Tests that failed for one reason (a fixture every test needs) are one line, with how many.
    by_reason: dict[tuple[str, str], list[str]] = {}
    for failure in failures:
        first = failure.message.splitlines()[0] if failure.message else ""
        by_reason.setdefault((failure.kind.value, first), []).append(failure.name)
    for (kind, first), names in list(by_reason.items())[:_SHOWN_FAILURES]:
        more = f" (and {len(names) - 1} more test(s) for the same reason)" if len(names) > 1 else ""
        out.say(f"  {kind}: {names[0]}: {first}{more}")
    if len(by_reason) > _SHOWN_FAILURES:
        out.say(f"  ... and {len(by_reason) - _SHOWN_FAILURES} more reasons in the reports")
    out.say(f"reports: {context.reports_dir}")
    tell_junit(out, run, context.folder, junit_xml)
    tell_evidence(out, run.evidence_lost, recorded=False)
    tell_verdict(
        out, stage.name, int(run.exit_code), run_id=run.run_id, where=context.reports_dir, refuted=len(run.findings())
    )
    return int(run.exit_code)


def command(
    context: typer.Context,
    target: TargetOption = None,
    tower: TowerOption = None,
    budget: BudgetOption = DEFAULT_BUDGET_S,
    seed: SeedOption = 0,
    sim_bug: SimBugOption = None,
    sim_dialect: SimDialectOption = None,
    no_control_plane: NoControlPlaneOption = False,
    exclusive: ExclusiveOption = False,
    config: ConfigOption = None,
    allow_production_writes: ProductionWritesOption = False,
    reports_dir: ReportsDirOption = None,
    run_id: RunIdOption = None,
    junit_xml: JunitXmlOption = None,
    quiet: QuietOption = False,
    verbose: VerboseOption = False,
) -> None:
    """Check the API against its document and the locker model (Schemathesis, stateful links included)."""

    def body(out: Output) -> int:
        return run_suite(
            out,
            command_settings(context),
            "contract",
            budget=budget,
            seed=seed,
            sim_bugs=sim_bug or (),
            sim_dialects=sim_dialect or (),
            extra_args=("--harbor-no-control-plane",) if no_control_plane else (),
            exclusive=exclusive,
            run_id=run_id,
            junit_xml=junit_xml,
        )

    run_command(body, "contract", verbose=verbose, quiet=quiet)
