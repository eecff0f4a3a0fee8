"""Stages run as child processes: their environment, their launch, and what they leave behind.

A child (a pytest run, Locust) gets the run's target in ``HARBOR_*`` variables, the run id for
the cleanup ledger, and a folder for its histograms; it runs from the checkout, within the
run's budget, and its output lands, redacted, in a log beside its other evidence.

A child runs in its own session, so a Ctrl-C at the terminal reaches the harness only. At the
budget's end or on Ctrl-C the harness asks the child's process group to stop as Ctrl-C would
(SIGINT: pytest tears its fixtures down, and they give back what they hold on the target), waits
a bounded grace, then kills whatever of the group is left.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from harness.assumptions import FINDINGS_ENV
from harness.config import PROJECT_ROOT, target_environment
from harness.ledger import RUN_ID_ENV
from harness.metrics import Latencies
from harness.redaction import Redactor
from harness.report import Failure, FailureKind, StageResult, Verdict, verdict_of
from harness.run._context import RunContext
from harness.stopping import LIFELINE_ENV

__all__ = [
    "LATENCIES_ENV",
    "STAGE_DIR_ENV",
    "STAGE_SUMMARY",
    "STOP_GRACE_S",
    "ChildStage",
    "latency_failures",
    "output_tail",
    "read_latencies",
    "read_stage_summary",
    "run_child",
    "stop_child",
]

#: A child process that timed something (BLE phases in the rig, Locust steps) writes its
#: histograms into this folder: one JSON file per process, ``{name: encoded HdrHistogram}``
#: (``Latencies.encode()``). The stage merges them exactly, so percentiles are never averaged.
LATENCIES_ENV: Final = "LOCKER_HARNESS_LATENCIES_DIR"
#: A stage's own folder (``reports/<run-id>/<stage>/``), for the reports its suite writes itself:
#: the contract suite's Schemathesis report (``contracts/contract_report.py`` reads the same name).
STAGE_DIR_ENV: Final = "LOCKER_HARNESS_STAGE_DIR"
#: Where a child stage writes its summary: ``reports/<run-id>/<stage>/stage-summary.json``.
STAGE_SUMMARY: Final = "stage-summary.json"
#: Lines of a child's output quoted when it ends without results.
_TAIL_LINES: Final = 3
#: Seconds a child asked to stop may take: its fixtures' teardown gives back reservations and
#: tokens over the network, each call bounded by the client's own timeouts.
STOP_GRACE_S: Final = 30.0
#: Seconds to collect a killed child's last output: a process that left the group may hold the pipes.
_REAP_S: Final = 5.0


class BudgetSpent(TimeoutError):
    """A stage's child was stopped at the run's time budget; ``done`` is what it said until then,
    so the stage may still report the failures it had found."""

    def __init__(self, message: str, done: subprocess.CompletedProcess[str]) -> None:
        super().__init__(message)
        self.done = done


def run_child(
    stage: str,
    argv: Sequence[str],
    *,
    env: Mapping[str, str],
    context: RunContext,
    log: Path,
    cwd: Path = PROJECT_ROOT,
    judge_partial: bool = False,
) -> subprocess.CompletedProcess[str]:
    """Run a stage's child process within the budget; its output goes, redacted, to ``log``.

    A child that outlives the budget is stopped (``stop_child``) and the stage could not test
    (``TimeoutError``; ``BudgetSpent``, with the output, for a caller that ``judge_partial``: it
    may still report what the child found); the message names the log relative to the run folder,
    where the output up to then is kept. On
    Ctrl-C the child is stopped the same way, its log written, and the ``KeyboardInterrupt``
    propagates.
    """
    where = log.relative_to(context.folder.root) if log.is_relative_to(context.folder.root) else log
    # The child's lifeline (harness.stopping.watch_lifeline): a pipe whose writing end only this
    # process holds, so it closes when this process dies, however it dies.
    lifeline_read, lifeline = os.pipe()
    try:
        process = subprocess.Popen(
            list(argv),
            cwd=cwd,
            # The child's holds go under this run.
            env={**os.environ, **env, RUN_ID_ENV: context.run_id, LIFELINE_ENV: str(lifeline_read)},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            pass_fds=(lifeline_read,),
            text=True,
            start_new_session=True,
        )
    except BaseException:
        os.close(lifeline)
        raise
    finally:
        os.close(lifeline_read)
    try:
        try:
            stdout, stderr = process.communicate(timeout=max(context.budget.remaining(), 1.0))
        except subprocess.TimeoutExpired:
            stdout, stderr, interrupted = stop_child(process)
            _write_log(log, stdout, stderr, context.redactor)
            if interrupted:
                raise KeyboardInterrupt from None
            message = f"the {stage} stage ran past the run's time budget; its output: {where}"
            if judge_partial:
                done = subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)
                raise BudgetSpent(message, done) from None
            raise TimeoutError(message) from None
        except KeyboardInterrupt:
            stdout, stderr, _ = stop_child(process)
            _write_log(log, stdout, stderr, context.redactor)
            raise
    finally:
        if process.poll() is None:  # an unexpected error above: never leave the child behind
            _kill_group(process)
        os.close(lifeline)
    _write_log(log, stdout, stderr, context.redactor)
    return subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)


def stop_child(process: subprocess.Popen[str], *, grace_s: float = STOP_GRACE_S) -> tuple[str, str, bool]:
    """Stop a child started in its own session (``start_new_session``): its output, and whether a
    Ctrl-C came while it stopped.

    SIGINT to its process group, as a terminal's Ctrl-C would send (pytest then tears its fixtures
    down); after ``grace_s``, or at once on a further Ctrl-C, SIGKILL to the group. Whatever of the
    group outlived the child is killed too, so nothing of it is left running.
    """
    interrupted = False
    _signal_group(process, signal.SIGINT)
    try:
        stdout, stderr = process.communicate(timeout=grace_s)
    except (subprocess.TimeoutExpired, KeyboardInterrupt) as stopped:
        interrupted = isinstance(stopped, KeyboardInterrupt)
        _signal_group(process, signal.SIGKILL)
        stdout, stderr = _collect(process)
    else:
        _signal_group(process, signal.SIGKILL)  # a grandchild that ignored the SIGINT
    return stdout, stderr, interrupted


def _signal_group(process: subprocess.Popen[str], signum: signal.Signals) -> None:
    # The group is gone once its last process has; a reused id would belong to another user's
    # session leader, which we may not signal.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signum)


def _kill_group(process: subprocess.Popen[str]) -> None:
    _signal_group(process, signal.SIGKILL)
    _collect(process)


def _collect(process: subprocess.Popen[str]) -> tuple[str, str]:
    """A killed child's output, bounded: a process that left the group may keep the pipes open."""
    try:
        return process.communicate(timeout=_REAP_S)
    except subprocess.TimeoutExpired as held:
        for pipe in (process.stdout, process.stderr):
            if pipe is not None:
                pipe.close()
        process.wait(timeout=_REAP_S)
        return _text(held.stdout), _text(held.stderr)


def output_tail(done: subprocess.CompletedProcess[str], redactor: Redactor) -> str:
    """The last lines of a child's output on one line, redacted: why it ended without results."""
    return " | ".join(redactor.text(done.stdout + done.stderr).strip().splitlines()[-_TAIL_LINES:])


def _text(value: str | bytes | None) -> str:
    # A timed-out ``communicate`` hands the output so far as bytes whatever ``text`` said.
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else (value or "")


def _write_log(path: Path, stdout: str, stderr: str, redactor: Redactor) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(redactor.text(stdout + stderr), encoding="utf-8")


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


def latency_failures(stage: str, unreadable: Sequence[str]) -> list[Failure]:
    """A test defect for each histogram file a child wrote that could not be read."""
    return [
        Failure(FailureKind.TEST, f"{stage} latencies", f"unreadable histograms {what}", "ValueError")
        for what in unreadable
    ]


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
            **target_environment(context.settings, seed=context.seed),
            "LOCKER_HARNESS_STAGE_SUMMARY": str(summary),
            LATENCIES_ENV: str(stage_dir / "latencies"),
            FINDINGS_ENV: str(stage_dir / "findings"),
        }
        context.progress(self.name, "running")
        started = time.perf_counter_ns()
        done = run_child(
            self.name, self.command(context, summary), env=environment, context=context, log=log, cwd=self.root
        )
        if not summary.is_file():
            tail = output_tail(done, context.redactor)
            raise RuntimeError(f"the {self.name} child exited {done.returncode} without a summary: {tail}")
        result = read_stage_summary(self.name, summary)
        extra, unreadable = read_latencies(stage_dir / "latencies")
        result.latencies.merge(extra)
        result.failures += latency_failures(self.name, unreadable)
        if unreadable and result.verdict is Verdict.PASSED:
            result.verdict = Verdict.INFRASTRUCTURE
        result.artefacts += [summary, log]
        result.duration_ns = time.perf_counter_ns() - started
        return result
