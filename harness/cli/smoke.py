"""``locker-harness smoke``: one delivery end to end, each step's status and latency in a table.

Against ``local`` (the default) it starts the virtual sandbox in a thread with throwaway
credentials, so it needs nothing. Exit 0 when the locker is available again at the end, 1 when a
step broke a promise (the step and the check are named), 2 for usage and configuration errors,
4 when the target could not be tested, 130 on Ctrl-C after giving back what was held.

``smoke_delivery`` is that delivery as a function: the run's smoke stage calls it too, so
``locker-harness smoke`` and ``locker-harness run --only smoke`` test the same path.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Annotated

import httpx
import typer
from rich.table import Table

from harness.api import AsyncHarborClient
from harness.cli._common import (
    ConfigOption,
    Output,
    ProductionWritesOption,
    SimBugOption,
    SimFaultOption,
    StatusTimeoutOption,
    TargetOption,
    TowerOption,
    VerboseOption,
    run_command,
)
from harness.cli._doors import door_opener, serves_control_plane
from harness.cli._sandbox import embedded_sandbox
from harness.config import Settings, TargetKind, load_settings
from harness.errors import ExitCode, HarnessError, ProductDefect, UsageError
from harness.flow import (
    Delivery,
    FlowEvent,
    Listener,
    Released,
    Step,
    StepFinished,
    StepStarted,
    locker_type_id,
    run_delivery,
)
from harness.ledger import ledger_holds
from harness.model import CLIENT_INFO_MAX
from harness.redaction import Redactor

__all__ = ["DeliveryChoice", "command", "serves_control_plane", "smoke_delivery"]


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
                "ok" if event.ok else "FAILED",
            )
        return table

    def show(self) -> None:
        if self.finished:
            self.out.print(self.table())
        if self.released is not None:
            self.out.say(f"cleanup: {self.released.note}")


@dataclass(frozen=True, slots=True)
class DeliveryChoice:
    """Which locker the delivery uses and what its tokens carry (``--locker-type``, ``--locker``, ``--client-info``)."""

    locker_type: int | None = None
    locker_id: int | None = None
    client_info: str = ""


async def smoke_delivery(
    settings: Settings,
    *,
    radio_link: Callable[[], object] | None = None,
    listeners: Sequence[Listener] = (),
    choice: DeliveryChoice | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
    redactor: Redactor | None = None,
    run_id: str | None = None,
    firmware: dict[str, str] | None = None,
) -> Delivery:
    """One delivery on ``settings.tower()`` as ``locker-harness smoke`` makes it; raises on the first failure.

    Every reservation and token goes to the cleanup ledger before the call (rows under ``run_id``,
    else the parent's or a new run id), so ``locker-harness cleanup`` finds them after a crash.
    Doors open as ``door_opener`` chooses: on ``local``, Bluetooth LE through the embedded
    sandbox's virtual radio (``radio_link``, from ``embedded_sandbox``); a sandbox URL through its
    control plane; Harbor's targets, a bench tower over the OS's Bluetooth. ``listeners`` hear
    the flow's events (the ledger's own listener is added); ``transport`` carries every HTTP
    request (a run's evidence capture) and ``redactor`` hides what the client learns. A
    ``firmware`` dict receives the version each tower advertised over BLE, failed delivery or not.
    """
    chosen = choice or DeliveryChoice()
    holds = ledger_holds(settings, run_id=run_id)
    async with (
        AsyncHarborClient(settings, holds=holds, transport=transport, redactor=redactor) as client,
        door_opener(settings, client=client, radio_link=radio_link, transport=transport) as opener,
    ):
        try:
            return await run_delivery(
                client,
                opener,
                tower_id=settings.tower(),
                locker_type=chosen.locker_type,
                locker_id=chosen.locker_id,
                client_info=chosen.client_info,
                listeners=[*listeners, holds.listener],
            )
        finally:
            if firmware is not None:
                firmware.update(getattr(opener, "firmware", {}))  # only a BLE opener meets towers


def _run(
    out: Output,
    settings: Settings,
    choice: DeliveryChoice,
    radio_link: Callable[[], object] | None = None,
) -> int:
    tower_id = settings.tower()
    out.say(f"smoke: one delivery on tower {tower_id} of target {settings.target.name} ({settings.target.api_url})")
    out.detail(f"settings: {settings!r}")
    progress = _Progress(out)
    try:
        delivery = asyncio.run(smoke_delivery(settings, radio_link=radio_link, listeners=[progress], choice=choice))
    except KeyboardInterrupt:
        progress.show()
        raise
    except HarnessError as exc:
        progress.show()
        step = progress.failed_step
        if step is None:
            raise
        out.traceback(exc)
        check = f" [{exc.check}]" if isinstance(exc, ProductDefect) else ""
        out.error(f"step {step.value} failed{check}: {exc}")
        return exc.exit_code
    progress.show()
    locker = delivery.locker
    out.say(
        f"delivered: locker {locker.id} (door {locker.name}, {locker.type.name}) is {locker.status.wire_name} again; "
        f"{len(delivery.steps)} steps in {_ms(delivery.total_ns)} ms"
    )
    return ExitCode.OK


def command(
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
    allow_production_writes: ProductionWritesOption = False,
    verbose: VerboseOption = False,
) -> None:
    """Run one delivery end to end and show each step, the locker's status after it and its latency."""

    def body(out: Output) -> int:
        settings = load_settings(
            {
                "target": target,
                "tower_id": tower,
                "status_timeout": status_timeout,
                "config": str(config) if config is not None else None,
                "allow_production_writes": allow_production_writes,
            }
        )
        settings.check_writes_allowed("run a delivery (it reserves a locker and creates tokens)")
        if len(client_info) > CLIENT_INFO_MAX:
            raise UsageError(f"--client-info is {len(client_info)} characters: at most {CLIENT_INFO_MAX}")
        choice = DeliveryChoice(locker_type_id(locker_type), locker, client_info)
        if settings.target.kind is TargetKind.LOCAL:
            settings.tower()
            with embedded_sandbox(settings, bugs=sim_bug or (), faults=sim_fault or ()) as sandbox:
                return _run(out, sandbox.settings, choice, sandbox.radio_link)
        if sim_bug or sim_fault:
            raise UsageError("--sim-bug and --sim-fault apply to --target local only")
        settings.credentials()  # name the missing variables before anything else happens
        settings.tower()
        return _run(out, settings, choice)

    run_command(body, verbose=verbose)
