"""``locker-harness cleanup``: give back what a crashed run left held, on any target.

Reads the ledger (``.locker-harness/ledger.sqlite``): every reservation and token a run asked
for and never saw given back. Rows of processes that still run are left alone. Each locker is
looked at and walked back to available (cancel, release, release; an occupied locker of a
virtual sandbox: a pickup token and its door opened and closed). The identity that holds a
locker must be one the environment has a secret for (``HARBOR_CLIENT_ID``/``_SECRET`` or the
``HARBOR_SECOND_*`` pair).

Rows are trusted for nothing: each group's target is derived from its URLs through the one host
parser, with the same guards as any run (``harness.ledger.row_target``); a row that does not add
up is shown with its reason and skipped. Rows written on another host are left alone for a grace
after their last write (their process cannot be looked at from here), then given back; ``--force``
gives them back at once.

Exit 0 when nothing it looked at is left held (or nothing was), 4 when a locker could not be
given back (a target unreachable, an item that needs a pickup at a real tower, a row it cannot
trust, another host's rows still within their grace), 2 when an identity's secret or the
production opt-in is missing. Running it again is harmless.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from typing import Annotated

import typer
from rich import box
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from harness.cli._common import (
    ConfigOption,
    Output,
    ProductionWritesOption,
    QuietOption,
    VerboseOption,
    run_command,
)
from harness.cli._target import command_settings
from harness.config import parse_target
from harness.errors import ExitCode
from harness.ledger import (
    FOREIGN_GRACE_S,
    LEDGER_FILE,
    Ledger,
    LedgerEntry,
    LockerClaim,
    Outcome,
    Settlement,
    new_run_id,
    plan,
)
from harness.targets import cleanup_exit_code, give_back_all, ledger_row_matches

__all__ = ["command"]

_DEFAULT_TIMEOUT_S = 120.0


class _Progress:
    """Lockers looked at so far: a bar on a terminal, one line per locker on stderr otherwise (CI logs)."""

    def __init__(self, total: int) -> None:
        self._console = Console(stderr=True, highlight=False)
        self._total = total
        self._count = 0
        self._current = ""
        self._progress = Progress(
            TextColumn("cleanup"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.description}"),
            TimeElapsedColumn(),
            console=self._console,
            transient=True,
            disable=not self._console.is_terminal,
        )
        self._task = self._progress.add_task("", total=total)

    def __enter__(self) -> _Progress:
        self._progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._progress.stop()

    def working_on(self, claim: LockerClaim) -> None:
        self._current = f"locker {claim.locker_id} on {claim.target}"
        self._progress.update(self._task, description=self._current)

    def done(self, settled: Settlement) -> None:
        self._count += 1
        self._progress.advance(self._task)
        if not self._console.is_terminal:
            self._console.print(f"cleanup [{self._count}/{self._total}] {self._current}: {settled.outcome.value}")


def _table(settled: Sequence[Settlement], live: Sequence[LedgerEntry], out: Output, *, title: str = "cleanup") -> Table:
    table = Table(title=title, title_justify="left", box=box.SIMPLE_HEAD)
    for column in ("target", "tower", "locker", "rows", "before", "actions", "after", "outcome"):
        table.add_column(column, overflow="fold")
    for done in settled:
        claim = done.claim
        outcome = (
            done.note
            if done.outcome is Outcome.IN_USE
            else done.outcome.value + (f": {done.note}" if done.note else "")
        )
        table.add_row(
            out.redactor.text(claim.target),
            claim.tower_id,
            str(claim.locker_id),
            str(len(claim.entries)),
            done.before.wire_name if done.before else "-",
            "; ".join(done.actions) or "-",
            done.after.wire_name if done.after else "-",
            out.redactor.text(outcome),
        )
    lockers: dict[tuple[str, int | None], list[LedgerEntry]] = {}
    for entry in live:
        lockers.setdefault((entry.target, entry.locker_id), []).append(entry)
    now = time.time()
    for (target, locker_id), rows in lockers.items():
        table.add_row(
            out.redactor.text(target),
            rows[0].tower_id or "-",
            str(locker_id or "-"),
            str(len(rows)),
            "-",
            "-",
            "-",
            _in_use(rows, now),
        )
    return table


def _in_use(rows: Sequence[LedgerEntry], now: float) -> str:
    """Why rows of a live run are left alone: its pid here, or another host's name and the row's age."""
    foreign = [row for row in rows if not row.process.local]
    if not foreign:
        pids = ", ".join(sorted({str(row.process.pid) for row in rows}))
        return f"{Outcome.IN_USE.value}: its run still runs (pid {pids})"
    hosts = ", ".join(sorted({row.process.host for row in foreign}))
    age = now - max(row.updated_at for row in foreign)
    return (
        f"{Outcome.IN_USE.value}: written on host {hosts} {_age(age)} ago, whose processes cannot be seen from here; "
        f"given back {_age(FOREIGN_GRACE_S)} after its last write, or now with --force"
    )


def _age(seconds: float) -> str:
    seconds = max(seconds, 0.0)
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def command(
    context: typer.Context,
    only_target: Annotated[
        str | None,
        typer.Option(
            "--target",
            "-t",
            help="Only this target's lockers: local, sandbox, production or a URL (default: every target in the "
            "ledger).",
            show_default=False,
        ),
    ] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Show what would be given back; change nothing.")] = False,
    force: Annotated[
        bool,
        typer.Option(
            "--force",
            help="Give back rows written on another host now, without waiting out their grace "
            f"({FOREIGN_GRACE_S / 3600:g} h after their last write). Rows of live runs on this host stay untouched.",
        ),
    ] = False,
    timeout: Annotated[
        float, typer.Option("--timeout", help="Seconds the whole cleanup may take.", min=1.0, max=3600.0)
    ] = _DEFAULT_TIMEOUT_S,
    config: ConfigOption = None,
    allow_production_writes: ProductionWritesOption = False,
    quiet: QuietOption = False,
    verbose: VerboseOption = False,
) -> None:
    """Give back the reservations and tokens a crashed run left held, and show what was done."""

    def body(out: Output) -> int:
        settings = command_settings(context)  # --target is which ledger rows, not where to point: not read here
        wanted = parse_target(only_target) if only_target is not None else None
        path = settings.state_dir / LEDGER_FILE
        if not path.is_file():
            out.say(f"cleanup: no ledger at {path}: nothing was recorded, nothing to give back")
            return ExitCode.OK
        with Ledger(path) as ledger:
            entries = [e for e in ledger.entries(open_only=True) if wanted is None or ledger_row_matches(e, wanted)]
            work = plan(entries, force=force)
            lockers = len(work.claims)
            scope = f" on {out.redactor.text(wanted.name)}" if wanted is not None else ""
            out.say(
                f"cleanup{scope}: {len(entries)} open ledger row(s); {lockers} locker(s) to look at, "
                f"{len(work.live)} row(s) of runs still running left alone"
            )
            if work.unplaced:
                kinds = ", ".join(sorted({entry.kind for entry in work.unplaced}))
                out.say(
                    f"  {len(work.unplaced)} row(s) name no locker ({kinds}): the call never answered; "
                    "check the identity's assigned lockers (GET /api/v1/users/me/assigned-lockers)"
                )
            if dry_run:
                to_do = [Settlement(claim, outcome=Outcome.IN_USE, note="to look at") for claim in work.claims]
                table = _table(to_do, work.live, out, title="cleanup (dry run: nothing changed)")
                out.print(table)
                # Never 0 while the ledger says something is left to give back: a CI step can
                # gate on `cleanup --dry-run` as on a cleanup.
                return ExitCode.INFRASTRUCTURE if work.claims else cleanup_exit_code([], work.live)
            if not work.claims:
                if work.live:
                    out.print(_table([], work.live, out))
                out.say("cleanup: nothing left held" + (" by runs that ended" if work.live else ""))
                ledger.prune()
                return cleanup_exit_code([], work.live)
            with _Progress(len(work.claims)) as progress:
                settled = asyncio.run(
                    give_back_all(
                        work.claims,
                        settings,
                        ledger,
                        new_run_id(),
                        progress,
                        timeout=timeout,
                        status_timeout=settings.status_timeout,
                    )
                )
            ledger.prune()
        out.print(_table(settled, work.live, out))
        counts: dict[Outcome, int] = {}
        for done in settled:
            counts[done.outcome] = counts.get(done.outcome, 0) + 1
        told = "cleanup: " + ", ".join(f"{n} {outcome.value}" for outcome, n in counts.items())
        out.say(told)
        code = cleanup_exit_code(settled, work.live)
        out.verdict(f"{told}; exit {int(code)}")
        return code

    run_command(body, "cleanup", verbose=verbose, quiet=quiet)
