"""The run orchestrator with fake stages: order, selection, budget, classification, exit codes, reports."""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from harness.config import Settings
from harness.errors import ExitCode, ProductDefect, ServerError, UsageError
from harness.history import History
from harness.redaction import Redactor
from harness.report import CaseOutcome, CaseResult, StageResult, TargetInfo, Verdict
from harness.run import STAGE_ORDER, Budget, RunContext, Stage, execute, new_context, select_stages


class FakeStage:
    """A stage that returns a canned result, raises, or records that it ran."""

    def __init__(self, name: str, outcome: StageResult | BaseException | None = None) -> None:
        self.name = name
        self.outcome = outcome
        self.ran_at: float | None = None

    def run(self, context: RunContext) -> StageResult:
        self.ran_at = time.perf_counter()
        context.progress(self.name, "working")
        if isinstance(self.outcome, BaseException):
            raise self.outcome
        return self.outcome or StageResult(
            self.name, Verdict.PASSED, cases=[CaseResult(f"{self.name} check", CaseOutcome.PASSED, 1000)]
        )


class Recorder:
    """A RunObserver that remembers what it was told."""

    def __init__(self) -> None:
        self.events: list[tuple[str, str]] = []

    def stage_started(self, name: str) -> None:
        self.events.append(("started", name))

    def stage_progress(self, name: str, message: str) -> None:
        self.events.append(("progress", f"{name}: {message}"))

    def stage_finished(self, result: StageResult) -> None:
        self.events.append(("finished", f"{result.name}={result.verdict.value}"))


@pytest.fixture
def context(tmp_path: Path) -> RunContext:
    settings = dataclasses.replace(Settings(), reports_dir=tmp_path / "reports", state_dir=tmp_path / "state")
    return new_context(
        settings=settings,
        target=TargetInfo("local", "http://127.0.0.1:9", "0100000000000014"),
        redactor=Redactor(),
        budget_s=60,
        run_id="20261128-040512-ab12",
        observer=Recorder(),
    )


def _factories(*stages: Stage) -> dict[str, Callable[[], Stage]]:
    return {stage.name: (lambda stage=stage: stage) for stage in stages}  # type: ignore[misc]


def test_stages_run_in_order_and_a_green_run_exits_0(context: RunContext) -> None:
    """Stages run smoke -> ... -> load whatever order they were given in; all green exits 0."""
    load, smoke = FakeStage("load"), FakeStage("smoke")
    run = execute([smoke, load], context)
    assert [s.name for s in run.stages] == ["smoke", "load"]
    assert smoke.ran_at is not None and load.ran_at is not None and smoke.ran_at < load.ran_at
    assert run.exit_code is ExitCode.OK
    assert isinstance(context.observer, Recorder)
    assert context.observer.events[:3] == [
        ("started", "smoke"),
        ("progress", "smoke: working"),
        ("finished", "smoke=passed"),
    ]


def test_only_and_skip_choose_stages_and_unknown_names_are_usage_errors() -> None:
    """--only narrows, --skip shows the stage as skipped, and a name not built here is exit 2."""
    available = _factories(*(FakeStage(name) for name in ("smoke", "contract", "load")))
    running, skipped = select_stages(available, only=["smoke,load"], skip=["load"])
    assert [s.name for s in running] == ["smoke"]
    assert [(s.name, s.verdict, s.reason) for s in skipped] == [("load", Verdict.SKIPPED, "--skip")]
    with pytest.raises(UsageError, match="'hw' is not built into this installation; stages: smoke, contract, load"):
        select_stages(available, only=["hw"])
    with pytest.raises(UsageError, match="'smok' is not a stage"):
        select_stages(available, skip=["smok"])
    with pytest.raises(UsageError, match="no stage left"):
        select_stages(available, only=["smoke"], skip=["smoke"])


def test_a_stage_that_raises_is_classified_and_the_run_goes_on(context: RunContext) -> None:
    """A product defect fails the run (exit 1) even when a later stage hits infrastructure trouble."""
    stages = [
        FakeStage("smoke", ProductDefect("double booking", check="one_holder")),
        FakeStage("contract", ServerError("503 after retries", status_code=503)),
        FakeStage("load"),
    ]
    run = execute(stages, context)
    assert [(s.name, s.verdict) for s in run.stages] == [
        ("smoke", Verdict.FAILED),
        ("contract", Verdict.INFRASTRUCTURE),
        ("load", Verdict.PASSED),
    ]
    assert run.exit_code is ExitCode.DEFECT
    results = [json.loads(p.read_text()) for p in context.folder.allure_results.glob("*-result.json")]
    assert {r["name"]: r["status"] for r in results if r["name"].endswith("stage")} == {
        "smoke stage": "failed",
        "contract stage": "broken",
    }


def test_a_breach_beats_infrastructure(context: RunContext) -> None:
    """An SLO breach (exit 3) wins over infrastructure trouble (exit 4)."""
    run = execute(
        [FakeStage("smoke", TimeoutError("no answer")), FakeStage("load", StageResult("load", Verdict.BREACHED))],
        context,
    )
    assert run.exit_code is ExitCode.SLO_BREACH


def test_a_harness_bug_in_a_stage_is_a_test_defect_not_a_product_defect(context: RunContext) -> None:
    """A TypeError in a stage says 'could not test', with the failure classed as a test defect."""
    run = execute([FakeStage("smoke", TypeError("bad call"))], context)
    assert run.exit_code is ExitCode.INFRASTRUCTURE
    assert run.stages[0].failures[0].kind.value == "test"


def test_a_stage_the_budget_never_reached_could_not_test(context: RunContext) -> None:
    """A spent budget does not start the stages left, and each counts as could-not-test with the reason."""
    context.budget = Budget(total_s=1.0, deadline=time.monotonic() - 1.0)
    stage = FakeStage("smoke")
    run = execute([stage], context)
    assert stage.ran_at is None
    assert (run.stages[0].verdict, run.stages[0].reason) == (
        Verdict.INFRASTRUCTURE,
        "the time budget ran out before this stage",
    )
    assert run.exit_code is ExitCode.INFRASTRUCTURE  # nothing was tested


def test_a_green_stage_and_one_left_out_for_the_budget_is_not_a_green_run(context: RunContext) -> None:
    """smoke passed but contract never ran for lack of time: exit 4, and Allure shows contract as broken."""

    class SpendsTheBudget(FakeStage):
        def run(self, context: RunContext) -> StageResult:
            context.budget = Budget(total_s=1.0, deadline=time.monotonic() - 1.0)
            return super().run(context)

    contract = FakeStage("contract")
    run = execute([SpendsTheBudget("smoke"), contract], context)
    assert contract.ran_at is None
    assert [(s.name, s.verdict) for s in run.stages] == [
        ("smoke", Verdict.PASSED),
        ("contract", Verdict.INFRASTRUCTURE),
    ]
    assert run.exit_code is ExitCode.INFRASTRUCTURE
    [failure] = run.stages[1].failures
    assert failure.kind.value == "infrastructure" and failure.error_type == "TimeoutError"
    results = [json.loads(p.read_text()) for p in context.folder.allure_results.glob("*-result.json")]
    assert {r["name"]: r["status"] for r in results}["contract stage"] == "broken"


def test_ctrl_c_stops_the_run_writes_reports_and_exits_130(context: RunContext) -> None:
    """Interrupted: later stages are skipped, summaries are still written, exit code 130."""
    later = FakeStage("load")
    run = execute([FakeStage("smoke", KeyboardInterrupt()), later], context)
    assert later.ran_at is None
    assert run.exit_code is ExitCode.INTERRUPTED
    assert (context.reports_dir / "summary.md").is_file()


def test_a_run_leaves_its_report_folder_and_a_history_entry(context: RunContext, tmp_path: Path) -> None:
    """reports/<run-id>/ gets JUnit, Allure extras and both summaries; the history gets the run."""
    with History.open(tmp_path / "state") as history:
        run = execute([FakeStage("smoke")], context, skipped=[StageResult.skipped("load", "--skip")], history=history)
        assert history.get(run.run_id).verdict is Verdict.PASSED
    root = context.reports_dir
    assert root.name == "20261128-040512-ab12"
    for name in ("summary.md", "summary.json", "junit/smoke.xml"):
        assert (root / name).is_file(), name
    assert (root / "allure-results" / "environment.properties").is_file()
    assert (root / "allure-results" / "categories.json").is_file()
    assert [s.name for s in run.stages] == ["smoke", "load"]


def test_the_stage_order_is_the_documented_one() -> None:
    """smoke -> contract -> properties -> hardware rig -> load."""
    assert STAGE_ORDER == ("smoke", "contract", "properties", "hw", "load")


def test_a_budget_is_positive_and_clamps_what_a_stage_may_spend() -> None:
    """A zero budget is a usage error; clamp never gives more than is left."""
    with pytest.raises(UsageError):
        Budget.start(0)
    budget = Budget.start(30)
    assert 0 < budget.clamp(1000) <= 30 and budget.clamp(2) == 2


def test_a_usage_error_in_a_stage_stops_the_run_and_exits_2(context: RunContext, tmp_path: Path) -> None:
    """A configuration error is nobody's defect: later stages are skipped, reports written, no history."""
    later = FakeStage("load")
    with History.open(tmp_path / "state") as history:
        with pytest.raises(UsageError, match="unknown tower"):
            execute([FakeStage("smoke", UsageError("unknown tower 01FF")), later], context, history=history)
        assert history.run_ids() == []
    assert later.ran_at is None
    summary = json.loads((context.reports_dir / "summary.json").read_text())
    assert [s["reason"] for s in summary["stages"]] == [
        "usage error: unknown tower 01FF",
        "a usage error stopped the run",
    ]


def test_the_run_folder_is_absolute_for_child_processes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A relative reports dir becomes absolute: pytest and Locust children write from another cwd."""
    monkeypatch.chdir(tmp_path)
    settings = dataclasses.replace(Settings(), reports_dir=Path("reports"))
    context = new_context(settings=settings, target=TargetInfo("local"), redactor=Redactor(), run_id="r1")
    assert context.reports_dir == tmp_path / "reports" / "r1"
