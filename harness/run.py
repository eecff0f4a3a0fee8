"""``locker-harness run``: the stages in order, one verdict, one exit code, evidence on disk.

A stage is anything with a ``name`` and ``run(context) -> StageResult``: smoke, contract,
properties, the hardware rig, load. They run in that order under one time budget; each stage
reads ``context.budget`` and keeps within it. A stage that raises is not the end of the run:
its exception is classified (product defect, infrastructure, test defect), recorded, and the
next stage runs. The overall verdict is the worst stage verdict (a defect beats a breach
beats infrastructure), and it decides the exit code (``harness.errors.ExitCode``).

Stages that are not built yet are simply not registered: ``available_stages()`` lists what
this installation can run.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import os
import subprocess
import sys
import time
import urllib.parse
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cached_property
from pathlib import Path
from typing import Any, Final, Protocol, runtime_checkable

import httpx

from harness.config import PRODUCTION_WRITES_VALUE, Settings, TargetKind
from harness.errors import TargetUnreachable, UsageError
from harness.history import History
from harness.ledger import RUN_ID_ENV
from harness.metrics import Latencies
from harness.redaction import Redactor
from harness.report import (
    AllureAttachment,
    AllureTest,
    AllureWriter,
    CaseOutcome,
    Failure,
    FailureKind,
    Figure,
    RunFolder,
    RunResult,
    StageResult,
    StepRecorder,
    TargetInfo,
    Verdict,
    finish_reports,
    new_run_id,
    read_junit,
    verdict_of,
)

__all__ = [
    "DEFAULT_BUDGET_S",
    "LATENCIES_ENV",
    "PROJECT_ROOT",
    "STAGE_ORDER",
    "STAGE_SUMMARY",
    "Budget",
    "ChildStage",
    "PytestStage",
    "RunContext",
    "RunObserver",
    "SmokeStage",
    "Stage",
    "StageFactory",
    "available_stages",
    "execute",
    "new_context",
    "read_latencies",
    "read_stage_summary",
    "select_stages",
    "target_environment",
]

#: The order stages run in; a stage's name is one of these.
STAGE_ORDER: Final = ("smoke", "contract", "properties", "hw", "load")
#: Seconds a whole run may take unless told otherwise.
DEFAULT_BUDGET_S: Final = 600.0
#: Seconds kept back from the stages for writing reports and the history.
REPORT_RESERVE_S: Final = 5.0
#: Evidence keeps at most this much of a body that is neither JSON nor a form.
_MAX_BODY_CHARS: Final = 20_000
_PROBE_TIMEOUT_S: Final = 3.0


@dataclass(frozen=True, slots=True)
class Budget:
    """A run's time budget: one deadline on the monotonic clock that every stage respects."""

    total_s: float
    deadline: float  # time.monotonic() value

    @classmethod
    def start(cls, total_s: float, *, reserve_s: float = REPORT_RESERVE_S) -> Budget:
        if total_s <= 0:
            raise UsageError(f"the time budget must be more than 0 seconds, not {total_s:g}")
        return cls(total_s, time.monotonic() + max(total_s - reserve_s, total_s / 2))

    def remaining(self) -> float:
        """Seconds left for stages (never negative)."""
        return max(self.deadline - time.monotonic(), 0.0)

    @property
    def expired(self) -> bool:
        return self.remaining() <= 0.0

    def clamp(self, seconds: float) -> float:
        """``seconds``, or less if the budget ends sooner: what a stage may spend on one thing."""
        return min(seconds, self.remaining())


@dataclass
class RunContext:
    """What every stage gets: where to point, where to write, how long it has, which seed."""

    run_id: str
    target: TargetInfo
    folder: RunFolder
    budget: Budget
    seed: int
    redactor: Redactor
    #: The resolved configuration, bound to the running target (the embedded sandbox's URL).
    settings: Settings = field(default_factory=Settings)
    #: Extra facts for ``environment.properties`` (fault profile, BLE backend, ...); stages may add.
    environment: dict[str, str] = field(default_factory=dict)
    observer: RunObserver | None = None

    @property
    def reports_dir(self) -> Path:
        """``reports/<run-id>/``."""
        return self.folder.root

    @cached_property
    def allure(self) -> AllureWriter:
        """The Allure writer of this run's results folder, for stages that are not pytest runs."""
        return AllureWriter(self.folder.allure_results, redactor=self.redactor)

    def progress(self, stage: str, message: str) -> None:
        """Tell whoever watches (the progress display) what a stage is doing now."""
        if self.observer is not None:
            self.observer.stage_progress(stage, message)


@runtime_checkable
class Stage(Protocol):
    """One stage of a run."""

    name: str

    def run(self, context: RunContext) -> StageResult:
        """Run within ``context.budget``; report what was found, never raise for a failed check."""
        ...


class RunObserver(Protocol):
    """Listens to a run as it goes (the rich progress display, a test's recorder)."""

    def stage_started(self, name: str) -> None: ...

    def stage_progress(self, name: str, message: str) -> None: ...

    def stage_finished(self, result: StageResult) -> None: ...


StageFactory = Callable[[], Stage]


def _built(module: str) -> bool:
    """Whether a module a stage needs exists in this installation (without importing it)."""
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:
        return False


#: The checkout the harness runs from: where contracts/ and hw_tests/ live.
PROJECT_ROOT: Final = Path(__file__).resolve().parents[1]


def _has_tests(path: Path) -> bool:
    return path.is_file() or (path.is_dir() and any(path.glob("test_*.py")))


def available_stages(root: Path = PROJECT_ROOT) -> dict[str, StageFactory]:
    """The stages this installation can run, in ``STAGE_ORDER``; a stage's modules load when it runs."""
    factories: dict[str, StageFactory] = {}
    if _built("harness.flow"):
        factories["smoke"] = SmokeStage
    pytest_stages = {
        "contract": PytestStage("contract", ("contracts/test_contract.py",), root=root),
        "properties": PytestStage("properties", ("contracts/test_properties.py",), root=root, seeded=True),
        "hw": PytestStage("hw", ("hw_tests",), root=root, own_local_sandbox=True),
    }
    for name, stage in pytest_stages.items():
        if all(_has_tests(root / path) for path in stage.paths):
            factories[name] = lambda stage=stage: stage  # type: ignore[misc]
    return {name: factories[name] for name in STAGE_ORDER if name in factories}


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
    context.allure.write(
        AllureTest(
            name=f"{stage.name} stage",
            full_name=f"locker-harness.{stage.name}.stage",
            stage=stage.name,
            outcome=CaseOutcome.FAILED if failure.kind is FailureKind.PRODUCT else CaseOutcome.BROKEN,
            start_ms=started_ms,
            stop_ms=int(time.time() * 1000),
            failure=failure,
        )
    )
    return StageResult(stage.name, failure.kind.verdict, reason=failure.message.splitlines()[0], failures=[failure])


def _skipped_in_allure(result: StageResult, context: RunContext) -> None:
    now_ms = int(time.time() * 1000)
    context.allure.write(
        AllureTest(
            name=f"{result.name} stage",
            full_name=f"locker-harness.{result.name}.stage",
            stage=result.name,
            outcome=CaseOutcome.SKIPPED,
            start_ms=now_ms,
            stop_ms=now_ms,
            description=f"skipped: {result.reason}",
        )
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
            results[stage.name] = StageResult.skipped(stage.name, "the time budget ran out before this stage")
            continue
        if observer is not None:
            observer.stage_started(stage.name)
        stage_started = time.perf_counter_ns()
        started_ms = int(time.time() * 1000)
        try:
            result = stage.run(context)
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
    finish_reports(run, context.folder, redactor=context.redactor)
    # The last pass over the evidence: files that child tools wrote (Schemathesis's HAR and VCR,
    # Locust's CSV and HTML, pytest's JUnit) go through the same redaction as everything else.
    context.redactor.tree(context.folder.root)
    if usage is not None:
        raise usage
    if history is not None:
        history.record(run)
    return run


def new_context(
    *,
    settings: Settings,
    target: TargetInfo,
    redactor: Redactor,
    budget_s: float = DEFAULT_BUDGET_S,
    seed: int = 0,
    run_id: str | None = None,
    observer: RunObserver | None = None,
) -> RunContext:
    """A context with a fresh run id and its report folder created under ``settings.reports_dir``."""
    run_id = run_id or new_run_id()
    return RunContext(
        run_id=run_id,
        target=target,
        folder=RunFolder.create(settings.reports_dir, run_id),
        budget=Budget.start(budget_s),
        seed=seed,
        redactor=redactor,
        settings=settings,
        observer=observer,
    )


# -- the smoke stage: one delivery through harness.flow ------------------------------------------


class SmokeStage:
    """One complete delivery against the target, each flow step timed, with its HTTP evidence.

    Doors open through the virtual sandbox's control plane (``local`` and URL targets); on
    Harbor's own hosts a door needs a tower, which is the hardware rig's stage.
    """

    name = "smoke"

    def run(self, context: RunContext) -> StageResult:
        settings = context.settings
        if settings.target.kind in (TargetKind.SANDBOX, TargetKind.PRODUCTION):
            return StageResult.skipped(
                self.name, f"doors on {settings.target.name} open only at a tower: the hw stage does that"
            )
        if settings.target.api_url is None:
            raise UsageError("the smoke stage needs a running target: start the sandbox first")
        if settings.target.kind is TargetKind.URL and not _serves_control_plane(settings.target.api_url):
            return StageResult.skipped(
                self.name, f"{settings.target.name} has no virtual doors (/_sim): a tower's doors are the hw stage's"
            )
        recorder = StepRecorder(
            self.name, "delivery flow", full_name="locker-harness.smoke.delivery", planned=_flow_steps()
        )
        started = time.perf_counter_ns()
        try:
            asyncio.run(_deliver(context, recorder))
        except (KeyboardInterrupt, UsageError):
            raise
        except Exception as error:  # classified into the stage's evidence, never the end of the run
            recorder.fail(error)
        recorder.close()
        return _smoke_result(self.name, context, recorder, time.perf_counter_ns() - started)


def _serves_control_plane(url: str) -> bool:
    """Whether ``url`` is a virtual sandbox (a second ``locker-harness sim``, a colleague's)."""
    try:
        response = httpx.get(f"{url}/_sim/bugs", timeout=_PROBE_TIMEOUT_S)
    except httpx.RequestError as error:
        raise TargetUnreachable(f"{url} does not answer ({type(error).__name__})", url=url) from None
    return response.status_code == 200


def _flow_steps() -> list[str]:
    from harness.flow import Step

    return [step.value for step in Step]


class _CapturingTransport(httpx.AsyncBaseTransport):
    """Keeps each request and response (redacted) until the step that made them collects them."""

    def __init__(self, inner: httpx.AsyncBaseTransport, redactor: Redactor) -> None:
        self._inner = inner
        self._redactor = redactor
        self._exchanges: list[AllureAttachment] = []

    def drain(self) -> list[AllureAttachment]:
        exchanges, self._exchanges = self._exchanges, []
        return exchanges

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        started = time.perf_counter_ns()
        try:
            response = await self._inner.handle_async_request(request)
            await response.aread()
        except BaseException as error:
            self._keep(request, None, time.perf_counter_ns() - started, error)
            raise
        self._keep(request, response, time.perf_counter_ns() - started, None)
        return response

    def _keep(
        self, request: httpx.Request, response: httpx.Response | None, elapsed_ns: int, error: BaseException | None
    ) -> None:
        redactor = self._redactor
        outcome = f"{response.status_code}" if response is not None else type(error).__name__
        evidence: dict[str, Any] = {
            "request": {
                "method": request.method,
                "url": redactor.text(str(request.url)),
                "headers": redactor.headers(request.headers.multi_items()),
                "body": _body(request.headers.get("content-type", ""), request.content, redactor),
            },
            "elapsed_ms": round(elapsed_ns / 1e6, 3),
        }
        if response is not None:
            evidence["response"] = {
                "status": response.status_code,
                "headers": redactor.headers(response.headers.multi_items()),
                "body": _body(response.headers.get("content-type", ""), response.content, redactor),
            }
        else:
            evidence["error"] = redactor.text(f"{type(error).__name__}: {error}")
        name = f"{request.method} {request.url.path} -> {outcome}"
        self._exchanges.append(AllureAttachment.json(name, evidence))

    async def aclose(self) -> None:
        await self._inner.aclose()


def _body(content_type: str, content: bytes, redactor: Redactor) -> Any:
    """A body as evidence: JSON and form bodies by key, anything else as (redacted) text."""
    if not content:
        return None
    text = content.decode("utf-8", errors="replace")
    if "json" in content_type:
        try:
            return redactor.value(json.loads(text))
        except ValueError:
            pass
    if "x-www-form-urlencoded" in content_type:
        return redactor.value(dict(urllib.parse.parse_qsl(text, keep_blank_values=True)))
    return redactor.text(text[:_MAX_BODY_CHARS])


async def _deliver(context: RunContext, recorder: StepRecorder) -> None:
    from harness.api import AsyncHarborClient
    from harness.flow import ControlPlaneOpener, FlowEvent, Released, StepFinished, StepStarted, run_delivery
    from harness.ledger import ledger_holds

    settings = context.settings
    assert settings.target.api_url is not None
    capture = _CapturingTransport(httpx.AsyncHTTPTransport(), context.redactor)

    def listen(event: FlowEvent) -> None:
        if isinstance(event, StepStarted):
            capture.drain()  # anything before the step (none today) is not this step's evidence
            recorder.started(event.step.value)
            context.progress("smoke", event.step.value)
        elif isinstance(event, StepFinished):
            parameters = {"locker": str(event.locker_id)} if event.locker_id is not None else {}
            if event.locker_status is not None:
                parameters["status after"] = event.locker_status.wire_name
            recorder.finished(
                event.step.value,
                event.duration_ns,
                error=event.error if not event.ok else None,
                parameters=parameters,
                attachments=capture.drain(),
            )
        elif isinstance(event, Released):
            recorder.note(event.note)

    holds = ledger_holds(settings, run_id=context.run_id)  # for `locker-harness cleanup` after a crash
    async with (
        AsyncHarborClient(settings, transport=capture, redactor=context.redactor, holds=holds) as client,
        ControlPlaneOpener(settings.target.api_url, transport=capture) as opener,
    ):
        async with asyncio.timeout(max(context.budget.remaining(), 0.001)):
            await run_delivery(client, opener, tower_id=settings.tower(), listeners=[listen, holds.listener])


def _smoke_result(name: str, context: RunContext, recorder: StepRecorder, duration_ns: int) -> StageResult:
    context.allure.write(
        recorder.allure_test(
            parameters={"target": context.target.name, "tower": context.target.tower or "-"},
            description="The seed's delivery: reserve, drop-off token, open, close, pickup token, open, close.",
        )
    )
    cases = recorder.cases()
    passed = sum(case.outcome is CaseOutcome.PASSED for case in cases)
    figures: dict[str, Figure] = {"steps": f"{passed}/{len(cases)}"}
    if recorder.completed:
        figures["delivery ms"] = round(sum(case.duration_ns for case in cases) / 1e6, 2)
    failures = recorder.failures
    result = StageResult(
        name,
        verdict_of(failures),
        reason=failures[0].message.splitlines()[0] if failures else "",
        figures=figures,
        latencies=recorder.latencies,
        failures=failures,
        cases=cases,
        duration_ns=duration_ns,
    )
    if result.summaries():
        slowest = max(result.summaries(), key=lambda s: s.max_ms)
        figures["slowest"] = f"{slowest.name} {slowest.max_ms:.1f} ms"
    return result


# -- pytest-based stages: the contract suite, the property suite, the hardware rig -----------------

#: A child process that timed something (BLE phases in the rig, Locust steps) writes its
#: histograms into this folder: one JSON file per process, ``{name: encoded HdrHistogram}``
#: (``Latencies.encode()``). The stage merges them exactly, so percentiles are never averaged.
LATENCIES_ENV: Final = "LOCKER_HARNESS_LATENCIES_DIR"


def read_latencies(folder: Path) -> tuple[Latencies, list[str]]:
    """Every histogram the stage's child processes left in ``folder``, merged by name, and the
    files that could not be read (a harness defect, reported without losing the rest)."""
    merged = Latencies()
    unreadable: list[str] = []
    for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        try:
            encoded = json.loads(path.read_text(encoding="utf-8"))
            merged.merge(Latencies.decode({str(k): str(v) for k, v in encoded.items()}))
        except (ValueError, TypeError, AttributeError) as error:
            unreadable.append(f"{path.name}: {error}")
    return merged, unreadable


#: pytest's own exit codes (``pytest.ExitCode``), named here to keep pytest out of this import.
_PYTEST_OK, _PYTEST_FAILED, _PYTEST_NO_TESTS = 0, 1, 5


def target_environment(settings: Settings, *, seed: int) -> dict[str, str]:
    """``HARBOR_*`` variables that point a child process (pytest, Locust) at this run's target.

    Secrets travel in the environment only, never on a command line (``ps`` shows those).
    The embedded sandbox is passed as its URL: the child tests the very sandbox this run
    started, with its bug switches and faults.
    """
    target = settings.target
    served_here = target.kind in (TargetKind.LOCAL, TargetKind.URL) and target.api_url is not None
    env = {"HARBOR_TARGET": target.api_url if served_here and target.api_url else target.name}
    if served_here and target.token_url:
        env["HARBOR_TOKEN_URL"] = target.token_url
    pairs = {
        "HARBOR_CLIENT_ID": settings.client_id,
        "HARBOR_CLIENT_SECRET": settings.client_secret.reveal() if settings.client_secret else None,
        "HARBOR_SECOND_CLIENT_ID": settings.second_client_id,
        "HARBOR_SECOND_CLIENT_SECRET": settings.second_client_secret.reveal()
        if settings.second_client_secret
        else None,
        "HARBOR_TOWER_ID": settings.tower_id,
        "HARBOR_BLE": settings.ble.value,
        "HARBOR_TIMEOUT": repr(settings.timeout),
        "HARBOR_CONNECT_TIMEOUT": repr(settings.connect_timeout),
        "HARBOR_STATUS_TIMEOUT": repr(settings.status_timeout),
        "LOCKER_HARNESS_SEED": str(seed),
        # Absolute: a child runs from the checkout, and its ledger rows belong with this run's.
        "HARBOR_STATE_DIR": str(settings.state_dir.resolve()),
    }
    env |= {key: value for key, value in pairs.items() if value is not None}
    if settings.allow_production_writes:
        env["HARBOR_ALLOW_PRODUCTION_WRITES"] = PRODUCTION_WRITES_VALUE
    return env


@dataclass(frozen=True)
class PytestStage:
    """A stage that is a pytest run in a child process: JUnit and Allure results land in the run's folder.

    A child process keeps the suite's plugins, Hypothesis settings and any monkeypatching out of
    the orchestrator, and lets the budget end it. Its JUnit file is read back so the stage's
    verdict, the summary and the history classify failures like every other stage.
    """

    name: str
    paths: tuple[str, ...]
    root: Path = PROJECT_ROOT
    seeded: bool = False  # pass the run's seed to Hypothesis
    #: On ``local`` the suite starts its own sandbox in its process (the hardware rig: the virtual
    #: radio lives beside the sandbox's firmware and cannot cross a process boundary).
    own_local_sandbox: bool = False
    extra_args: tuple[str, ...] = ()

    def command(self, context: RunContext) -> list[str]:
        folder = context.folder
        args = [
            sys.executable,
            "-m",
            "pytest",
            *self.paths,
            "-q",
            "-p",
            "no:cacheprovider",
            f"--junitxml={folder.junit(self.name)}",
            "-o",
            f"junit_suite_name={self.name}",
            # xunit1 keeps the properties tests record (record_property): the rig reports its
            # percentiles that way, and xunit2 turns them into a warning, an error under -W error.
            "-o",
            "junit_family=xunit1",
            f"--alluredir={folder.allure_results}",
            *self.extra_args,
        ]
        if self.seeded:
            args.append(f"--hypothesis-seed={context.seed}")
        return args

    def _target(self, context: RunContext) -> dict[str, str]:
        settings = context.settings
        if not (self.own_local_sandbox and settings.target.kind is TargetKind.LOCAL):
            return target_environment(settings, seed=context.seed)
        bugs = context.environment.get("sim.bugs", "-")
        return {
            "HARBOR_TARGET": "local",
            "HARBOR_BLE": "virtual",
            "HARBOR_TOWER_ID": settings.tower_id or "",
            "HARBOR_HW_SIM_BUG": "" if bugs == "-" else bugs,
            "LOCKER_HARNESS_SEED": str(context.seed),
        }

    def run(self, context: RunContext) -> StageResult:
        log = context.folder.stage_dir(self.name) / "pytest.log"
        latencies_dir = context.folder.stage_dir(self.name) / "latencies"
        environment = {
            **os.environ,
            **self._target(context),
            LATENCIES_ENV: str(latencies_dir),
            RUN_ID_ENV: context.run_id,  # the child's holds go to the ledger under this run
        }
        context.progress(self.name, f"pytest {' '.join(self.paths)}")
        started = time.perf_counter_ns()
        try:
            done = subprocess.run(
                self.command(context),
                cwd=self.root,
                env=environment,
                capture_output=True,
                text=True,
                timeout=max(context.budget.remaining(), 1.0),
                check=False,
            )
        except subprocess.TimeoutExpired as expired:
            _write_log(log, expired.stdout, expired.stderr, context.redactor)
            raise TimeoutError(f"pytest ran past the run's time budget; its output: {log.name}") from None
        duration_ns = time.perf_counter_ns() - started
        _write_log(log, done.stdout, done.stderr, context.redactor)
        junit = context.folder.junit(self.name)
        if done.returncode == _PYTEST_NO_TESTS:
            return StageResult.skipped(self.name, "pytest collected no tests")
        if done.returncode not in (_PYTEST_OK, _PYTEST_FAILED) or not junit.is_file():
            tail = " | ".join(context.redactor.text(done.stdout + done.stderr).strip().splitlines()[-3:])
            raise RuntimeError(f"pytest exited {done.returncode} without results: {tail}")
        cases = read_junit(junit)
        failures = [case.failure for case in cases if case.failure is not None]
        latencies, unreadable = read_latencies(latencies_dir)
        failures += [
            Failure(FailureKind.TEST, f"{self.name} latencies", f"unreadable histograms {what}", "ValueError")
            for what in unreadable
        ]
        counts = {outcome: sum(case.outcome is outcome for case in cases) for outcome in CaseOutcome}
        figures: dict[str, Figure] = {
            "tests": len(cases),
            "passed": counts[CaseOutcome.PASSED],
            "failed": counts[CaseOutcome.FAILED],
            "broken": counts[CaseOutcome.BROKEN],
            "skipped": counts[CaseOutcome.SKIPPED],
        }
        if not cases:
            return StageResult.skipped(self.name, "pytest reported no test cases")
        return StageResult(
            self.name,
            verdict_of(failures),
            reason=failures[0].message.splitlines()[0] if failures else "",
            figures=figures,
            latencies=latencies,
            failures=failures,
            artefacts=[junit, log],
            duration_ns=duration_ns,
        )


def _write_log(path: Path, stdout: str | bytes | None, stderr: str | bytes | None, redactor: Redactor) -> None:
    def text(value: str | bytes | None) -> str:
        return value.decode("utf-8", "replace") if isinstance(value, bytes) else (value or "")

    path.write_text(redactor.text(text(stdout) + text(stderr)), encoding="utf-8")


# -- child-process stages with a summary file: the load stage's seam --------------------------------

#: Where a child stage writes its summary: ``reports/<run-id>/<stage>/stage-summary.json``.
STAGE_SUMMARY: Final = "stage-summary.json"


def read_stage_summary(name: str, path: Path) -> StageResult:
    """A stage's result from the JSON summary its child process wrote.

    The format (all keys optional)::

        {"figures": {"requests": 1200, "rps": 398.5},
         "histograms": {"reserve": "<Latencies.encode() value>", ...},
         "failures": [{"kind": "product", "name": "reserve", "message": "...", "error_type": "ProductDefect"}],
         "breaches": ["reserve p95 212 ms > 150 ms"]}

    A product failure fails the stage; otherwise a breached gate makes it ``breached`` (exit 3);
    infrastructure or test failures alone make it ``infrastructure``.
    """
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
        figures = {str(k): v for k, v in dict(document.get("figures", {})).items() if isinstance(v, int | float | str)}
        latencies = Latencies.decode({str(k): str(v) for k, v in dict(document.get("histograms", {})).items()})
        failures = [
            Failure(
                FailureKind(str(item.get("kind", "test"))),
                str(item.get("name", name)),
                str(item.get("message", "")),
                str(item.get("error_type", "")),
                step=item.get("step"),
            )
            for item in document.get("failures", [])
        ]
        breaches = [str(line) for line in document.get("breaches", [])]
    except (OSError, ValueError, TypeError, AttributeError) as error:
        raise RuntimeError(f"{path} is not a stage summary: {error}") from None
    verdict = verdict_of(failures)
    if breaches and Verdict.BREACHED.rank > verdict.rank:
        verdict = Verdict.BREACHED
    reason = (
        failures[0].message
        if verdict is Verdict.FAILED
        else "; ".join(breaches) or (failures[0].message if failures else "")
    )
    return StageResult(name, verdict, reason=reason, figures=figures, latencies=latencies, failures=failures)


@dataclass(frozen=True)
class ChildStage:
    """A stage run as a child process that writes a stage summary (Locust must never enter this process).

    ``command`` builds the child's argv from the context and the summary path; the child gets the
    target in ``HARBOR_*`` and ``LOCKER_HARNESS_STAGE_SUMMARY``, and ends within the budget.
    """

    name: str
    command: Callable[[RunContext, Path], list[str]]
    root: Path = PROJECT_ROOT

    def run(self, context: RunContext) -> StageResult:
        stage_dir = context.folder.stage_dir(self.name)
        summary, log = stage_dir / STAGE_SUMMARY, stage_dir / f"{self.name}.log"
        environment = {
            **os.environ,
            **target_environment(context.settings, seed=context.seed),
            "LOCKER_HARNESS_STAGE_SUMMARY": str(summary),
            LATENCIES_ENV: str(stage_dir / "latencies"),
            RUN_ID_ENV: context.run_id,  # the child's holds go to the ledger under this run
        }
        context.progress(self.name, "running")
        started = time.perf_counter_ns()
        try:
            done = subprocess.run(
                self.command(context, summary),
                cwd=self.root,
                env=environment,
                capture_output=True,
                text=True,
                timeout=max(context.budget.remaining(), 1.0),
                check=False,
            )
        except subprocess.TimeoutExpired as expired:
            _write_log(log, expired.stdout, expired.stderr, context.redactor)
            raise TimeoutError(f"the {self.name} stage ran past the run's time budget; see {log.name}") from None
        _write_log(log, done.stdout, done.stderr, context.redactor)
        if not summary.is_file():
            tail = " | ".join(context.redactor.text(done.stdout + done.stderr).strip().splitlines()[-3:])
            raise RuntimeError(f"the {self.name} child exited {done.returncode} without a summary: {tail}")
        result = read_stage_summary(self.name, summary)
        extra, unreadable = read_latencies(stage_dir / "latencies")
        result.latencies.merge(extra)
        result.failures += [
            Failure(FailureKind.TEST, f"{self.name} latencies", f"unreadable histograms {what}", "ValueError")
            for what in unreadable
        ]
        if unreadable and result.verdict is Verdict.PASSED:
            result.verdict = Verdict.INFRASTRUCTURE
        result.artefacts += [summary, log]
        result.duration_ns = time.perf_counter_ns() - started
        return result
