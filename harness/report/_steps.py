"""Turning a stream of timed steps into evidence: one Allure test with a step each, JUnit cases, histograms.

The flow (``harness.flow``) emits step-started / step-finished events and knows nothing of
reports; whoever runs it forwards them here (``started`` / ``finished`` / ``note``), together
with the requests and responses seen during the step. This module knows nothing of the flow.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from harness.metrics import Latencies
from harness.report._allure import AllureAttachment, AllureStep, AllureTest
from harness.report._results import CaseOutcome, CaseResult, Failure, FailureKind

__all__ = ["StepRecorder"]


@dataclass(slots=True)
class _Step:
    name: str
    start_ms: int
    stop_ms: int = 0
    duration_ns: int = 0
    outcome: CaseOutcome = CaseOutcome.PASSED
    failure: Failure | None = None
    attachments: list[AllureAttachment] = field(default_factory=list)
    parameters: dict[str, str] = field(default_factory=dict)


def _outcome(failure: Failure) -> CaseOutcome:
    return CaseOutcome.FAILED if failure.kind is FailureKind.PRODUCT else CaseOutcome.BROKEN


class StepRecorder:
    """Collects one sequence of steps (a delivery, a rig check) as it runs."""

    def __init__(self, stage: str, name: str, *, full_name: str, planned: Sequence[str] = ()) -> None:
        self.stage = stage
        self.name = name
        self.full_name = full_name
        self.planned = tuple(planned)  # every step the sequence would take, to show those not reached
        self.latencies = Latencies()
        self.notes: list[str] = []
        self._steps: list[_Step] = []
        self._open: _Step | None = None
        self._start_ms = int(time.time() * 1000)
        self._stop_ms: int | None = None

    def started(self, name: str, *, parameters: Mapping[str, str] | None = None) -> None:
        self._open = _Step(name, int(time.time() * 1000), parameters=dict(parameters or {}))

    def finished(
        self,
        name: str,
        duration_ns: int,
        *,
        error: BaseException | None = None,
        parameters: Mapping[str, str] | None = None,
        attachments: Sequence[AllureAttachment] = (),
    ) -> None:
        """A step ended: time it, keep its evidence, and classify its error if it failed."""
        step = self._open if self._open is not None and self._open.name == name else _Step(name, _now_ms())
        self._open = None
        step.duration_ns = duration_ns
        step.stop_ms = step.start_ms + max(duration_ns // 1_000_000, 0)
        step.parameters |= dict(parameters or {})
        step.attachments.extend(attachments)
        if error is None:
            self.latencies.record(name, duration_ns)
        else:
            step.failure = Failure.from_exception(error, name, step=name)
            step.outcome = _outcome(step.failure)
        self._steps.append(step)

    def note(self, text: str) -> None:
        """Something worth reading next to the steps (what was released after a failure)."""
        self.notes.append(text)

    def fail(self, error: BaseException) -> None:
        """An error outside any step (the sequence could not start, or ran out of time)."""
        failure = Failure.from_exception(error, self.name)
        if self._open is not None:  # the step that was running when it happened
            step, self._open = self._open, None
            step.stop_ms = _now_ms()
            step.failure = Failure.from_exception(error, step.name, step=step.name)
            step.outcome = _outcome(step.failure)
            self._steps.append(step)
        elif not self.failures:
            self._steps.append(_Step(self.name, _now_ms(), _now_ms(), 0, _outcome(failure), failure))

    def close(self) -> None:
        self._stop_ms = _now_ms()

    @property
    def failures(self) -> list[Failure]:
        return [step.failure for step in self._steps if step.failure is not None]

    @property
    def completed(self) -> bool:
        """Every planned step ran and none failed."""
        done = {step.name for step in self._steps if step.failure is None}
        return not self.failures and all(name in done for name in self.planned)

    def _not_reached(self) -> list[str]:
        seen = {step.name for step in self._steps}
        return [name for name in self.planned if name not in seen]

    def cases(self) -> list[CaseResult]:
        """One JUnit case per step; steps never reached are skipped, saying which step stopped them."""
        cases = [
            CaseResult(step.name, step.outcome, step.duration_ns, step.failure)
            if step.failure is not None
            else CaseResult(step.name, CaseOutcome.PASSED, step.duration_ns)
            for step in self._steps
        ]
        failures = self.failures
        reason = f"not reached: {failures[0].name} failed" if failures else "not reached"
        return cases + [CaseResult(name, CaseOutcome.SKIPPED, reason=reason) for name in self._not_reached()]

    def allure_test(self, *, parameters: Mapping[str, str] | None = None, description: str = "") -> AllureTest:
        """The whole sequence as one Allure test case with a step per step."""
        failures = self.failures
        first = failures[0] if failures else None
        steps = [
            AllureStep(
                step.name,
                step.outcome,
                step.start_ms,
                step.stop_ms,
                failure=step.failure,
                attachments=step.attachments,
                parameters=step.parameters,
            )
            for step in self._steps
        ]
        stop = self._stop_ms or _now_ms()
        steps += [AllureStep(name, CaseOutcome.SKIPPED, stop, stop) for name in self._not_reached()]
        notes = "\n".join(self.notes)
        return AllureTest(
            name=self.name,
            full_name=self.full_name,
            stage=self.stage,
            outcome=_outcome(first) if first is not None else CaseOutcome.PASSED,
            start_ms=self._start_ms,
            stop_ms=stop,
            failure=first,
            steps=steps,
            parameters=dict(parameters or {}),
            description="\n\n".join(text for text in (description, notes) if text),
        )


def _now_ms() -> int:
    return int(time.time() * 1000)
