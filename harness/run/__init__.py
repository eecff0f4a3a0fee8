"""``locker-harness run``: the stages in order, one verdict, one exit code, evidence on disk.

A stage is anything with a ``name`` and ``run(context) -> StageResult``: smoke, contract,
properties, the hardware rig, load. They run in that order under one time budget; each stage
reads ``context.budget`` and keeps within it. A stage that raises is not the end of the run:
its exception is classified (product defect, infrastructure, test defect), recorded, and the
next stage runs. The overall verdict is the worst stage verdict (a defect beats a breach
beats infrastructure), and it decides the exit code (``harness.errors.ExitCode``).

The soak (``soak``: many deliveries, the sandbox's memory watched) is a run of its own, not a
stage: ``locker-harness soak`` runs it alone.

Stages that are not built yet are simply not registered: ``available_stages()`` lists what
this installation can run. A stage run as a child process (pytest, Locust) gets the target from
``harness.config.target_environment`` and leaves its histograms in ``$LOCKER_HARNESS_LATENCIES_DIR``.
"""

from harness.run._child import LATENCIES_ENV, STAGE_SUMMARY, ChildStage
from harness.run._context import (
    DEFAULT_BUDGET_S,
    STAGE_ORDER,
    Budget,
    RunContext,
    RunObserver,
    Stage,
    new_context,
)
from harness.run._execute import available_stages, execute, select_stages
from harness.run._load_stage import LoadStage
from harness.run._pytest_stage import HardwareStage, PytestStage
from harness.run._smoke import SmokeStage, recording, smoke_recorder, smoke_result
from harness.run._soak import SOAK_LOCKERS, SoakFigures, soak, soak_verdict, write_soak_figures

__all__ = [
    "DEFAULT_BUDGET_S",
    "LATENCIES_ENV",
    "SOAK_LOCKERS",
    "STAGE_ORDER",
    "STAGE_SUMMARY",
    "Budget",
    "ChildStage",
    "HardwareStage",
    "LoadStage",
    "PytestStage",
    "RunContext",
    "RunObserver",
    "SmokeStage",
    "SoakFigures",
    "Stage",
    "available_stages",
    "execute",
    "new_context",
    "recording",
    "select_stages",
    "smoke_recorder",
    "smoke_result",
    "soak",
    "soak_verdict",
    "write_soak_figures",
]
