"""The smoke stage: one delivery through ``harness.flow``, each step timed, with its HTTP evidence."""

from __future__ import annotations

import asyncio
import time
from typing import Final

import httpx

from harness.config import TargetKind
from harness.errors import TargetUnreachable, UsageError
from harness.report import CaseOutcome, Figure, StageResult, StepRecorder, verdict_of
from harness.run._capture import CapturingTransport
from harness.run._context import RunContext

__all__ = ["SmokeStage"]

_PROBE_TIMEOUT_S: Final = 3.0


class SmokeStage:
    """One complete delivery against the target, each flow step timed, with its HTTP evidence.

    Doors open through the virtual sandbox's control plane (``local`` and URL targets); on
    Harbor's own hosts a door needs a tower, which is the hardware rig's stage.
    """

    name = "smoke"
    #: Doors open through the control plane: the radio's BLE faults never reach this stage.
    ble_faults = False

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


async def _deliver(context: RunContext, recorder: StepRecorder) -> None:
    from harness.api import AsyncHarborClient
    from harness.flow import ControlPlaneOpener, FlowEvent, Released, StepFinished, StepStarted, run_delivery
    from harness.ledger import ledger_holds

    settings = context.settings
    assert settings.target.api_url is not None
    capture = CapturingTransport(httpx.AsyncHTTPTransport(), context.redactor)

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
