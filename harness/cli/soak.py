"""``locker-harness soak``: many deliveries against ``local``, bounded, with the sandbox's memory watched.

Opt-in, never part of ``make test``: ``locker-harness soak --deliveries 10000``. The soak itself
(workers, the RSS sampler, what passes) is ``harness.run.soak``; this command starts the embedded
sandbox as its own process for it, prints the figures and writes them to ``soak-<run-id>.json``.
Exit 0 green, 1 a violation, 3 memory grew past the margin, 4 could not run.
"""

from __future__ import annotations

import math
from typing import Annotated

import typer
from rich.table import Table

from harness.cli._common import Output, VerboseOption, run_command
from harness.cli._target import command_settings
from harness.config import TargetKind
from harness.errors import UsageError
from harness.run import SOAK_LOCKERS, SoakFigures, soak, soak_verdict, write_soak_figures
from harness.stopping import terminated
from harness.targets import embedded_sandbox

__all__ = ["command"]


def _table(figures: SoakFigures, margin: float) -> Table:
    table = Table(title="soak", title_justify="left")
    table.add_column("figure")
    table.add_column("value", justify="right")
    for name, value in _rows(figures, margin):
        table.add_row(name, value)
    return table


def _rows(figures: SoakFigures, margin: float) -> list[tuple[str, str]]:
    return [
        ("deliveries completed", f"{figures.deliveries}"),
        ("deliveries failed", f"{figures.failed}"),
        ("oracle violations", f"{len(figures.violations)}"),
        ("requests / 5xx answers", f"{figures.requests} / {figures.server_errors}"),
        ("wall time", f"{figures.wall_s:.1f} s"),
        ("deliveries per second", f"{figures.per_s:.1f}"),
        ("end to end p50 / p95 / p99", f"{figures.p50_ms:.1f} / {figures.p95_ms:.1f} / {figures.p99_ms:.1f} ms"),
        ("end to end max", f"{figures.max_ms:.1f} ms"),
        (
            "sandbox RSS start / middle / end",
            f"{_mib(figures.rss_start_mib)} / {_mib(figures.rss_middle_mib)} / {_mib(figures.rss_end_mib)} MiB",
        ),
        ("sandbox RSS peak (samples)", f"{figures.rss_peak_mib:.1f} MiB ({figures.rss_samples})"),
        ("RSS growth after warm-up", _growth(figures, margin)),
        ("RSS growth: second half / per delivery", _late_growth(figures)),
        ("lockers left held", ", ".join(map(str, figures.lockers_left_held)) or "none"),
    ]


def _mib(value: float) -> str:
    """A reading, or a dash for a mark the soak never reached (stopped before its warm-up or half-way)."""
    return f"{value:.1f}" if value else "-"


def _growth(figures: SoakFigures, margin: float) -> str:
    if not figures.rss_start_mib:
        return f"not measured: stopped before the warm-up ended (margin {margin * 100:.0f} %)"
    return f"{figures.rss_growth * 100:+.1f} % (margin {margin * 100:.0f} %)"


def _late_growth(figures: SoakFigures) -> str:
    if not figures.rss_middle_mib:
        return "not measured: stopped before half-way"
    return f"{figures.rss_late_growth * 100:+.1f} % / {figures.rss_bytes_per_delivery:+.0f} B"


def _stopped(figures: SoakFigures, sigterm: bool) -> str:
    """What a stopped soak says: the figures are partial, and what its sandbox still held, if anything."""
    stopped = "terminated (SIGTERM)" if sigterm else "interrupted"
    said = f"{stopped} after {figures.deliveries} deliveries: the figures so far"
    held = figures.lockers_left_held
    if not held:
        return f"{said}; every worker gave back what it held (nothing was left held)"
    return (
        f"{said}; locker(s) {', '.join(map(str, held))} were still held when the soak's own sandbox "
        "stopped with it (`locker-harness cleanup` closes their ledger rows)"
    )


def command(
    context: typer.Context,
    deliveries: Annotated[
        int, typer.Option("--deliveries", "-n", help="Deliveries to make (bounded).", min=1, max=1_000_000)
    ] = 10_000,
    concurrency: Annotated[
        int,
        typer.Option("--concurrency", "-c", help="Workers, each with its own locker.", min=1, max=len(SOAK_LOCKERS)),
    ] = 8,
    rss_margin: Annotated[
        float,
        typer.Option(
            "--rss-margin",
            help="Largest RSS growth after the warm-up, as a fraction (0.10 = 10 %; finite).",
            min=0.0,
        ),
    ] = 0.10,
    sample_every: Annotated[
        float, typer.Option("--sample-every", help="Seconds between RSS samples.", min=0.05, max=60.0)
    ] = 0.5,
    timeout: Annotated[
        float, typer.Option("--timeout", help="Seconds the soak may take at most.", min=1.0, max=86_400.0)
    ] = 3600.0,
    verbose: VerboseOption = False,
) -> None:
    """Make many deliveries against local and watch the sandbox's memory: violations, 5xx and RSS growth."""

    def body(out: Output) -> int:
        if not math.isfinite(rss_margin):  # inf passes ``min`` and would switch the memory gate off
            raise UsageError(f"--rss-margin must be a finite fraction of 0 or more, not {rss_margin!r}")
        settings = command_settings(context)
        if settings.target.kind is not TargetKind.LOCAL:
            raise UsageError("the soak runs against local only: it watches the sandbox process's memory")
        tower = settings.tower()
        with embedded_sandbox(settings, subprocess=True) as local:
            pid = local.sandbox.pid
            out.say(
                f"soak: {deliveries} deliveries, {concurrency} workers, tower {tower}, sandbox pid {pid} at {local.url}"
            )
            figures = soak(
                local,
                deliveries=deliveries,
                concurrency=concurrency,
                sample_every=sample_every,
                timeout=timeout,
                detail=out.detail,
            )
        out.print(_table(figures, rss_margin))
        report = write_soak_figures(figures, settings.reports_dir, rss_margin=rss_margin, redactor=out.redactor)
        out.say(f"figures: {report}")
        if figures.interrupted:
            out.say(_stopped(figures, terminated()))
        for line in (figures.violations + figures.infrastructure)[:5]:
            out.say(f"  {line}")
        return soak_verdict(figures, asked=deliveries, rss_margin=rss_margin)

    run_command(body, "soak", verbose=verbose)
