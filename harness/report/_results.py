"""What a run found, as plain data: the one shape every report writer and the run history read.

A stage (smoke, contract, properties, hardware rig, load) ends in a ``StageResult``; a run is
the ordered list of them plus where it pointed. Failures are classified at the moment they are
caught, because "the locker service is wrong" (product), "we could not test" (infrastructure)
and "the harness itself is wrong" (test defect) lead to different people and exit codes.
"""

from __future__ import annotations

import enum
import re
import traceback
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Final

from harness.assumptions import Finding, merge_findings
from harness.errors import ExitCode, HarborAPIError, HarnessError, InfrastructureError, ProductDefect
from harness.metrics import Latencies, LatencySummary, Timeline
from harness.stopping import stop_exit_code

__all__ = [
    "CHECK_FAILURES",
    "DID_NOT_RAISE",
    "REFUTED_ERROR",
    "CaseOutcome",
    "CaseResult",
    "Failure",
    "FailureKind",
    "Figure",
    "GateLine",
    "LatencyLimit",
    "RunResult",
    "StageResult",
    "TargetInfo",
    "Verdict",
    "Window",
    "classify",
    "classify_text",
    "names_pattern",
    "verdict_of",
]

#: A key figure shown in the final table and stored in the history: a count, milliseconds, a ratio.
Figure = int | float | str


class Verdict(enum.StrEnum):
    """How one stage (or the whole run) ended."""

    PASSED = "passed"
    FAILED = "failed"  # a check failed: the target broke a promise
    BREACHED = "breached"  # the flow works, a latency or failure-ratio gate did not hold
    INFRASTRUCTURE = "infrastructure"  # could not test
    SKIPPED = "skipped"  # not run, with a reason

    @property
    def exit_code(self) -> ExitCode:
        return _EXIT_CODES[self]

    @property
    def rank(self) -> int:
        """Which verdict wins when stages disagree: a defect beats a breach beats infrastructure."""
        return _RANKS[self]


_EXIT_CODES = {
    Verdict.PASSED: ExitCode.OK,
    Verdict.SKIPPED: ExitCode.OK,
    Verdict.FAILED: ExitCode.DEFECT,
    Verdict.BREACHED: ExitCode.SLO_BREACH,
    Verdict.INFRASTRUCTURE: ExitCode.INFRASTRUCTURE,
}
_RANKS = {Verdict.SKIPPED: 0, Verdict.PASSED: 0, Verdict.INFRASTRUCTURE: 1, Verdict.BREACHED: 2, Verdict.FAILED: 3}


class FailureKind(enum.StrEnum):
    """Whose problem a failure is; Allure's categories and the summary group by it."""

    PRODUCT = "product"  # the target broke a promise
    INFRASTRUCTURE = "infrastructure"  # timeouts, 5xx after retries, no Bluetooth adapter
    TEST = "test"  # the harness or a test is wrong: an exception nobody planned for
    #: The target refuted a guess of ours ([I]/[G]): not a failure of anyone's. Results keep such
    #: findings apart (``StageResult.findings``); the kind names them where a report shows them as
    #: cases (JUnit, Allure: ``harness.report._findings``).
    ASSUMPTION = "assumption"

    @property
    def verdict(self) -> Verdict:
        """The stage verdict a failure of this kind implies on its own."""
        if self is FailureKind.ASSUMPTION:
            return Verdict.PASSED
        return Verdict.FAILED if self is FailureKind.PRODUCT else Verdict.INFRASTRUCTURE


#: Exception type names, as other processes report them (pytest's JUnit, allure-pytest's
#: messages), grouped by whose problem they are. ``classify_text`` and Allure's categories
#: both read these, so a JUnit line and the HTML report can never disagree.
UNREACHABLE_ERRORS: Final = (
    "TargetUnreachable",
    "TimeoutError",
    "ConnectTimeout",
    "ReadTimeout",
    "ConnectError",
    "RemoteProtocolError",
)
SERVER_ERRORS: Final = ("ServerError",)
BLUETOOTH_ERRORS: Final = (
    "BluetoothUnavailable",
    "BleLinkError",
    "BleakError",
    "BleakDBusError",
    "BleakDeviceNotFoundError",
)
# A 429 after the retries and a tower busy past the SDK's asks could not test: not a broken promise.
OTHER_INFRASTRUCTURE_ERRORS: Final = ("InfrastructureError", "RateLimited", "TowerBusy")
PRODUCT_ERRORS: Final = (
    "ProductDefect",
    "TowerRefused",
    "HarborAPIError",
    "BadRequest",
    "Unauthorized",
    "Forbidden",
    "NotFound",
    "Conflict",
    "ValidationFailed",
    "AssertionError",
    "FailureGroup",  # Schemathesis: the API broke its contract
    "CheckFailed",
)
#: Exception types that are a check's verdict on the target: a failed ``assert``, and pytest's
#: ``Failed`` (``pytest.fail(...)``, a ``pytest.raises`` that saw nothing). Matched as the type of
#: the exception only, never as a word of a message ("Failed to start the sandbox" is no verdict).
CHECK_FAILURES: Final = ("AssertionError", "Failed")
#: What a refuted assumption's message leads with (JUnit, Allure): its own category, never a failure's.
REFUTED_ERROR: Final = "AssumptionRefuted"
#: pytest's "DID NOT RAISE X": X is the error a check expected and never got, not one that happened,
#: so the names in such a message say nothing about whose problem it is.
DID_NOT_RAISE: Final = "DID NOT RAISE"
_INFRASTRUCTURE_NAMES = UNREACHABLE_ERRORS + SERVER_ERRORS + BLUETOOTH_ERRORS + OTHER_INFRASTRUCTURE_ERRORS


def names_pattern(names: Sequence[str]) -> str:
    r"""A regex finding any of ``names`` as a whole word, matching the whole text too.

    ``[\s\S]*`` spans lines where ``.*`` would not, and JavaScript has no inline ``(?s)``:
    Allure 2 (Java) matches a category's regex against the whole message, Allure 3
    (JavaScript) searches it; this form means the same to both.
    """
    return r"[\s\S]*\b(?:" + "|".join(names) + r")\b[\s\S]*"


def classify_text(text: str) -> FailureKind | None:
    """Whose problem a failure is, from the exception names in its text; ``None`` if none is known.

    Infrastructure names win: "ServerError while checking a ProductDefect" could not test; but a
    check that expected a ``ServerError`` and saw none ("DID NOT RAISE ServerError") failed.
    """
    if DID_NOT_RAISE in text:
        return FailureKind.PRODUCT
    for names, kind in ((_INFRASTRUCTURE_NAMES, FailureKind.INFRASTRUCTURE), (PRODUCT_ERRORS, FailureKind.PRODUCT)):
        if re.search(r"\b(?:" + "|".join(names) + r")\b", text):
            return kind
    return None


def classify(error: BaseException) -> FailureKind:
    """Whose problem ``error`` is, from the harness's exception tree.

    A 4xx where the flow needed a 2xx is the product's (the target refused a legal request);
    a failed ``assert`` in a check is a product defect too, as pytest and Allure count it.
    Anything else (a ``TypeError``, a ``UsageError`` met mid-stage) is the harness's own.
    """
    if isinstance(error, InfrastructureError | TimeoutError | ConnectionError):
        return FailureKind.INFRASTRUCTURE  # first: a 429 after the retries is a HarborAPIError too
    if isinstance(error, ProductDefect | HarborAPIError | AssertionError):
        return FailureKind.PRODUCT
    if isinstance(error, HarnessError) and error.exit_code is ExitCode.DEFECT:
        return FailureKind.PRODUCT  # the harness's own verdicts on the target (a tower's refusal)
    return FailureKind.TEST


@dataclass(frozen=True, slots=True)
class Failure:
    """One thing that went wrong, with enough evidence to act on it."""

    kind: FailureKind
    name: str  # the test case or step it belongs to
    message: str
    error_type: str = ""  # the exception class name: categories.json matches on it
    step: str | None = None
    trace: str | None = None

    @classmethod
    def from_exception(cls, error: BaseException, name: str, *, step: str | None = None) -> Failure:
        trace = "".join(traceback.format_exception(error)) if error.__traceback__ is not None else None
        step = step or getattr(error, "step", None)
        return cls(classify(error), name, str(error) or type(error).__name__, type(error).__name__, step, trace)

    def as_dict(self) -> dict[str, str | None]:
        return {
            "kind": self.kind.value,
            "name": self.name,
            "message": self.message,
            "error_type": self.error_type,
            "step": self.step,
        }


class CaseOutcome(enum.StrEnum):
    """A test case's status, with Allure's spelling (broken = could not be judged)."""

    PASSED = "passed"
    FAILED = "failed"
    BROKEN = "broken"
    SKIPPED = "skipped"


@dataclass(frozen=True, slots=True)
class CaseResult:
    """One test case of a stage that writes its own JUnit (a smoke step, a rig check)."""

    name: str
    outcome: CaseOutcome
    duration_ns: int = 0
    failure: Failure | None = None
    reason: str = ""  # why it was skipped

    @classmethod
    def failed(cls, name: str, failure: Failure, duration_ns: int = 0) -> CaseResult:
        judged = failure.kind in (FailureKind.PRODUCT, FailureKind.ASSUMPTION)
        outcome = CaseOutcome.FAILED if judged else CaseOutcome.BROKEN
        return cls(name, outcome, duration_ns, failure)


@dataclass(frozen=True, slots=True)
class LatencyLimit:
    """A latency a stage's steps must hold (an SLO gate), drawn as a line on its plots."""

    name: str  # "SLO p99", "SLO reserve p95"
    percentile: float
    limit_ms: float
    group: str | None = None  # the timeline group it bounds; ``None``: every group


@dataclass(frozen=True, slots=True)
class GateLine:
    """One gate a stage held its measurements to (an SLO), as the gate tables show it, k6-style:
    every gate with its limit and measured value, held or not, not only the breaches."""

    name: str  # "p99", "reserve p95", "failure_ratio"
    limit: str  # "250 ms", "0.01"
    measured: str  # "212.40 ms"; "not measured" when the run made no request of its step
    held: bool | None  # None: not measured
    #: What else a reader must know: "abort gate", "aborted the run 4.2 s in".
    note: str = ""

    @property
    def mark(self) -> str:
        return "-" if self.held is None else "✓" if self.held else "✗"

    def as_dict(self) -> dict[str, str | bool | None]:
        return {"gate": self.name, "limit": self.limit, "measured": self.measured, "held": self.held, "note": self.note}


@dataclass(frozen=True, slots=True)
class Window:
    """A stretch of wall-clock time worth marking on a stage's plots (a stall the target was told to make)."""

    start_s: float  # epoch seconds
    end_s: float
    label: str


@dataclass(slots=True)
class StageResult:
    """How one stage ended: verdict, key figures, timings, evidence and failures."""

    name: str
    verdict: Verdict
    reason: str = ""  # why skipped, or one line on what was breached
    figures: dict[str, Figure] = field(default_factory=dict)
    latencies: Latencies = field(default_factory=Latencies)
    artefacts: list[Path] = field(default_factory=list)
    failures: list[Failure] = field(default_factory=list)
    cases: list[CaseResult] = field(default_factory=list)
    duration_ns: int = 0
    #: How the stage was asked to run, where that changes what its steps measure (a load run's
    #: model, ``closed`` or ``open``): runs asked differently do not compare the stage's steps.
    mode: str = ""
    #: Steps at the stage's edges rather than its work (a load run's token and hot-locker listing,
    #: once per process at the start; its cleanup of a delivery the stop interrupted): timed when
    #: they happen, never compared between runs.
    incidental_steps: frozenset[str] = frozenset()
    #: Requests and latencies over time, per group of steps (a load run's), for the overview plot;
    #: its latency limits (SLO gates) and the windows worth marking (a stall) go on the same figure.
    timeline: Timeline | None = None
    limits: list[LatencyLimit] = field(default_factory=list)
    windows: list[Window] = field(default_factory=list)
    #: Assumptions of ours ([I]/[G]) this stage's answers refuted: findings, not failures.
    findings: list[Finding] = field(default_factory=list)
    #: Every gate the stage was held to (a load run's SLOs), for the gate tables.
    gates: list[GateLine] = field(default_factory=list)
    _summaries: list[LatencySummary] | None = field(default=None, init=False, repr=False, compare=False)

    @classmethod
    def skipped(cls, name: str, reason: str) -> StageResult:
        return cls(name, Verdict.SKIPPED, reason)

    def summaries(self) -> list[LatencySummary]:
        """Per-step figures of ``latencies``, computed once: call it when the stage is over.

        Each summary walks its whole histogram (tens of milliseconds), and every report and the
        history want the same figures.
        """
        if self._summaries is None:
            self._summaries = self.latencies.summaries()
        return self._summaries


def verdict_of(failures: Sequence[Failure]) -> Verdict:
    """The verdict a list of failures implies: passed if empty, failed if any is the product's."""
    return max((failure.kind.verdict for failure in failures), key=lambda v: v.rank, default=Verdict.PASSED)


@dataclass(frozen=True, slots=True)
class TargetInfo:
    """Where a run pointed, as the reports describe it (never a credential)."""

    name: str  # local, sandbox, production or the URL
    url: str | None = None
    tower: str | None = None
    firmware: str | None = None


@dataclass(slots=True)
class RunResult:
    """A whole run: what it pointed at, each stage's result in order, and its overall verdict."""

    run_id: str
    target: TargetInfo
    started_at: datetime
    seed: int
    stages: list[StageResult] = field(default_factory=list)
    duration_ns: int = 0
    interrupted: bool = False
    #: Versions and settings worth keeping next to the results (``environment.properties``).
    environment: Mapping[str, str] = field(default_factory=dict)
    #: Why the reports (or the history row) could not be written (a full disk): what was measured
    #: is still told on stdout, and the run cannot be green without its evidence.
    evidence_lost: list[str] = field(default_factory=list)
    #: ``--strict-assumptions``: a green run that refuted an assumption exits ``ASSUMPTION_REFUTED``.
    strict_assumptions: bool = False

    @property
    def verdict(self) -> Verdict:
        """The worst stage verdict; a run in which nothing ran could not test anything."""
        ran = [stage for stage in self.stages if stage.verdict is not Verdict.SKIPPED]
        if not ran:
            return Verdict.INFRASTRUCTURE if self.stages else Verdict.SKIPPED
        return max((stage.verdict for stage in ran), key=lambda v: v.rank)

    @property
    def exit_code(self) -> ExitCode:
        if self.interrupted:
            return stop_exit_code()  # 130 after Ctrl-C, 143 after SIGTERM
        code = self.verdict.exit_code
        if self.evidence_lost and code is ExitCode.OK:
            return ExitCode.INFRASTRUCTURE  # green, but nothing on disk shows it
        if code is ExitCode.OK and self.strict_assumptions and self.findings():
            return ExitCode.ASSUMPTION_REFUTED
        return code

    def findings(self) -> list[Finding]:
        """The assumptions the run refuted, one per assumption across its stages (each stage named)."""
        return merge_findings([finding for stage in self.stages for finding in stage.findings])

    def failures(self) -> list[tuple[str, Failure]]:
        """Every failure of the run with its stage's name, in stage order."""
        return [(stage.name, failure) for stage in self.stages for failure in stage.failures]
