"""Stages that are pytest runs in a child process: the contract suite, the property suite, the hardware rig."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from harness.assumptions import FINDINGS_ENV
from harness.config import PROJECT_ROOT, BleBackend, TargetKind, target_environment
from harness.errors import ExitCode, InfrastructureError, UsageError
from harness.report import CaseOutcome, CaseResult, Figure, StageResult, Verdict, read_junit, verdict_of
from harness.run._bench import ble_chosen_explicitly, no_bench_tower
from harness.run._child import (
    LATENCIES_ENV,
    STAGE_DIR_ENV,
    BudgetSpent,
    latency_failures,
    output_tail,
    read_latencies,
    run_child,
)
from harness.run._context import RunContext
from harness.targets import announced_radio

__all__ = ["HW_BUGS_ENV", "HW_DIALECTS_ENV", "HW_FAULTS_ENV", "HardwareStage", "PytestStage"]

#: pytest's own exit codes (``pytest.ExitCode``), named here to keep pytest out of this import.
_PYTEST_OK: Final = 0
_PYTEST_FAILED: Final = 1
_PYTEST_USAGE: Final = 4
_PYTEST_NO_TESTS: Final = 5
#: A suite that ran and could not test sets the harness's own code, which pytest's USAGE_ERROR shares.
_SUITE_COULD_NOT_TEST: Final = int(ExitCode.INFRASTRUCTURE)
#: How pytest reports a suite's ``pytest.exit(reason)``: ``!!!!! _pytest.outcomes.Exit: reason !!!!!``.
_SUITE_EXIT: Final = re.compile(r"^!+ _pytest\.outcomes\.Exit: (.*?) !+\s*$", re.MULTILINE)
#: Skip reasons quoted in a skipped stage's reason.
_MAX_REASONS: Final = 3


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
    extra_args: tuple[str, ...] = ()
    #: The suite tests a tower's lockers: without a tower named it is a usage error (exit 2), as for
    #: every other stage, never a suite whose every test skips.
    needs_tower: bool = False
    #: Installed pytest plugins the suite has no use for, kept out of its child (``-p no:NAME``): each
    #: costs the child its import and hooks, and a run starts a child per stage. pytest's own
    #: ``unraisableexception`` collects the garbage of the whole suite twice as the child ends (about
    #: 0.4 s a child); an exception raised in a finalizer still reaches pytest.log, through Python's hook.
    plugins_off: tuple[str, ...] = ("xdist", "benchmark", "unraisableexception")

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
            # xunit1 keeps the properties tests record (record_property), as pyproject.toml says;
            # repeated here for suites run from a folder without that configuration.
            "-o",
            "junit_family=xunit1",
            f"--alluredir={folder.allure_results}",
            # Python's own traceback of a failure: pytest's long style parses the source of every
            # file on the stack, seconds for each failure deep in Schemathesis or Hypothesis.
            "--tb=native",
            *(option for plugin in self.plugins_off for option in ("-p", f"no:{plugin}")),
            *self.extra_args,
        ]
        if self.seeded:
            args.append(f"--hypothesis-seed={context.seed}")
        return args

    def environment(self, context: RunContext) -> dict[str, str]:
        """The variables that point the suite at the run's target (and say whether it is the run's alone)."""
        environment = target_environment(context.settings, seed=context.seed)
        environment["HARBOR_EXCLUSIVE"] = "1" if context.exclusive else "0"
        return environment

    def run(self, context: RunContext) -> StageResult:
        if self.needs_tower:
            context.settings.tower()  # UsageError naming --tower and HARBOR_TOWER_ID
        stage_dir = context.folder.stage_dir(self.name)
        latencies_dir = stage_dir / "latencies"
        log = stage_dir / "pytest.log"
        context.progress(self.name, f"pytest {' '.join(self.paths)}")
        started = time.perf_counter_ns()
        junit = context.folder.junit(self.name)
        try:
            done = run_child(
                self.name,
                self.command(context),
                env={
                    **self.environment(context),
                    LATENCIES_ENV: str(latencies_dir),
                    STAGE_DIR_ENV: str(stage_dir),
                    # the plugin writes what the suite's answers showed of our assumptions here
                    FINDINGS_ENV: str(stage_dir / "findings"),
                },
                context=context,
                log=log,
                cwd=self.root,
                judge_partial=True,
            )
        except BudgetSpent as spent:
            # A check that failed before the budget ran out is a finding all the same: the
            # stage is judged on it (the budget noted); only a stage that found nothing could not test.
            found = self._found_before_the_budget(junit, spent, stage_dir, log, latencies_dir, started)
            if found is None:
                raise TimeoutError(str(spent)) from None
            return found
        duration_ns = time.perf_counter_ns() - started
        if done.returncode == _PYTEST_NO_TESTS:
            return StageResult.skipped(self.name, "pytest collected no tests")
        ended = self._check_ending(done, context, junit)
        if ended is not None:
            return ended
        if done.returncode not in (_PYTEST_OK, _PYTEST_FAILED, _SUITE_COULD_NOT_TEST) or not junit.is_file():
            tail = output_tail(done, context.redactor)
            raise RuntimeError(f"pytest exited {done.returncode} without results: {tail}")
        cases = read_junit(junit)
        failures = [case.failure for case in cases if case.failure is not None]
        latencies, unreadable = read_latencies(latencies_dir)
        failures += latency_failures(self.name, unreadable)
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
        verdict, reason = verdict_of(failures), failures[0].message.splitlines()[0] if failures else ""
        if not failures and not counts[CaseOutcome.PASSED]:
            # Every test skipped (no bench tower, a target without doors): nothing was shown to work.
            verdict, reason = Verdict.SKIPPED, _skip_reasons(cases)
        return StageResult(
            self.name,
            verdict,
            reason=reason,
            figures=figures,
            latencies=latencies,
            failures=failures,
            artefacts=[junit, log, *_own_reports(stage_dir, log, latencies_dir, stage_dir / "findings")],
            duration_ns=duration_ns,
        )

    def _found_before_the_budget(
        self, junit: Path, spent: BudgetSpent, stage_dir: Path, log: Path, latencies_dir: Path, started: int
    ) -> StageResult | None:
        """The stage's result from the failures its child reported before it was stopped at the
        budget (its JUnit file, written as pytest stops); ``None`` if it reported none."""
        try:
            cases = read_junit(junit) if junit.is_file() else []
        except (OSError, SyntaxError):  # ElementTree's ParseError: cut off mid-write
            cases = []
        failures = [case.failure for case in cases if case.failure is not None]
        if not failures:
            return None
        note = f"(then {spent})"
        return StageResult(
            self.name,
            verdict_of(failures),
            reason=f"{failures[0].message.splitlines()[0] if failures[0].message else failures[0].name} {note}",
            figures={"tests": len(cases), "failed": len(failures)},
            failures=failures,
            artefacts=[junit, log, *_own_reports(stage_dir, log, latencies_dir)],
            duration_ns=time.perf_counter_ns() - started,
        )

    def _check_ending(
        self, done: subprocess.CompletedProcess[str], context: RunContext, junit: Path
    ) -> StageResult | None:
        """What a child that ended without judging anything means for the run: raised, or the
        stage's result (a suite type may turn an ending into a skip); ``None`` to read the results.

        A suite may stop itself with ``pytest.exit(line, returncode=...)`` and one of the harness's
        exit codes (the rig without Bluetooth: 4; a bench run configured wrong: 2): its line becomes
        the stage's one-line reason. pytest refusing its command line (4, and no test ran) is a usage
        error; a 4 after tests ran is a suite's own "could not test" (the rig whose every failure was
        a lost link), judged from its results like any other.
        """
        output = context.redactor.text(done.stdout + done.stderr)
        stopped = _SUITE_EXIT.search(output)
        if stopped is not None:
            line = stopped.group(1).strip()
            if done.returncode == ExitCode.USAGE:
                raise UsageError(line)
            if done.returncode == ExitCode.INFRASTRUCTURE:
                raise InfrastructureError(line)
        elif done.returncode == _PYTEST_USAGE and not _ran(junit):
            refused = [line.strip() for line in output.splitlines() if "error:" in line]
            what = refused[-1] if refused else output_tail(done, context.redactor)
            raise UsageError(f"pytest refused the {self.name} stage's command line: {what}")
        return None


def _ran(junit: Path) -> bool:
    """Whether the child's JUnit file shows tests that ran: pytest writes it only once a session ran."""
    try:
        return junit.is_file() and bool(read_junit(junit))
    except (OSError, SyntaxError):  # ElementTree's ParseError: cut off mid-write
        return False


def _virtual_url(context: RunContext) -> bool:
    """Whether the run points at a URL with the virtual radio asked for (a sandbox's own, if it serves one)."""
    settings = context.settings
    return settings.target.kind is TargetKind.URL and settings.ble is BleBackend.VIRTUAL


def _own_reports(stage_dir: Path, *besides: Path) -> list[Path]:
    """The files a suite wrote into its stage's folder itself (the Schemathesis report), besides ``besides``."""
    return [
        path
        for path in sorted(stage_dir.rglob("*"))
        if path.is_file() and not any(path == other or other in path.parents for other in besides)
    ]


def _skip_reasons(cases: Sequence[CaseResult]) -> str:
    """Why the tests of a stage that ran none skipped, each reason once, in the order met."""
    reasons = list(dict.fromkeys(case.reason.strip() for case in cases if case.reason.strip()))
    shown = "; ".join(reasons[:_MAX_REASONS]) + (
        f" (+{len(reasons) - _MAX_REASONS} more)" if len(reasons) > _MAX_REASONS else ""
    )
    return f"every test skipped: {shown or 'no reason given'}"


#: The rig's own sandbox on ``local``: its bug switches (comma-separated names) and its fault
#: profiles (``;``-separated, each as ``--sim-fault`` spells it: ``name:key=value,key=value``).
HW_BUGS_ENV: Final = "HARBOR_HW_SIM_BUG"
HW_FAULTS_ENV: Final = "HARBOR_HW_SIM_FAULT"
#: ... and its dialects (comma-separated names).
HW_DIALECTS_ENV: Final = "HARBOR_HW_SIM_DIALECT"


@dataclass(frozen=True)
class HardwareStage(PytestStage):
    """The hardware rig (``hw_tests/``).

    On ``local`` it starts its own sandbox in its process, with the run's bug switches, fault
    profiles and dialects. On a virtual sandbox's URL that serves its towers' radio to other
    processes (``locker-harness sim``), the rig reaches them over that radio, as a bench. Elsewhere
    it needs a bench tower: without one named, or without Bluetooth when the target's default chose
    it, the stage is skipped with the reason; an explicit ``HARBOR_BLE=bleak`` that finds no adapter
    could not test, in the rig's one line.
    """

    #: On ``local`` the rig's own sandbox gets the run's fault profiles: BLE faults reach it.
    ble_faults = True

    def environment(self, context: RunContext) -> dict[str, str]:
        settings = context.settings
        if settings.target.kind is not TargetKind.LOCAL:
            environment = super().environment(context)
            if _virtual_url(context):
                environment["HARBOR_BLE"] = "virtual"  # the URL's own radio, if it serves one (the rig asks)
            elif not ble_chosen_explicitly():
                # The target's default radio: the rig applies its own rule (no adapter -> skip).
                environment.pop("HARBOR_BLE", None)
            return environment
        return {
            "HARBOR_TARGET": "local",
            "HARBOR_BLE": "virtual",
            "HARBOR_TOWER_ID": settings.tower_id or "",
            HW_BUGS_ENV: ",".join(context.sim_bugs),
            HW_FAULTS_ENV: ";".join(context.sim_faults),
            HW_DIALECTS_ENV: ",".join(context.sim_dialects),
            "LOCKER_HARNESS_SEED": str(context.seed),
            **settings.assume.environment(),
        }

    def run(self, context: RunContext) -> StageResult:
        settings = context.settings
        if settings.target.kind is TargetKind.LOCAL:
            return super().run(context)
        if _virtual_url(context):
            assert settings.target.api_url is not None
            if announced_radio(settings.target.api_url, policy=settings.wire_policy()) is not None:
                return super().run(context)
            return StageResult.skipped(
                self.name,
                f"target {settings.target.name} serves no virtual radio to other processes (GET /_sim/radio): "
                "start it with `locker-harness sim`, or set HARBOR_BLE=bleak and HARBOR_TOWER_ID for a bench tower",
            )
        reason = no_bench_tower(settings)
        if reason is not None:
            return StageResult.skipped(self.name, reason)
        return super().run(context)

    def _check_ending(
        self, done: subprocess.CompletedProcess[str], context: RunContext, junit: Path
    ) -> StageResult | None:
        try:
            return super()._check_ending(done, context, junit)
        except InfrastructureError as error:
            # The rig stopped for want of Bluetooth: no bench tower here, unless one was asked for.
            if context.settings.target.kind is TargetKind.LOCAL or ble_chosen_explicitly():
                raise
            return StageResult.skipped(self.name, f"no bench tower within reach: {error}")
