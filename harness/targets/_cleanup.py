"""Giving back what crashed runs left held, on the targets their ledger rows name: each group of
lockers one identity holds on one target gets one client (and, on a virtual sandbox, its control
plane's doors), and every locker ends with a ``Settlement`` even when time runs out.

The command (``locker-harness cleanup``) chooses the rows and prints; the wiring is here, beside
the other targets' (a row's target is derived through ``harness.ledger.row_target``, which trusts
nothing in the row).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager, nullcontext
from dataclasses import dataclass
from typing import Protocol

from harness.api import AsyncHarborClient
from harness.config import Credentials, Settings, Target, TargetKind
from harness.errors import ExitCode, TargetUnreachable, UsageError
from harness.flow import ControlPlaneOpener, DoorOpener
from harness.ledger import (
    Ledger,
    LedgerEntry,
    LedgerHolds,
    LockerClaim,
    Outcome,
    Settlement,
    UntrustedRow,
    give_back,
    row_target,
)
from harness.targets._probe import serves_control_plane_async

__all__ = ["CleanupProgress", "cleanup_exit_code", "give_back_all", "ledger_row_matches"]


class CleanupProgress(Protocol):
    """Told of each locker as the cleanup takes it up and as it ends (a bar, a log line)."""

    def working_on(self, claim: LockerClaim) -> None: ...

    def done(self, settled: Settlement) -> None: ...


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
    progress: CleanupProgress,
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


async def give_back_all(
    claims: Sequence[LockerClaim],
    settings: Settings,
    ledger: Ledger,
    run_id: str,
    progress: CleanupProgress,
    *,
    timeout: float,
    status_timeout: float,
) -> list[Settlement]:
    """Give back every locker of ``claims`` within ``timeout`` seconds, group by group: one
    ``Settlement`` per locker, those the time did not reach included (failed, saying so)."""
    settled: list[Settlement] = []
    deadline = time.monotonic() + timeout
    for group in _groups(claims):
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            settled += _settled(group, Outcome.FAILED, f"cleanup ran out of its {timeout:g} s")
            continue
        try:
            async with asyncio.timeout(remaining):
                await _clean_group(group, settings, ledger, run_id, progress, settled, status_timeout=status_timeout)
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


def cleanup_exit_code(settled: Sequence[Settlement], live: Sequence[LedgerEntry]) -> int:
    """0 when nothing looked at is left held; 4 when a locker could not be given back (or another
    host's rows wait out their grace); 2 when only an identity's secret was missing."""
    outcomes = {done.outcome for done in settled}
    if outcomes & {Outcome.FAILED, Outcome.NEEDS_TOWER, Outcome.UNTRUSTED}:
        return ExitCode.INFRASTRUCTURE
    if any(not entry.process.local for entry in live):
        return ExitCode.INFRASTRUCTURE  # another host's holds: nobody here can tell they will be given back
    if Outcome.NEEDS_CREDENTIALS in outcomes:
        return ExitCode.USAGE
    return ExitCode.OK


def ledger_row_matches(entry: LedgerEntry, wanted: Target) -> bool:
    """Whether a ledger row was written against ``wanted`` (``cleanup --target``)."""
    if wanted.kind in (TargetKind.LOCAL, TargetKind.SANDBOX, TargetKind.PRODUCTION):
        return entry.target == wanted.kind.value
    return entry.api_url == wanted.api_url or entry.target == wanted.name
