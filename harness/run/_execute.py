"""The stages in order under one budget, each failure classified, then the reports and the history."""

from __future__ import annotations

import importlib.util
import logging
import sqlite3
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from functools import partial
from pathlib import Path

from harness.assumptions import Seen, findings, observing, read_logs
from harness.config import PROJECT_ROOT
from harness.errors import UsageError
from harness.history import History
from harness.report import (
    AllureTest,
    CaseOutcome,
    Failure,
    FailureKind,
    RunResult,
    StageResult,
    Verdict,
    finish_reports,
)
from harness.run._context import STAGE_ORDER, RunContext, Stage, StageInterrupted
from harness.run._load_stage import LoadStage
from harness.run._pytest_stage import HardwareStage, PytestStage
from harness.run._smoke import SmokeStage

__all__ = ["StageFactory", "available_stages", "execute", "findings_dir", "select_stages"]

StageFactory = Callable[[], Stage]

log = logging.getLogger(__name__)


def _built(module: str) -> bool:
    """Whether a module a stage needs exists in this installation (without importing it)."""
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:
        return False


def _has_tests(path: Path) -> bool:
    return path.is_file() or (path.is_dir() and any(path.glob("test_*.py")))


def available_stages(root: Path = PROJECT_ROOT) -> dict[str, StageFactory]:
    """The stages this installation can run, in ``STAGE_ORDER``; a stage's modules load when it runs."""
    factories: dict[str, StageFactory] = {}
    if _built("harness.flow"):
        factories["smoke"] = SmokeStage
    pytest_stages: dict[str, PytestStage] = {
        "contract": PytestStage("contract", ("contracts/test_contract.py",), root=root, needs_tower=True),
        "properties": PytestStage(
            "properties",
            ("contracts/test_properties.py",),
            root=root,
            seeded=True,
            needs_tower=True,
            plugins_off=(*PytestStage.plugins_off, "schemathesis"),
        ),
        "hw": HardwareStage(
            "hw", ("hw_tests",), root=root, plugins_off=(*PytestStage.plugins_off, "schemathesis", "hypothesispytest")
        ),
    }
    for name, stage in pytest_stages.items():
        if all(_has_tests(root / path) for path in stage.paths):
            factories[name] = lambda stage=stage: stage  # type: ignore[misc]
    locustfile = root / "loadtests" / "locustfile.py"
    if _built("harness.load") and locustfile.is_file():
        factories["load"] = partial(_load_stage, locustfile)
    return {name: factories[name] for name in STAGE_ORDER if name in factories}


def _load_stage(locustfile: Path) -> Stage:
    return LoadStage(locustfile=locustfile)


def _parse_names(values: Sequence[str]) -> list[str]:
    """``--only smoke,load --only hw`` as ``["smoke", "load", "hw"]``."""
    return [name.strip().lower() for value in values for name in value.split(",") if name.strip()]


def select_stages(
    available: Mapping[str, StageFactory], *, only: Sequence[str] = (), skip: Sequence[str] = ()
) -> tuple[list[Stage], list[StageResult]]:
    """The stages to run in order, and a skipped result for each stage left out by ``--skip``.

    An unknown name, or one this installation cannot run, is a usage error naming the ones it can.
    """
    only_names, skip_names = _parse_names(only), _parse_names(skip)
    for option, given, names in (("--only", only, only_names), ("--skip", skip, skip_names)):
        if given and not names:
            raise UsageError(f"{option} names no stage; stages: {', '.join(available) or 'none'}")
    for name in [*only_names, *skip_names]:
        if name not in available:
            known = ", ".join(available) or "none"
            why = "is not built into this installation" if name in STAGE_ORDER else "is not a stage"
            raise UsageError(f"stage {name!r} {why}; stages: {known}")
    chosen = [name for name in available if (not only_names or name in only_names)]
    skipped = [StageResult.skipped(name, "--skip") for name in chosen if name in skip_names]
    running = [available[name]() for name in chosen if name not in skip_names]
    if not running:
        raise UsageError("no stage left to run: check --only and --skip")
    return running, skipped


def _crashed(stage: Stage, error: BaseException, context: RunContext, started_ms: int) -> StageResult:
    """A stage that raised: classify the error, keep its evidence, say it in Allure."""
    failure = Failure.from_exception(error, f"{stage.name} stage")
    _allure_if_room(
        context,
        AllureTest(
            name=f"{stage.name} stage",
            full_name=f"locker-harness.{stage.name}.stage",
            stage=stage.name,
            outcome=CaseOutcome.FAILED if failure.kind is FailureKind.PRODUCT else CaseOutcome.BROKEN,
            start_ms=started_ms,
            stop_ms=int(time.time() * 1000),
            failure=failure,
        ),
    )
    return StageResult(stage.name, failure.kind.verdict, reason=failure.message.splitlines()[0], failures=[failure])


def _skipped_in_allure(result: StageResult, context: RunContext) -> None:
    now_ms = int(time.time() * 1000)
    _allure_if_room(
        context,
        AllureTest(
            name=f"{result.name} stage",
            full_name=f"locker-harness.{result.name}.stage",
            stage=result.name,
            outcome=CaseOutcome.SKIPPED,
            start_ms=now_ms,
            stop_ms=now_ms,
            description=f"skipped: {result.reason}",
        ),
    )


def _allure_if_room(context: RunContext, test: AllureTest) -> None:
    """Write ``test`` to the run's Allure results; on a full disk, go on: the stage's verdict is still
    told and recorded, and the reports' own writing says what evidence was lost."""
    try:
        context.allure.write(test)
    except OSError as error:
        log.warning("the Allure result of %s could not be written (%s)", test.name, error.strerror)


def findings_dir(context: RunContext, stage: str) -> Path:
    """Where a stage's child processes leave their observations (``$LOCKER_HARNESS_FINDINGS_DIR``)."""
    return context.folder.root / stage / "findings"


def _judge_assumptions(result: StageResult, seen: Sequence[Seen], context: RunContext) -> None:
    """The assumptions the stage refuted (its own observations and its children's), judged against
    the values in effect for the run; a file a child left unreadable is the harness's defect."""
    children, unreadable = read_logs(findings_dir(context, result.name))
    result.findings = findings([*seen, *children], context.settings.assume, stage=result.name)
    for what in unreadable:
        result.failures.append(
            Failure(FailureKind.TEST, f"{result.name} observations", f"unreadable observations {what}", "ValueError")
        )


def execute(
    stages: Sequence[Stage],
    context: RunContext,
    *,
    skipped: Sequence[StageResult] = (),
    history: History | None = None,
) -> RunResult:
    """Run ``stages`` in order within the budget, write the reports, record the history.

    Ctrl-C stops the run after the current stage's own cleanup: the stages not reached are
    marked skipped, the reports are still written, and the result says it was interrupted. A
    ``UsageError`` from a stage stops the run the same way, then propagates (exit 2): a wrong
    configuration is not evidence about the target, so it is not recorded in the history.
    """
    run = RunResult(
        run_id=context.run_id,
        target=context.target,
        started_at=datetime.now(UTC),
        seed=context.seed,
        environment=context.environment,
        strict_assumptions=context.strict_assumptions,
    )
    started = time.perf_counter_ns()
    results: dict[str, StageResult] = {result.name: result for result in skipped}
    observer = context.observer
    usage: UsageError | None = None
    for stage in stages:
        if run.interrupted or usage is not None:
            why = "the run was interrupted" if run.interrupted else "a usage error stopped the run"
            results[stage.name] = StageResult.skipped(stage.name, why)
            continue
        if context.budget.expired:
            # A stage asked for and never run tested nothing: could not test, never a quiet skip.
            spent = TimeoutError("the time budget ran out before this stage")
            results[stage.name] = _crashed(stage, spent, context, int(time.time() * 1000))
            continue
        if observer is not None:
            observer.stage_started(stage.name)
        stage_started = time.perf_counter_ns()
        started_ms = int(time.time() * 1000)
        try:
            # What the stage's answers showed of our assumptions: in this process, and in its children.
            with observing() as seen:
                result = stage.run(context)
            _judge_assumptions(result, seen.entries(), context)
        except StageInterrupted as stopped:
            run.interrupted = True
            result = stopped.result  # what it measured before the stop, a defect among it
            result.reason = "; ".join(filter(None, ["interrupted", result.reason]))
        except KeyboardInterrupt:
            run.interrupted = True
            result = StageResult.skipped(stage.name, "interrupted")
        except UsageError as error:
            # The configuration is wrong for every stage alike: stop, keep the evidence, exit 2.
            usage = error
            result = StageResult.skipped(stage.name, f"usage error: {error}")
        except Exception as error:  # every stage failure is evidence, not the end of the run
            result = _crashed(stage, error, context, started_ms)
        if not result.duration_ns:
            result.duration_ns = time.perf_counter_ns() - stage_started
        results[stage.name] = result
        if observer is not None:
            observer.stage_finished(result)
    run.stages = [results[name] for name in STAGE_ORDER if name in results]
    run.stages += [result for name, result in results.items() if name not in STAGE_ORDER]
    for result in run.stages:
        if result.verdict is Verdict.SKIPPED:
            _skipped_in_allure(result, context)
    run.duration_ns = time.perf_counter_ns() - started
    run.target = context.target  # a stage may have learnt more (the firmware, from the tower)
    try:
        finish_reports(run, context.folder, redactor=context.redactor)
        # The last pass over the evidence: files that child tools wrote (Schemathesis's HAR and VCR,
        # Locust's CSV and HTML, pytest's JUnit) go through the same redaction as everything else.
        context.redactor.tree(context.folder.root)
    except OSError as error:  # a full disk: what was measured is still told, and recorded below
        run.evidence_lost.append(f"the reports under {context.folder.root} could not be written ({error.strerror})")
    if usage is not None:
        raise usage
    if history is not None:
        try:
            history.record(run, redactor_=context.redactor)
        except (OSError, sqlite3.Error) as error:
            run.evidence_lost.append(f"the run's history row could not be written ({error})")
    return run
