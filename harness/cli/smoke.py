"""``locker-harness smoke``: one delivery end to end, each step's status and latency in a table.

Against ``local`` (the default) it starts the virtual sandbox in a thread with throwaway
credentials, so it needs nothing. Exit 0 when the locker is available again at the end, 1 when a
step broke a promise (the step and the check are named), 2 for usage and configuration errors,
4 when the target could not be tested, 130 on Ctrl-C after giving back what was held.

The delivery itself is ``harness.targets.smoke_delivery``: the run's smoke stage makes it too, so
``locker-harness smoke`` and ``locker-harness run --only smoke`` test the same path. It writes no
reports unless asked (``--reports-dir``, ``--run-id``, ``--junit-xml``): then its steps become a run
of the smoke stage under ``reports/<run-id>/``, as ``run --only smoke`` writes them.

``--webhooks`` (local only) also receives the sandbox's webhooks as an integrator would: a
receiver on loopback, registered with the sandbox before the delivery, must get the delivery's
``LOCKER_TOKEN_CREATED`` (rented) and ``LOCKER_TOKEN_USED`` (occupied), signed, with Harbor's
envelope and fields, in order; else exit 1 naming what is wrong.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from typing import Annotated

import typer
from rich.table import Table

from harness.assumptions import findings, observing
from harness.cli._common import (
    ConfigOption,
    JunitXmlOption,
    Output,
    ProductionWritesOption,
    QuietOption,
    ReportsDirOption,
    RunIdOption,
    SimBugOption,
    SimDialectOption,
    SimFaultOption,
    StatusTimeoutOption,
    TargetOption,
    TowerOption,
    VerboseOption,
    cleanup_line,
    run_command,
    tell_verdict,
)
from harness.cli._evidence import EvidenceRequest
from harness.cli._target import command_settings, running_target
from harness.config import Settings, TargetKind
from harness.errors import ExitCode, HarnessError, ProductDefect, UsageError
from harness.flow import Delivery, FlowEvent, Released, Step, StepFinished, StepStarted, locker_type_id
from harness.model import CLIENT_INFO_MAX
from harness.redaction import redactor
from harness.report import findings_table
from harness.run import recording, smoke_recorder, smoke_result
from harness.targets import DeliveryChoice, RadioLink, smoke_delivery, subscribe_webhooks
from harness.webhooks import WebhookEvent, WebhookReceiver, check_dropoff

__all__ = ["command"]


def _ms(duration_ns: int) -> str:
    ms = duration_ns / 1e6
    return f"{ms:.2f}" if ms < 10 else f"{ms:.1f}"


class _Progress:
    """Listens to the flow: keeps each step's row, shows events live with ``--verbose``."""

    def __init__(self, out: Output) -> None:
        self.out = out
        self.finished: list[StepFinished] = []
        self.released: Released | None = None

    def __call__(self, event: FlowEvent) -> None:
        if isinstance(event, StepStarted):
            self.out.detail(f"  {event.step.value} ...")
        elif isinstance(event, StepFinished):
            self.finished.append(event)
            status = event.locker_status.wire_name if event.locker_status is not None else "-"
            outcome = "ok" if event.ok else "FAILED"
            self.out.detail(f"  {event.step.value}: {outcome} {_ms(event.duration_ns)} ms, locker {status}")
        else:
            self.released = event

    @property
    def failed_step(self) -> Step | None:
        failed = [event.step for event in self.finished if not event.ok]
        return failed[-1] if failed else None

    def table(self) -> Table:
        table = Table(title="delivery", title_justify="left")
        table.add_column("#", justify="right")
        table.add_column("step")
        table.add_column("locker", justify="right")
        table.add_column("status after")
        table.add_column("latency ms", justify="right")
        table.add_column("result")
        for number, event in enumerate(self.finished, start=1):
            table.add_row(
                str(number),
                event.step.value,
                str(event.locker_id) if event.locker_id is not None else "-",
                event.locker_status.wire_name if event.locker_status is not None else "-",
                _ms(event.duration_ns),
                ("ok" if event.ok else "FAILED") + (f", {len(event.retried)} retried" if event.retried else ""),
            )
        return table

    def show(self) -> None:
        if self.finished:
            self.out.print(self.table())
        for event in self.finished:
            for attempt in event.retried:
                self.out.say(f"retried: {event.step.value}: {attempt}")
        if self.released is not None:
            self.out.say(cleanup_line(self.released))


def _run(
    out: Output,
    settings: Settings,
    choice: DeliveryChoice,
    radio_link: RadioLink | None = None,
    delivered: list[Delivery] | None = None,
    evidence: EvidenceRequest | None = None,
) -> int:
    tower_id = settings.tower()
    out.say(f"smoke: one delivery on tower {tower_id} of target {settings.target.name} ({settings.target.api_url})")
    out.detail(f"settings: {settings!r}")
    progress = _Progress(out)
    recorder = smoke_recorder()
    started = time.perf_counter_ns()

    def keep(code: int) -> int:
        """Write the delivery's evidence when asked, whatever its outcome; the command's exit code."""
        recorder.close()
        duration_ns = time.perf_counter_ns() - started
        if evidence is not None:
            code = evidence.write(
                out,
                settings,
                "smoke",
                lambda context: smoke_result("smoke", context, recorder, duration_ns),
                code=code,
                environment={"smoke.locker": str(choice.locker_id or "-")},
            )
        return code

    try:
        delivery = asyncio.run(
            smoke_delivery(settings, radio_link=radio_link, listeners=[progress, recording(recorder)], choice=choice)
        )
    except KeyboardInterrupt:
        progress.show()
        raise
    except HarnessError as exc:
        progress.show()
        recorder.fail(exc)
        step = progress.failed_step
        if step is None:
            keep(exc.exit_code)
            raise
        out.traceback(exc)
        check = f" [{exc.check}]" if isinstance(exc, ProductDefect) else ""
        out.error(f"step {step.value} failed{check}: {exc}")
        return keep(exc.exit_code)
    progress.show()
    if delivered is not None:
        delivered.append(delivery)
    locker = delivery.locker
    out.say(
        f"delivered: locker {locker.id} (door {locker.name}, {locker.type.name}) is {locker.status.wire_name} again; "
        f"{len(delivery.steps)} steps in {_ms(delivery.total_ns)} ms"
    )
    return keep(ExitCode.OK)


def command(
    context: typer.Context,
    target: TargetOption = None,
    tower: TowerOption = None,
    locker_type: Annotated[
        str | None,
        typer.Option("--locker-type", help="Use a locker of this type: small, medium, large, xlarge or 1-4."),
    ] = None,
    locker: Annotated[
        int | None,
        typer.Option("--locker", help="Use this locker: its id (e.g. 1401), not the label on its door.", min=1),
    ] = None,
    client_info: Annotated[
        str,
        typer.Option(
            "--client-info",
            help=f"client_info of the tokens, at most {CLIENT_INFO_MAX} characters (default empty, as Harbor asks).",
        ),
    ] = "",
    status_timeout: StatusTimeoutOption = None,
    config: ConfigOption = None,
    sim_bug: SimBugOption = None,
    sim_fault: SimFaultOption = None,
    sim_dialect: SimDialectOption = None,
    allow_production_writes: ProductionWritesOption = False,
    webhooks: Annotated[
        bool,
        typer.Option(
            "--webhooks",
            help="local only: also receive the sandbox's webhooks on a loopback receiver and check that the "
            "delivery's LOCKER_TOKEN_CREATED (rented) and LOCKER_TOKEN_USED (occupied) arrive, signed, in order.",
        ),
    ] = False,
    reports_dir: ReportsDirOption = None,
    run_id: RunIdOption = None,
    junit_xml: JunitXmlOption = None,
    quiet: QuietOption = False,
    verbose: VerboseOption = False,
) -> None:
    """Run one delivery end to end and show each step, the locker's status after it and its latency."""

    def body(out: Output) -> int:
        settings = command_settings(context)
        settings.check_writes_allowed("run a delivery (it reserves a locker and creates tokens)")
        if len(client_info) > CLIENT_INFO_MAX:
            raise UsageError(f"--client-info is {len(client_info)} characters: at most {CLIENT_INFO_MAX}")
        choice = DeliveryChoice(locker_type_id(locker_type), locker, client_info)
        if webhooks and settings.target.kind is not TargetKind.LOCAL:
            raise UsageError(
                "--webhooks applies to --target local only: Harbor's staff register an integrator's endpoint by hand"
            )
        evidence = EvidenceRequest(asked=reports_dir is not None, run_id=run_id, junit_xml=junit_xml, settings=settings)
        with running_target(
            settings, sim_bug=sim_bug or (), sim_fault=sim_fault or (), sim_dialect=sim_dialect or ()
        ) as running:
            # What the answers showed of our guesses is said with or without --webhooks.
            with observing() as seen:
                if webhooks:
                    code = _run_with_webhooks(out, running.settings, choice, running.radio_link, evidence)
                else:
                    code = _run(out, running.settings, choice, running.radio_link, evidence=evidence)
            refuted = findings(seen.entries(), running.settings.assume)
            if refuted:
                out.print(findings_table(refuted, redactor=out.redactor))
            if out.verdict_line is None:  # no evidence asked for: -q's one line, the findings counted
                tell_verdict(out, "smoke", code, refuted=len(refuted))
            return code

    run_command(body, "smoke", verbose=verbose, quiet=quiet)


def _run_with_webhooks(
    out: Output,
    settings: Settings,
    choice: DeliveryChoice,
    radio_link: RadioLink | None,
    evidence: EvidenceRequest | None = None,
) -> int:
    """The delivery with a receiver registered first; then the webhooks it should have caused, checked."""
    secret = secrets.token_hex(16)
    redactor().register(secret)
    with WebhookReceiver(secret=secret, assumed=settings.assume) as receiver:
        assert settings.target.api_url is not None
        subscribe_webhooks(settings.target.api_url, receiver.url, secret=secret, policy=settings.wire_policy())
        out.say(f"webhooks: a receiver at {receiver.url}, registered with the sandbox")
        delivered: list[Delivery] = []
        code = _run(out, settings, choice, radio_link, delivered, evidence)
        if code != ExitCode.OK or not delivered:
            return code
        locker = delivered[0].locker
        problems = check_dropoff(receiver, locker_id=locker.id, tower_id=locker.tower_id, signed=True)
        _show_webhooks(out, receiver, locker.id)
    if problems:
        out.error(f"webhooks of locker {locker.id}: {'; '.join(problems)}")
        return ExitCode.DEFECT
    out.say(f"webhooks: LOCKER_TOKEN_CREATED (rented) then LOCKER_TOKEN_USED (occupied) arrived for locker {locker.id}")
    return ExitCode.OK


def _show_webhooks(out: Output, receiver: WebhookReceiver, locker_id: int) -> None:
    table = Table(title=f"webhooks received ({len(receiver.deliveries)} deliveries)", title_justify="left")
    for name in ("#", "source", "locker", "locker_status", "answered", "signature"):
        table.add_column(name)
    for number, delivery in enumerate(receiver.deliveries, start=1):
        event, _ = WebhookEvent.read(delivery.body)
        signature = "-" if delivery.signature_ok is None else ("ok" if delivery.signature_ok else "BAD")
        table.add_row(
            str(number),
            event.source if event else "?",
            str(event.locker_id) if event else "?",
            event.locker_status if event else "?",
            str(delivery.answered),
            signature,
        )
    out.print(table)
