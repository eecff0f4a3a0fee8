"""The smoke stage: ``locker-harness smoke``'s own delivery (``harness.targets.smoke_delivery``), each
step timed, with evidence.

Doors open as that command opens them: on ``local`` over Bluetooth LE through the embedded
sandbox's virtual radio (``context.radio_link``), on a sandbox URL through its control plane, on
Harbor's targets at a bench tower over the OS's Bluetooth. A target whose doors are a bench
tower's, with none to reach, skips the stage with the reason.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import secrets
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

import httpx

from harness.api import tls_context
from harness.config import TargetKind
from harness.errors import BluetoothUnavailable, ProductDefect, UsageError
from harness.model import TowerId
from harness.report import CaseOutcome, Figure, StageResult, StepRecorder, verdict_of
from harness.run._bench import ble_chosen_explicitly, no_bench_tower
from harness.run._capture import CapturingTransport
from harness.run._context import RunContext
from harness.targets import has_virtual_doors, smoke_delivery, subscribed_webhooks
from harness.webhooks import WebhookReceiver, check_dropoff

if TYPE_CHECKING:
    from harness.flow import FlowEvent, Listener

__all__ = ["SmokeStage", "recording", "smoke_recorder", "smoke_result"]


class SmokeStage:
    """One complete delivery against the target, each flow step timed, with its HTTP evidence."""

    name = "smoke"
    #: On ``local`` its doors open over the embedded sandbox's radio: the radio's BLE faults reach it.
    ble_faults = True

    def run(self, context: RunContext) -> StageResult:
        settings = context.settings
        if settings.target.api_url is None:
            raise UsageError("the smoke stage needs a running target: start the sandbox first")
        recorder = smoke_recorder()
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
        return smoke_result(self.name, context, recorder, time.perf_counter_ns() - started)


def _bluetooth_expected(context: RunContext) -> bool:
    """Whether a missing adapter is could-not-test: on ``local``, or when ``HARBOR_BLE`` asked for it."""
    return context.settings.target.kind is TargetKind.LOCAL or ble_chosen_explicitly()


def _flow_steps() -> list[str]:
    from harness.flow import Step

    return [step.value for step in Step]


async def _deliver(context: RunContext, recorder: StepRecorder) -> str | None:
    """Make the delivery, or say why this target has no doors the stage can open."""
    settings = context.settings
    url, kind = settings.target.api_url, settings.target.kind
    assert url is not None
    if not await asyncio.to_thread(has_virtual_doors, settings):
        reason = no_bench_tower(settings)
        if reason is not None:
            return reason
    capture = CapturingTransport(httpx.AsyncHTTPTransport(verify=tls_context()), context.redactor)
    listen = recording(recorder, capture=capture, progress=lambda step: context.progress("smoke", step))
    firmware: dict[str, str] = {}
    with contextlib.ExitStack() as stack:
        # On the embedded sandbox the delivery's webhooks are received as an integrator's endpoint
        # would, and checked (`smoke --webhooks`): what they show of our guesses is the run's too.
        receiver: WebhookReceiver | None = None
        if kind is TargetKind.LOCAL:
            secret = secrets.token_hex(16)
            context.redactor.register(secret)
            receiver = stack.enter_context(WebhookReceiver(secret=secret, assumed=settings.assume))
            stack.enter_context(subscribed_webhooks(url, receiver.url, secret=secret, policy=settings.wire_policy()))
        try:
            async with asyncio.timeout(max(context.budget.remaining(), 0.001)):
                delivery = await smoke_delivery(
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
        if receiver is not None:
            context.progress("smoke", "webhooks")
            await asyncio.to_thread(_check_webhooks, receiver, delivery.locker.id, delivery.locker.tower_id)
    return None


def _check_webhooks(receiver: WebhookReceiver, locker_id: int, tower_id: TowerId) -> None:
    """The delivery's two webhooks, as section 6 documents them [S]; ``ProductDefect`` naming what is not."""
    problems = check_dropoff(receiver, locker_id=locker_id, tower_id=tower_id, signed=True)
    if problems:
        raise ProductDefect(f"webhooks of locker {locker_id}: {'; '.join(problems)}", check="webhooks_as_documented")


def recording(
    recorder: StepRecorder,
    *,
    capture: CapturingTransport | None = None,
    progress: Callable[[str], None] | None = None,
) -> Listener:
    """A flow listener that records each step into ``recorder``: its time, the locker's status after
    it, the HTTP exchanges ``capture`` saw during it, and what was given back after a failure."""
    from harness.flow import Released, StepFinished, StepStarted

    def listen(event: FlowEvent) -> None:
        if isinstance(event, StepStarted):
            if capture is not None:
                capture.drain()  # anything before the step (none today) is not this step's evidence
            recorder.started(event.step.value)
            if progress is not None:
                progress(event.step.value)
        elif isinstance(event, StepFinished):
            parameters = {"locker": str(event.locker_id)} if event.locker_id is not None else {}
            if event.locker_status is not None:
                parameters["status after"] = event.locker_status.wire_name
            if event.retried:
                parameters["retried"] = "; ".join(event.retried)
            recorder.finished(
                event.step.value,
                event.duration_ns,
                error=event.error if not event.ok else None,
                parameters=parameters,
                attachments=capture.drain() if capture is not None else (),
            )
        elif isinstance(event, Released):
            recorder.note(event.note)

    return listen


def smoke_recorder() -> StepRecorder:
    """The recorder of one smoke delivery: every step of the flow planned."""
    return StepRecorder("smoke", "delivery flow", full_name="locker-harness.smoke.delivery", planned=_flow_steps())


def smoke_result(name: str, context: RunContext, recorder: StepRecorder, duration_ns: int) -> StageResult:
    """A delivery's steps as the smoke stage reports them (its Allure test written); ``locker-harness
    smoke`` writes its evidence the same way when asked to (``--reports-dir``, ``--run-id``, ``--junit-xml``)."""
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
