"""``locker-harness hw``: N deliveries over Bluetooth LE and the latency of every BLE phase.

On ``local`` (the default) the doors are the virtual towers', reached through bleak and the
virtual radio; ``--mtu`` sets the ATT MTU its towers grant (23..247). On a virtual sandbox's URL
(``locker-harness sim``) they are its towers, reached through the radio it serves to other
processes (its control plane says where). With ``HARBOR_BLE=bleak``
they are a bench tower's (``--tower``), reached through the OS's Bluetooth; without an adapter that
stops at once with one line (exit 4). ``--open-p95-ms`` turns the table into a gate: exit 3 when
OPEN_LOCKER_WITH_TOKEN -> LOCKER_OPENED is slower. Below the phases, a table says what each tower
showed: the advertisement layout the OS presented, the negotiated MTU and GET_DEVICE_INFO's answer.
With ``--reports-dir``, ``--run-id`` or ``--junit-xml`` the phases, the deliveries and the gate are
also written as a run of the ``hw`` stage under ``reports/<run-id>/``.
"""

from __future__ import annotations

import asyncio
import math
from typing import Annotated

import typer
from rich.table import Table

from harness.cli._common import (
    ConfigOption,
    JunitXmlOption,
    Output,
    ProductionWritesOption,
    QuietOption,
    ReportsDirOption,
    RunIdOption,
    StatusTimeoutOption,
    TargetOption,
    TowerOption,
    VerboseOption,
    cleanup_line,
    run_command,
)
from harness.cli._evidence import EvidenceRequest
from harness.cli._target import command_settings, running_target
from harness.config import BleBackend, TargetKind
from harness.errors import ExitCode, HarnessError, UsageError
from harness.flow import Delivery, FlowEvent, Released
from harness.metrics import Latencies
from harness.report import (
    CaseOutcome,
    CaseResult,
    Failure,
    FailureKind,
    Figure,
    GateLine,
    StageResult,
    Verdict,
    verdict_of,
)
from harness.run import RunContext
from harness.targets import BleDeliveries, ble_deliveries, radio

__all__ = ["command", "phase_table", "tower_table"]


def phase_table(latencies: Latencies, title: str) -> Table:
    """One row per BLE phase: count, p50, p95, p99 and max in milliseconds."""
    table = Table(title=title, title_justify="left")
    table.add_column("phase")
    for column in ("n", "p50 ms", "p95 ms", "p99 ms", "max ms"):
        table.add_column(column, justify="right")
    for summary in latencies.summaries():
        table.add_row(
            summary.name.removeprefix("ble."),
            str(summary.count),
            f"{summary.p50_ms:.2f}",
            f"{summary.p95_ms:.2f}",
            f"{summary.p99_ms:.2f}",
            f"{summary.max_ms:.2f}",
        )
    return table


def tower_table(measured: BleDeliveries) -> Table:
    """What each tower showed (one column per tower): advertisement layout, ATT MTU, device info."""
    seen = list(measured.towers)
    table = Table(title="Towers", title_justify="left")
    table.add_column("")
    for tower in seen:
        table.add_column(tower.tower_id)
    rows: list[tuple[str, list[str]]] = [
        ("advertisement", [t.layout.value if t.layout is not None else "?" for t in seen]),
        ("ATT MTU", [str(t.mtu) for t in seen]),
    ]
    infos = [t.device_info for t in seen]
    for label, read in (
        ("firmware", lambda i: i.firmware_version),
        ("name", lambda i: i.tower_name),
        ("model", lambda i: i.device_model),
        ("serial", lambda i: i.tower_serial),
        ("lockers", lambda i: str(i.lockers)),
        ("uptime s", lambda i: str(i.uptime)),
        ("battery mV", lambda i: str(i.battery_mv)),
    ):
        rows.append((label, [read(i) if i is not None else "" for i in infos]))
    if any(info is None for info in infos):
        rows.append(("device info", [t.device_info_error or "none" if t.device_info is None else "" for t in seen]))
    for label, values in rows:
        table.add_row(label, *values)
    return table


def _stage(
    cycles: int, latencies: Latencies, open_p95_ms: float | None, error: HarnessError | None = None
) -> StageResult:
    """What ``hw`` measured as the ``hw`` stage's result: a case per delivery batch and one per gate."""
    failures = [Failure.from_exception(error, "deliveries over BLE")] if error is not None else []
    cases = [CaseResult.failed("deliveries over BLE", failures[0]) if failures else
             CaseResult("deliveries over BLE", CaseOutcome.PASSED)]  # fmt: skip
    figures: dict[str, Figure] = {"deliveries": cycles if error is None else "-", "opens": latencies.count("ble.open")}
    gates: list[GateLine] = []
    if open_p95_ms is not None:
        measured = latencies.percentile_ms("ble.open", 95) if latencies.count("ble.open") else None
        held = None if measured is None else measured <= open_p95_ms
        shown = "not measured" if measured is None else f"{measured:.2f} ms"
        gates.append(GateLine("open p95", f"{open_p95_ms:g} ms", shown, held))
        if held is False:
            breach = Failure(FailureKind.PRODUCT, "SLO open p95", f"open p95 {shown} > {open_p95_ms:g} ms", "SloBreach")
            cases.append(CaseResult("SLO open p95", CaseOutcome.FAILED, failure=breach))
        else:
            cases.append(CaseResult("SLO open p95", CaseOutcome.PASSED if held else CaseOutcome.SKIPPED))
    verdict = verdict_of(failures)
    if verdict is Verdict.PASSED and gates and gates[0].held is False:
        verdict = Verdict.BREACHED
    reason = failures[0].message.splitlines()[0] if failures else ""
    if verdict is Verdict.BREACHED:
        reason = f"open p95 {gates[0].measured} > {gates[0].limit}"
    return StageResult("hw", verdict, reason, figures, latencies, failures=failures, cases=cases, gates=gates)


def command(
    context: typer.Context,
    cycles: Annotated[
        int, typer.Option("--cycles", "-n", min=1, max=10_000, help="Deliveries to run (2 opens each).")
    ] = 5,
    open_p95_ms: Annotated[
        float | None,
        typer.Option(
            "--open-p95-ms",
            help="Exit 3 if p95 of open -> LOCKER_OPENED exceeds this many ms (a finite number above 0).",
        ),
    ] = None,
    mtu: Annotated[
        int | None,
        typer.Option("--mtu", min=23, max=247, help="Local only: the ATT MTU the virtual towers grant (default 247)."),
    ] = None,
    target: TargetOption = None,
    tower: TowerOption = None,
    status_timeout: StatusTimeoutOption = None,
    config: ConfigOption = None,
    allow_production_writes: ProductionWritesOption = False,
    reports_dir: ReportsDirOption = None,
    run_id: RunIdOption = None,
    junit_xml: JunitXmlOption = None,
    quiet: QuietOption = False,
    verbose: VerboseOption = False,
) -> None:
    """Open doors over Bluetooth LE N times and print each BLE phase's latency (p50/p95/p99)."""

    def body(out: Output) -> int:
        if open_p95_ms is not None and not (math.isfinite(open_p95_ms) and open_p95_ms > 0):
            raise UsageError(f"--open-p95-ms must be a finite number of milliseconds above 0, not {open_p95_ms!r}")
        settings = command_settings(context)
        settings.check_writes_allowed("open doors over BLE (it reserves lockers and creates tokens)")
        local = settings.target.kind is TargetKind.LOCAL
        virtual = settings.ble is BleBackend.VIRTUAL
        if virtual and settings.target.kind not in (TargetKind.LOCAL, TargetKind.URL):
            raise UsageError(
                "the virtual radio exists on --target local and on a virtual sandbox's URL; "
                "a bench tower needs HARBOR_BLE=bleak"
            )
        if mtu is not None and not (local and virtual):
            raise UsageError(
                "--mtu sets the embedded sandbox's MTU (local target); a sandbox URL's is set on its control "
                'plane (POST /_sim/radio {"mtu": 23}), and a real radio\'s is negotiated by the OS'
            )

        def delivered(number: int, delivery: Delivery) -> None:
            out.detail(f"  delivery {number}/{cycles}: locker {delivery.locker.id}, {delivery.total_ns / 1e6:.1f} ms")

        released: list[Released] = []

        def gave_back(event: FlowEvent) -> None:
            if isinstance(event, Released):
                released.append(event)

        evidence = EvidenceRequest(asked=reports_dir is not None, run_id=run_id, junit_xml=junit_xml, settings=settings)
        environment = {"hw.cycles": str(cycles), "ble": settings.ble.value}

        with running_target(settings, mtu=mtu) as running:
            if virtual and not local and running.settings.tower_id is None:
                radio(running.settings)  # a URL that serves no radio says so, rather than "no tower"
            tower_id = running.settings.tower()
            if local:
                over = "virtual radio" if virtual else "the OS's Bluetooth"
                out.say(f"hw: {cycles} deliveries on tower {tower_id} of target local over the {over}")
            elif virtual:
                where = f"tower {tower_id} of target {settings.target.name}"
                out.say(f"hw: {cycles} deliveries on {where} over the virtual radio it serves")
            else:
                out.say(f"hw: {cycles} deliveries on bench tower {tower_id} of target {settings.target.name}")
            try:
                measured = asyncio.run(
                    ble_deliveries(
                        running.settings,
                        cycles,
                        radio_link=running.radio_link,
                        delivered=delivered,
                        listeners=[gave_back],
                    )
                )
            except HarnessError as error:
                for event in released:
                    out.say(cleanup_line(event))

                def broken(context: RunContext, error: HarnessError = error) -> StageResult:
                    return _stage(cycles, Latencies(), open_p95_ms, error)

                evidence.write(out, running.settings, "hw", broken, code=error.exit_code, environment=environment)
                raise
            code: int = ExitCode.OK
            latencies = measured.latencies
            out.print(phase_table(latencies, f"BLE phases over {cycles} deliveries ({2 * cycles} opens)"))
            out.print(tower_table(measured))
            if open_p95_ms is not None:
                p95 = latencies.percentile_ms("ble.open", 95)
                if p95 > open_p95_ms:
                    out.error(f"open p95 {p95:.2f} ms exceeds --open-p95-ms {open_p95_ms:g}")
                    code = ExitCode.SLO_BREACH
            code = evidence.write(
                out,
                running.settings,
                "hw",
                lambda context: _stage(cycles, latencies, open_p95_ms),
                code=code,
                environment=environment,
            )
        return code

    run_command(body, "hw", verbose=verbose, quiet=quiet)
