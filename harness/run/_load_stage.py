"""``LoadStage``: a load run (``harness.load``) as a stage of ``locker-harness run`` (and the body of
``locker-harness load``).

Against the running target of the context (the embedded sandbox, a sandbox URL, Harbor's
sandbox) it looks at what the identity already holds, runs Locust in a child process for the
plan's duration, reads the merged record, sweeps what the run left held, measures the gates, and
writes ``load/summary.json`` next to Locust's HTML, CSV and output. The sweep and the summary
happen however Locust ended (killed past its deadline, no record, a refusal); the error is raised
after them. The verdict: an oracle violation fails the stage (a product defect), else a breached
gate breaches it, else missing workers, a sweep that could not look, an empty run or lockers the
users left held make it infrastructure. A budget too short for a load run, its stop and its sweep
could not test (infrastructure), as every stage the budget cannot fit.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

from harness.assumptions import FINDINGS_ENV
from harness.config import TargetKind, target_environment
from harness.errors import ExitCode, HarnessError, InfrastructureError, UsageError
from harness.ledger import RUN_ID_ENV
from harness.load import (
    EDGE_STEPS,
    LOCUSTFILE,
    LOOK_ERRORS,
    STARTUP_S,
    STOP_GRACE_S,
    STOP_MAX_S,
    VIOLATION_KINDS,
    Abort,
    AbortWatch,
    FaultClock,
    HeldLocker,
    LoadPlan,
    LoadRecord,
    LoadSummary,
    LocustFiles,
    LocustMaster,
    LocustOutcome,
    LocustProgress,
    SloGates,
    harness_arguments,
    held_lockers,
    latency_limits,
    locust_command,
    read_fault_clock,
    read_record,
    run_locust,
    stop_timeout,
    sweep_leftovers,
)
from harness.report import CaseOutcome, CaseResult, Failure, FailureKind, Figure, StageResult, Verdict
from harness.run._context import RunContext, StageInterrupted
from harness.stopping import stop_exit_code
from harness.targets import serves_control_plane

__all__ = ["LoadStage"]

#: Seconds kept for the sweep after Locust: one look, then a release per leftover (none starts after the budget).
SWEEP_RESERVE_S: Final = 15.0
#: Seconds of the budget a load run needs beyond its duration: Locust's usual start and stop,
#: a stop that ends in a kill (should it overrun), then the sweep.
_OVERHEAD_S: Final = STARTUP_S / 3 + STOP_GRACE_S / 3 + STOP_MAX_S + SWEEP_RESERVE_S
_VERDICTS: Final = {0: Verdict.PASSED, 1: Verdict.FAILED, 3: Verdict.BREACHED, 4: Verdict.INFRASTRUCTURE}


class LoadStage:
    """The load stage: ``plan`` and ``gates`` given, or read from the configuration when it runs."""

    name = "load"

    def __init__(
        self,
        plan: LoadPlan | None = None,
        gates: SloGates | None = None,
        *,
        locustfile: Path = LOCUSTFILE,
        notes: tuple[str, ...] = (),
        master: LocustMaster | None = None,
    ) -> None:
        self.plan = plan
        self.gates = gates
        self.locustfile = locustfile
        self.notes = list(notes)
        #: A distributed run: Locust's master here, its users in workers started elsewhere.
        self.master = master
        #: The run's summary, once it ran (the CLI prints its table).
        self.summary: LoadSummary | None = None
        self.files: LocustFiles | None = None

    def run(self, context: RunContext) -> StageResult:
        settings = context.settings
        if settings.target.is_production:
            raise UsageError("load against production is refused: use --target local, sandbox or a URL")
        plan, note = (self.plan, None) if self.plan is not None else LoadPlan.resolve(settings)
        gates = self.gates if self.gates is not None else SloGates.resolve(settings)
        if note:
            self.notes.append(note)
        api_url = settings.target.api_url
        if api_url is None:
            raise UsageError("the load stage needs a running target: start the sandbox first")
        tower_id = settings.tower()
        kind = settings.target.kind
        doors = kind is TargetKind.LOCAL or (
            kind is TargetKind.URL and serves_control_plane(api_url, policy=settings.wire_policy())
        )
        if not doors:
            self.notes.append(
                f"{settings.target.name} has no virtual doors: each delivery stops at the token and releases"
            )
        if not self.locustfile.is_file():
            raise UsageError(f"no locustfile at {self.locustfile}: the load stage runs from a checkout of the harness")
        before = self._held_before(context, doors=doors)
        stalls = read_fault_clock(settings) if doors else None  # a stall's schedule, for the overview plot
        # Keep within the run's budget: Locust's start and stop come out of it, and so do a forced
        # stop and the sweep should Locust overrun (run_locust stops it in time for both).
        remaining = context.budget.remaining()
        waiting = self.master.wait_s if self.master is not None else 0.0
        duration = min(plan.duration_s, remaining - _OVERHEAD_S - waiting)
        if duration < 1.0:
            # Asked for and not run: could not test, as the orchestrator says of any stage it cannot fit.
            raise TimeoutError(f"the time budget left ({remaining:.0f} s) is too short for a load run")

        files = self.files = LocustFiles(context.folder.stage_dir(self.name))
        command = locust_command(
            self.locustfile,
            host=api_url,
            users=plan.users,
            duration_s=duration,
            files=files,
            user_classes=plan.user_classes,
            processes=plan.processes,
            harness_args=[
                *harness_arguments(plan, tower_id, doors=doors, timeout_s=settings.timeout),
                "--harness-run-id", context.run_id,  # workers elsewhere write their ledger rows under it
            ],
            stop_timeout_s=stop_timeout(settings.timeout),
            spawn_rate=plan.spawn_rate,
            master=self.master,
        )  # fmt: skip
        env = {
            **os.environ,
            **target_environment(settings, seed=context.seed),
            RUN_ID_ENV: context.run_id,
            # what the users' answers showed of the assumptions, read back by the run
            FINDINGS_ENV: str(context.folder.stage_dir(self.name) / "findings"),
        }
        env.pop("HARBOR_CONFIG", None)  # the child reads the target from --host and credentials from here

        def progress(now: LocustProgress) -> None:
            shown = min(now.elapsed_s, duration)
            context.progress(
                self.name,
                f"{plan.mode} model, {shown:.0f}/{duration:.0f} s, {now.requests} requests, "
                f"{now.failures} failed, {now.requests_per_s:.0f} req/s",
            )

        watch = AbortWatch(gates)
        if self.master is not None:
            master = self.master
            context.progress(
                self.name,
                f"Locust master on port {master.bind_port}: waiting up to {master.wait_s:g} s for "
                f"{master.workers} worker(s) (locker-harness load --worker --master-host THIS-HOST)",
            )
        else:
            context.progress(self.name, f"starting Locust ({plan.mode} model, {plan.users} users)")
        outcome: LocustOutcome | None = None
        ended: BaseException | None = None  # raised once the sweep and the summary are done
        try:
            outcome = run_locust(
                command,
                env=env,
                files=files,
                duration_s=duration,
                on_progress=progress,
                finish_by=context.budget.deadline - SWEEP_RESERVE_S,
                stop_when=watch if watch else None,
                startup_s=STARTUP_S + waiting,
            )
        except BaseException as error:  # killed past its deadline, never started, a second Ctrl-C
            ended = error
        if watch.abort is not None:
            context.progress(self.name, f"{watch.abort.describe()}; the users give back what they hold")
        interrupted = isinstance(ended, KeyboardInterrupt) or (outcome is not None and outcome.interrupted)
        _redact(files.log, context)
        try:
            record, facts = read_record(files.record)
        except (OSError, ValueError) as unreadable:
            record, facts = LoadRecord.merged(()), {}
            if outcome is not None and not interrupted:
                ended = InfrastructureError(
                    _gave_up_on_workers(files.log, self.master)
                    or f"Locust exited {outcome.returncode} without its record ({type(unreadable).__name__}); "
                    f"see {files.log}"
                )
        if ended is None and facts.get("fatal"):
            ended = UsageError(str(facts["fatal"]))

        # However the run ended, its users may have been stopped mid-flow: look and give back, and
        # keep what is known, before any error goes on.
        context.progress(self.name, "checking that nothing is left held")
        sweep = sweep_leftovers(settings, control_plane=doors, before=before, deadline=context.budget.deadline)
        problem = None if isinstance(ended, KeyboardInterrupt) else ended
        summary = self.summary = LoadSummary.build(
            record,
            gates,
            duration_s=float(facts.get("duration_s") or duration),
            plan={
                **plan.as_dict(),
                "duration_s": duration,
                "doors": "control plane" if doors else "none",
                "workers": self.master.workers if self.master is not None else None,
            },
            sweep=sweep,
            workers_expected=int(facts.get("workers_expected") or 0),
            workers_reported=int(facts.get("workers_reported") or 0),
            interrupted=interrupted,
            notes=self.notes,
            error=f"{type(problem).__name__}: {problem}" if problem is not None else "",
            error_code=problem.exit_code if isinstance(problem, HarnessError) else ExitCode.INFRASTRUCTURE,
            aborted=_timed(watch.abort, facts),
            stop_code=stop_exit_code(),
        )
        try:
            written = _write_summary(summary, files, context, tower_id)
        except OSError:
            if ended is None:
                raise
            raise ended from None  # what ended the run says more than a summary that could not be written
        if ended is not None and not isinstance(ended, KeyboardInterrupt):
            raise ended
        result = _stage_result(self.name, summary, [written, files.html, files.stats_csv, files.log], stalls=stalls)
        if interrupted:  # after the evidence is on disk and nothing is held; what it found is kept
            raise StageInterrupted(result)
        return result

    def _held_before(self, context: RunContext, *, doors: bool) -> frozenset[HeldLocker]:
        """What the identity holds before the users start: not theirs to give back, nor to be blamed for."""
        try:
            before = held_lockers(context.settings, control_plane=doors)
        except LOOK_ERRORS as error:
            self.notes.append(
                f"could not look at what was held before the run ({type(error).__name__}): the sweep counts all"
            )
            return frozenset()
        if before:
            shown = ", ".join(f"{held.locker_id} {held.status}" for held in sorted(before, key=lambda h: h.locker_id))
            self.notes.append(
                f"held by this identity before the load run began (an earlier stage or another client), "
                f"left as they were: {shown}"
            )
        return before


def _timed(abort: Abort | None, facts: Mapping[str, Any]) -> Abort | None:
    """The abort timed from when Locust started the users, when its record says."""
    started_at = facts.get("started_at")
    if abort is None or not isinstance(started_at, int | float) or started_at <= 0:
        return abort
    return abort.since(float(started_at))


def _gave_up_on_workers(log: Path, master: LocustMaster | None) -> str | None:
    """Why a master ended without a record, when it was for want of its workers (Locust's own line)."""
    if master is None:
        return None
    try:
        text = log.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    if "Gave up waiting for workers" not in text:
        return None
    return (
        f"fewer than {master.workers} Locust worker(s) connected within {master.wait_s:g} s "
        f"(port {master.bind_port}); start them with `locker-harness load --worker --master-host HOST` "
        f"and see {log}"
    )


def _redact(path: Path, context: RunContext) -> None:
    """Locust's output passes through the redactor like everything else the harness keeps."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return
    path.write_text(context.redactor.text(text), encoding="utf-8")


def _write_summary(summary: LoadSummary, files: LocustFiles, context: RunContext, tower_id: str) -> Path:
    root = context.folder.root
    artefacts = {"locust_html": files.html, "locust_csv": files.stats_csv, "locust_output": files.log}
    document = summary.as_json(
        files={name: str(path.relative_to(root)) for name, path in artefacts.items() if path.exists()},
        context={"run_id": context.run_id, "target": context.target.name, "url": context.target.url, "tower": tower_id},
    )
    path = files.folder / "summary.json"
    path.write_text(json.dumps(context.redactor.value(document), indent=2), encoding="utf-8")
    return path


def _stage_result(
    name: str, summary: LoadSummary, artefacts: list[Path], *, stalls: FaultClock | None = None
) -> StageResult:
    record = summary.record
    span = record.timeline.span()
    failures: list[Failure] = []
    cases: list[CaseResult] = []
    for kind in VIOLATION_KINDS:
        count = record.violations.get(kind, 0)
        examples = [example for example in record.examples if example.kind == kind]
        if not count:
            cases.append(CaseResult(f"oracle {kind}", CaseOutcome.PASSED))
            continue
        shown = "; ".join(f"{example.step} locker {example.locker_id}: {example.detail}" for example in examples[:3])
        failure = Failure(
            FailureKind.PRODUCT, f"oracle {kind}", f"{count} x {kind}: {shown}", "ProductDefect",
            step=examples[0].step if examples else None,
        )  # fmt: skip
        failures.append(failure)
        cases.append(CaseResult.failed(f"oracle {kind}", failure))
    aborted = summary.aborted
    for result in summary.gate_results:
        case_name = f"SLO {result.gate.name}"
        if aborted is not None and result.gate == aborted.gate:
            breach = Failure(FailureKind.PRODUCT, case_name, f"SLO breached: {aborted.describe()}", "SloBreach")
            cases.append(CaseResult(case_name, CaseOutcome.FAILED, failure=breach))
        elif result.breached:
            breach = Failure(FailureKind.PRODUCT, case_name, f"SLO breached: {result.describe()}", "SloBreach")
            cases.append(CaseResult(case_name, CaseOutcome.FAILED, failure=breach))
        elif result.actual is None:
            cases.append(CaseResult(case_name, CaseOutcome.SKIPPED, reason=result.describe()))
        else:
            cases.append(CaseResult(case_name, CaseOutcome.PASSED))
    if summary.missing_workers:
        failures.append(
            Failure(
                FailureKind.INFRASTRUCTURE,
                "load workers",
                f"{summary.missing_workers} of {summary.workers_expected} Locust workers sent no record",
                "InfrastructureError",
            )
        )
    sweep = summary.sweep
    if not sweep.checked:
        given_back = "; ".join([*record.cleanup_failures[:3], *sweep.notes])
        failures.append(
            Failure(
                FailureKind.INFRASTRUCTURE,
                "load cleanup",
                f"{summary.judged[1]}: {given_back}" if given_back else summary.judged[1],
                "InfrastructureError",
            )
        )
    elif sweep.found:
        # The one line names the leak; what the sweep did, locker by locker, is the failure's message.
        failures.append(
            Failure(
                FailureKind.TEST,
                "load cleanup",
                f"the load users left {sweep.found} locker(s) held; the sweep released {sweep.released}: "
                + "; ".join(sweep.notes),
                "CleanupLeak",
            )
        )
    figures: dict[str, Figure] = dict(summary.key_figures())
    exit_code, reason = summary.judged  # a stop from outside is the run's to report, not the stage's
    return StageResult(
        name,
        _VERDICTS[int(exit_code)],
        reason=reason,
        figures=figures,
        latencies=summary.histograms(),
        artefacts=[path for path in artefacts if path.exists()],
        failures=failures,
        cases=cases,
        mode=str(summary.plan.get("mode", "")),
        incidental_steps=EDGE_STEPS,
        timeline=record.timeline,
        limits=latency_limits(summary.gate_results),
        windows=stalls.windows(*span) if stalls is not None and span is not None else [],
        gates=summary.gate_lines(),
    )
