"""``locker-harness probe``: which of our assumptions a target confirms, refutes, or never shows.

Read-only unless ``--write`` (a locker held a moment and given back at once: a reservation and a
drop-off token, and a drop-off locker request; each in the cleanup ledger first; on production
only with the opt-in; on a virtual sandbox also one whole delivery through its control plane, its
webhooks received on loopback). It prints one row per assumption (confirmed, refuted with
the value seen and the ``[assume]`` line that adopts it, or not seen) and one per read of the API
document, and writes ``reports/<run-id>/probe/``: ``assumptions.json``, ``assume.toml`` and the
exchanges as ``exchanges.har`` (HAR 1.2, redacted). ``--run-id`` and ``--reports-dir`` name that
folder; ``--junit-xml`` writes a case per assumption (broken: a failure; refuted or not seen:
skipped, saying what was seen); ``--sim-dialect`` makes the embedded sandbox speak a Harbor
dialect. Exit 0 unless the target breaks an [S] fact (1); 2 for usage (a write to production
without the opt-in, credentials refused); 4 when the target does not answer.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Annotated

import httpx
import typer
from rich import box
from rich.table import Table
from rich.text import Text

from harness.cli._common import (
    ConfigOption,
    JunitXmlOption,
    Output,
    ProductionWritesOption,
    QuietOption,
    ReportsDirOption,
    RunIdOption,
    SimDialectOption,
    TargetOption,
    TowerOption,
    VerboseOption,
    fresh_run_id,
    run_command,
    tell_verdict,
)
from harness.cli._target import command_settings, running_target
from harness.config import Settings
from harness.errors import ExitCode
from harness.probe import Deliver, ProbeResult, probe, write_folder
from harness.report import CaseOutcome, CaseResult, Failure, FailureKind, RunFolder, write_junit
from harness.targets import has_virtual_doors, watched_delivery

__all__ = ["command"]

_STYLES = {"confirmed": "green", "refuted": "bold cyan", "broken": "bold red", "not seen": "dim"}


def _assumptions_table(result: ProbeResult, out: Output) -> Table:
    table = Table(
        title=f"assumptions against {out.redactor.text(result.target)}",
        title_justify="left",
        box=box.SIMPLE_HEAD,
        show_edge=False,
    )
    for name in ("assumption", "outcome", "assumed", "seen", "adopt with (\\[assume])"):
        table.add_column(name, no_wrap=name in ("assumption", "outcome"))
    for row in result.rows:
        outcome = row.outcome.value
        table.add_row(
            Text(f"{row.assumption.id} {row.assumption.mark}"),
            Text(outcome, style=_STYLES.get(outcome, "")),
            Text(out.redactor.text(row.assumed)),
            Text(out.redactor.text(row.seen)),
            Text(out.redactor.text(row.adopt)),
        )
    return table


def _operations_table(result: ProbeResult, out: Output) -> Table:
    table = Table(title="reads of the API document", title_justify="left", box=box.SIMPLE_HEAD, show_edge=False)
    table.add_column("operation", no_wrap=True)
    table.add_column("result", no_wrap=True)
    table.add_column("note", ratio=1)
    for operation in result.operations:
        table.add_row(operation.operation, operation.asked.value, Text(out.redactor.text(operation.note)))
    return table


def _cases(result: ProbeResult) -> list[CaseResult]:
    """One JUnit case per assumption: a broken [S] fact fails; a refuted guess or one not seen is skipped,
    saying what was seen (a finding about our guess, never a failure of the target)."""
    cases = []
    for row in result.rows:
        name, outcome = row.assumption.id, row.outcome.value
        if outcome == "broken":
            what = f"assumed {row.assumed}, seen {row.seen}"
            cases.append(CaseResult.failed(name, Failure(FailureKind.PRODUCT, name, what, "ProductDefect")))
        elif outcome == "confirmed":
            cases.append(CaseResult(name, CaseOutcome.PASSED))
        else:
            why = f"refuted: seen {row.seen}; adopt with {row.adopt}" if outcome == "refuted" else outcome
            cases.append(CaseResult(name, CaseOutcome.SKIPPED, reason=why))
    return cases


def _deliver(settings: Settings, out: Output, run_id: str) -> Deliver | None:
    """``--write``'s delivery where the harness can open and close the doors itself: on a virtual
    sandbox (``local``, or a URL serving ``/_sim``); ``None`` on Harbor's targets, whose doors a
    person closes."""
    if not has_virtual_doors(settings):
        return None

    def deliver(transport: httpx.AsyncBaseTransport) -> str:
        return asyncio.run(watched_delivery(settings, transport=transport, redactor=out.redactor, run_id=run_id))

    return deliver


def command(
    context: typer.Context,
    target: TargetOption = None,
    tower: TowerOption = None,
    write: Annotated[
        bool,
        typer.Option(
            "--write",
            help="Also hold a locker a moment and give it back at once (a reservation and a drop-off token, and "
            "a drop-off locker request; each in the cleanup ledger first): a create's status code and the "
            "tokens' and requests' fields are seen only so. On a virtual sandbox also one whole delivery, its "
            "webhooks received: when a locker turns occupied and how webhooks are signed. Production needs the "
            "opt-in.",
        ),
    ] = False,
    config: ConfigOption = None,
    allow_production_writes: ProductionWritesOption = False,
    sim_dialect: SimDialectOption = None,
    reports_dir: ReportsDirOption = None,
    run_id: RunIdOption = None,
    junit_xml: JunitXmlOption = None,
    quiet: QuietOption = False,
    verbose: VerboseOption = False,
) -> None:
    """Ask the target every read of the API document: which assumptions hold, which to adopt."""

    def body(out: Output) -> int:
        settings = command_settings(context)
        if write:  # before anything is started or sent
            settings.check_writes_allowed("probe --write (a locker held a moment, given back at once)")
        with running_target(settings, sim_dialect=sim_dialect or ()) as running:  # refuses a dialect off local
            folder = RunFolder.create(settings.reports_dir, fresh_run_id(settings.reports_dir, run_id))
            out.say(
                f"probe: {running.settings.target.name} ({running.settings.target.api_url}), "
                f"tower {running.settings.tower_id or '-'}, {'writes given back at once' if write else 'read-only'}"
                + (f", dialect(s) {', '.join(sim_dialect)}" if sim_dialect else "")
            )
            deliver = _deliver(running.settings, out, folder.run_id) if write else None
            result = probe(running.settings, write=write, run_id=folder.run_id, deliver=deliver)
        out.print(_assumptions_table(result, out))
        out.print(_operations_table(result, out))
        written = write_folder(
            result, folder.stage_dir("probe"), out.redactor, when=datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
        )
        confirmed = sum(row.outcome.value == "confirmed" for row in result.rows)
        out.say(
            f"{confirmed} confirmed, {len(result.refuted)} refuted, {len(result.broken)} seen facts broken; "
            f"probe folder: {written[0].parent}"
        )
        if result.refuted:
            out.say(f"adopt what was seen: copy {written[1]} into locker-harness.toml")
        if junit_xml is not None:
            write_junit(junit_xml, "probe", _cases(result), redactor=out.redactor)
            out.say(f"JUnit: {junit_xml}")
        code = ExitCode.OK
        if result.broken:
            names = ", ".join(row.assumption.id for row in result.broken)
            out.error(f"the target breaks what Harbor's material shows: {names}")
            code = ExitCode.DEFECT
        tell_verdict(out, "probe", code, run_id=folder.run_id, where=folder.root, refuted=len(result.refuted))
        return code

    run_command(body, "probe", verbose=verbose, quiet=quiet)
