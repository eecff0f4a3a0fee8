"""The smoke stage: ``locker-harness smoke``'s own delivery (``harness.targets.smoke_delivery``), each
step timed, with evidence.

Doors open as that command opens them: on ``local`` over Bluetooth LE through the embedded
sandbox's virtual radio (``context.radio_link``), on a sandbox URL through its control plane, on
Harbor's targets at a bench tower over the OS's Bluetooth. A target whose doors are a bench
tower's, with none to reach, skips the stage with the reason.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time

import httpx

from harness.config import TargetKind
from harness.errors import BluetoothUnavailable, UsageError
from harness.report import CaseOutcome, Figure, StageResult, StepRecorder, verdict_of
from harness.run._bench import ble_chosen_explicitly, no_bench_tower
from harness.run._capture import CapturingTransport
from harness.run._context import RunContext
from harness.targets import serves_control_plane_async, smoke_delivery

__all__ = ["SmokeStage"]


class SmokeStage:
    """One complete delivery against the target, each flow step timed, with its HTTP evidence."""

    name = "smoke"
    #: On ``local`` its doors open over the embedded sandbox's radio: the radio's BLE faults reach it.
    ble_faults = True

    def run(self, context: RunContext) -> StageResult:
        settings = context.settings
        if settings.target.api_url is None:
            raise UsageError("the smoke stage needs a running target: start the sandbox first")
        recorder = StepRecorder(
            self.name, "delivery flow", full_name="locker-harness.smoke.delivery", planned=_flow_steps()
        )
        started = time.perf_counter_ns()
        try:
            no_doors = asyncio.run(_deliver(context, recorder))
        except (KeyboardInterrupt, UsageError):
            raise
        except Exception as error:  # classified into the stage's evidence, never the end of the run
            if isinstance(error, BluetoothUnavailable) and not _bluetooth_expected(context):
                return StageResult.skipped(self.name, f"no bench tower within reach: {error}")
            recorder.fail(error)
        else:
            if no_doors is not None:
                return StageResult.skipped(self.name, no_doors)
        recorder.close()
        return _smoke_result(self.name, context, recorder, time.perf_counter_ns() - started)


def _bluetooth_expected(context: RunContext) -> bool:
    """Whether a missing adapter is could-not-test: on ``local``, or when ``HARBOR_BLE`` asked for it."""
    return context.settings.target.kind is TargetKind.LOCAL or ble_chosen_explicitly()


def _flow_steps() -> list[str]:
    from harness.flow import Step

    return [step.value for step in Step]


async def _deliver(context: RunContext, recorder: StepRecorder) -> str | None:
    """Make the delivery, or say why this target has no doors the stage can open."""
    from harness.flow import FlowEvent, Released, StepFinished, StepStarted

    settings = context.settings
    url, kind = settings.target.api_url, settings.target.kind
    assert url is not None
    if kind is not TargetKind.LOCAL and not (
        kind is TargetKind.URL and await serves_control_plane_async(url, policy=settings.wire_policy())
    ):
        reason = no_bench_tower(settings)
        if reason is not None:
            return reason
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

    firmware: dict[str, str] = {}
    try:
        async with asyncio.timeout(max(context.budget.remaining(), 0.001)):
            await smoke_delivery(
                settings,
                radio_link=context.radio_link,
                listeners=[listen],
                transport=capture,
                redactor=context.redactor,
                run_id=context.run_id,  # for `locker-harness cleanup` after a crash
                firmware=firmware,
            )
    finally:
        version = firmware.get(settings.tower())
        if version and not context.target.firmware:  # the reports' environment names it
            context.target = dataclasses.replace(context.target, firmware=version)
    return None


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
