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
from contextlib import AbstractAsyncContextManager, nullcontext
from dataclasses import dataclass
from typing import Annotated

import typer
from rich import box
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from harness.api import AsyncHarborClient
from harness.cli._common import (
    ConfigOption,
    Output,
    ProductionWritesOption,
    QuietOption,
    VerboseOption,
    run_command,
)
from harness.cli._target import command_settings
from harness.config import Credentials, Settings, Target, TargetKind, parse_target
from harness.errors import ExitCode, TargetUnreachable, UsageError
from harness.flow import ControlPlaneOpener, DoorOpener
from harness.ledger import (
    FOREIGN_GRACE_S,
    LEDGER_FILE,
    Ledger,
    LedgerEntry,
    LedgerHolds,
    LockerClaim,
    Outcome,
    Settlement,
    UntrustedRow,
    give_back,
    new_run_id,
    plan,
    row_target,
)
from harness.report import fit_table
from harness.targets import serves_control_plane_async

__all__ = ["command"]

_DEFAULT_TIMEOUT_S = 120.0


@dataclass(frozen=True, slots=True)
class _Group:
    """The lockers one identity holds on one target: one client gives them all back."""

    target: str
    api_url: str | None
    token_url: str | None
    client_id: str
    claims: tuple[LockerClaim, ...]


def _groups(claims: Sequence[LockerClaim]) -> list[_Group]:
    by_key: dict[tuple[str, str, str], list[LockerClaim]] = {}
    for claim in claims:
        by_key.setdefault(claim.key, []).append(claim)
    return [
        _Group(rows[0].target, rows[0].api_url, rows[0].token_url, rows[0].client_id, tuple(rows))
        for rows in by_key.values()
    ]


def _credentials(settings: Settings, client_id: str) -> Credentials | None:
    """The secret the environment holds for ``client_id``, if any."""
    pairs = ((settings.client_id, settings.client_secret), (settings.second_client_id, settings.second_client_secret))
    for known_id, secret in pairs:
        if known_id == client_id and secret is not None:
            return Credentials(client_id, secret)
    return None


def _settled(group: _Group, outcome: Outcome, note: str) -> list[Settlement]:
    return [Settlement(claim, outcome=outcome, note=note) for claim in group.claims]


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


async def _has_doors(settings: Settings) -> bool:
    """Whether the target is a virtual sandbox whose doors ``/_sim`` opens; ``TargetUnreachable`` if silent."""
    target = settings.target
    url = target.api_url
    if url is None or target.kind not in (TargetKind.LOCAL, TargetKind.URL):
        return False
    return await serves_control_plane_async(url, policy=settings.wire_policy())


async def _clean_group(
    group: _Group,
    settings: Settings,
    ledger: Ledger,
    run_id: str,
    progress: _Progress,
    settled: list[Settlement],
    *,
    status_timeout: float,
) -> None:
    """Give back ``group``'s lockers, appending each one's settlement to ``settled`` as it ends (so
    what was done survives a timeout that cancels the rest)."""
    try:
        target = row_target(group.claims[0], settings)
    except UntrustedRow as exc:
        settled += _settled(group, Outcome.UNTRUSTED, f"skipped, not acted on: {exc}")
        return
    target_settings = settings.with_target(target)
    if target.is_production and not settings.allow_production_writes:
        try:
            target_settings.check_writes_allowed("give lockers back")
        except UsageError as exc:
            settled += _settled(group, Outcome.NEEDS_CREDENTIALS, str(exc))
            return
    try:
        virtual = await _has_doors(target_settings)
    except TargetUnreachable as exc:
        if target.kind is TargetKind.LOCAL:
            # The embedded sandbox lived inside the run's process: its lockers ended with it.
            settled += _settled(group, Outcome.GONE, "the embedded sandbox ended with its run")
        else:
            settled += _settled(group, Outcome.FAILED, str(exc))
        return
    credentials = _credentials(settings, group.client_id)
    if credentials is None:
        settled += _settled(
            group,
            Outcome.NEEDS_CREDENTIALS,
            f"held by client {group.client_id!r}: set HARBOR_CLIENT_ID and HARBOR_CLIENT_SECRET to its credentials",
        )
        return
    holds = LedgerHolds(ledger, target_settings, run_id=run_id, client_id=group.client_id)
    assert target.api_url is not None
    doors: AbstractAsyncContextManager[DoorOpener | None] = (
        ControlPlaneOpener(target.api_url, policy=target_settings.wire_policy()) if virtual else nullcontext(None)
    )
    async with (
        doors as opener,
        AsyncHarborClient(target_settings, credentials=credentials, holds=holds) as client,
    ):
        for claim in group.claims:
            progress.working_on(claim)
            done = await give_back(client, opener, claim, status_timeout=status_timeout)
            if done.outcome.done:
                ledger.release(claim.row_ids, f"cleanup {run_id}: {done.outcome.value}")
                holds.returned(claim.locker_id, note=f"cleanup {run_id}: its own pickup")
            settled.append(done)
            progress.done(done)


async def _clean(
    groups: list[_Group], settings: Settings, ledger: Ledger, run_id: str, *, timeout: float, status_timeout: float
) -> list[Settlement]:
    settled: list[Settlement] = []
    total = sum(len(group.claims) for group in groups)
    deadline = time.monotonic() + timeout
    with _Progress(total) as progress:
        for group in groups:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                settled += _settled(group, Outcome.FAILED, f"cleanup ran out of its {timeout:g} s")
                continue
            try:
                async with asyncio.timeout(remaining):
                    await _clean_group(
                        group, settings, ledger, run_id, progress, settled, status_timeout=status_timeout
                    )
            except TimeoutError:
                # The lockers given back before the timeout are in ``settled`` already (their rows
                # released): only the rest ran out.
                seen = {id(s.claim) for s in settled}
                settled += [
                    Settlement(claim, outcome=Outcome.FAILED, note=f"cleanup ran out of its {timeout:g} s")
                    for claim in group.claims
                    if id(claim) not in seen
                ]
    return settled


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


def _exit_code(settled: Sequence[Settlement], live: Sequence[LedgerEntry]) -> int:
    outcomes = {done.outcome for done in settled}
    if outcomes & {Outcome.FAILED, Outcome.NEEDS_TOWER, Outcome.UNTRUSTED}:
        return ExitCode.INFRASTRUCTURE
    if any(not entry.process.local for entry in live):
        return ExitCode.INFRASTRUCTURE  # another host's holds: nobody here can tell they will be given back
    if Outcome.NEEDS_CREDENTIALS in outcomes:
        return ExitCode.USAGE
    return ExitCode.OK


def _matches(entry: LedgerEntry, wanted: Target) -> bool:
    if wanted.kind in (TargetKind.LOCAL, TargetKind.SANDBOX, TargetKind.PRODUCTION):
        return entry.target == wanted.kind.value
    return entry.api_url == wanted.api_url or entry.target == wanted.name


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
            entries = [e for e in ledger.entries(open_only=True) if wanted is None or _matches(e, wanted)]
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
                out.print(fit_table(table, out.console))
                return ExitCode.OK
            if not work.claims:
                if work.live:
                    out.print(fit_table(_table([], work.live, out), out.console))
                out.say("cleanup: nothing left held" + (" by runs that ended" if work.live else ""))
                ledger.prune()
                return _exit_code([], work.live)
            settled = asyncio.run(
                _clean(
                    _groups(work.claims),
                    settings,
                    ledger,
                    new_run_id(),
                    timeout=timeout,
                    status_timeout=settings.status_timeout,
                )
            )
            ledger.prune()
        out.print(fit_table(_table(settled, work.live, out), out.console))
        counts: dict[Outcome, int] = {}
        for done in settled:
            counts[done.outcome] = counts.get(done.outcome, 0) + 1
        told = "cleanup: " + ", ".join(f"{n} {outcome.value}" for outcome, n in counts.items())
        out.say(told)
        code = _exit_code(settled, work.live)
        out.verdict(f"{told}; exit {int(code)}")
        return code

    run_command(body, verbose=verbose, quiet=quiet)
