"""``locker-harness props``: the property suite (a two-party state machine, race and token oracles).

Runs ``contracts/test_properties.py`` in a child pytest against the target (``local`` starts the
virtual sandbox for it), within ``--budget`` seconds, as ``locker-harness contract`` does: a
summary on screen; JUnit, Allure results and summaries under ``reports/<run-id>/``; exit 0 all
green, 1 a promise broken, 2 usage, 4 could not test, 130 interrupted. Rules and oracles that need
the tower's doors or the virtual clock skip, saying why, on a target without a control plane.
"""

from __future__ import annotations

from typing import Annotated

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
    run_command,
)
from harness.cli._target import command_settings
from harness.cli.contract import DEFAULT_BUDGET_S, BudgetOption, NoControlPlaneOption, SeedOption, run_suite

__all__ = ["command"]


def command(
    context: typer.Context,
    target: TargetOption = None,
    tower: TowerOption = None,
    budget: BudgetOption = DEFAULT_BUDGET_S,
    seed: SeedOption = 0,
    race: Annotated[
        int, typer.Option("--race", min=2, max=256, help="Requests sent at once in the race oracles.")
    ] = 32,
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
    """Check the locker flow's properties: any order of calls by two parties, races, and token lifecycles."""

    def body(out: Output) -> int:
        extra = ("--harbor-race", str(race), *(("--harbor-no-control-plane",) if no_control_plane else ()))
        return run_suite(
            out,
            command_settings(context),
            "properties",
            budget=budget,
            seed=seed,
            sim_bugs=sim_bug or (),
            sim_dialects=sim_dialect or (),
            extra_args=extra,
            exclusive=exclusive,
            run_id=run_id,
            junit_xml=junit_xml,
        )

    run_command(body, "props", verbose=verbose, quiet=quiet)
