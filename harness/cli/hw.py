"""``locker-harness hw``: N deliveries over Bluetooth LE and the latency of every BLE phase.

On ``local`` (the default) the doors are the virtual towers', reached through bleak and the
virtual radio. With ``HARBOR_BLE=bleak`` they are a bench tower's (``--tower``), reached through
the OS's Bluetooth; without an adapter that stops at once with one line (exit 4). ``--open-p95-ms``
turns the table into a gate: exit 3 when OPEN_LOCKER_WITH_TOKEN -> LOCKER_OPENED is slower.
"""

from __future__ import annotations

import asyncio
import math
from typing import Annotated

import typer
from rich.table import Table

from harness.cli._common import (
    ConfigOption,
    Output,
    ProductionWritesOption,
    StatusTimeoutOption,
    TargetOption,
    TowerOption,
    VerboseOption,
    run_command,
)
from harness.cli._target import command_settings, running_target
from harness.config import BleBackend, TargetKind
from harness.errors import ExitCode, UsageError
from harness.flow import Delivery
from harness.metrics import Latencies
from harness.targets import ble_deliveries

__all__ = ["command", "phase_table"]


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
    target: TargetOption = None,
    tower: TowerOption = None,
    status_timeout: StatusTimeoutOption = None,
    config: ConfigOption = None,
    allow_production_writes: ProductionWritesOption = False,
    verbose: VerboseOption = False,
) -> None:
    """Open doors over Bluetooth LE N times and print each BLE phase's latency (p50/p95/p99)."""

    def body(out: Output) -> int:
        if open_p95_ms is not None and not (math.isfinite(open_p95_ms) and open_p95_ms > 0):
            raise UsageError(f"--open-p95-ms must be a finite number of milliseconds above 0, not {open_p95_ms!r}")
        settings = command_settings(context)
        settings.check_writes_allowed("open doors over BLE (it reserves lockers and creates tokens)")
        local = settings.target.kind is TargetKind.LOCAL
        if not local and settings.ble is not BleBackend.BLEAK:
            raise UsageError("the virtual radio exists only on --target local; a bench tower needs HARBOR_BLE=bleak")

        def delivered(number: int, delivery: Delivery) -> None:
            out.detail(f"  delivery {number}/{cycles}: locker {delivery.locker.id}, {delivery.total_ns / 1e6:.1f} ms")

        with running_target(settings) as running:
            tower_id = running.settings.tower()
            if local:
                radio = "virtual radio" if settings.ble is BleBackend.VIRTUAL else "the OS's Bluetooth"
                out.say(f"hw: {cycles} deliveries on tower {tower_id} of target local over the {radio}")
            else:
                out.say(f"hw: {cycles} deliveries on bench tower {tower_id} of target {settings.target.name}")
            latencies = asyncio.run(
                ble_deliveries(running.settings, cycles, radio_link=running.radio_link, delivered=delivered)
            )
        out.print(phase_table(latencies, f"BLE phases over {cycles} deliveries ({2 * cycles} opens)"))
        if open_p95_ms is not None:
            p95 = latencies.percentile_ms("ble.open", 95)
            if p95 > open_p95_ms:
                out.error(f"open p95 {p95:.2f} ms exceeds --open-p95-ms {open_p95_ms:g}")
                return ExitCode.SLO_BREACH
        return ExitCode.OK

    run_command(body, verbose=verbose)
