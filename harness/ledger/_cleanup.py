"""Giving back what a crashed run left held, locker by locker, along the model's paths.

``plan`` groups the ledger's open rows by the locker they hold and leaves alone the rows of
processes that still run. ``give_back`` looks at one locker and walks it back to available:

- reserved: cancel the reservation (or release the locker);
- rented: release (-> declined), release again (-> available) [S3, G];
- declined: release;
- occupied: it holds the test item. With doors of a virtual sandbox (``/_sim``): a pickup token,
  then the door opened and closed; without (Harbor's sandbox, no tower here): the locker is
  reported as needing a pickup at the tower;
- a door left open: closed first where the doors are virtual, else the same report.

Every step is bounded (``max_actions`` calls per locker, a status timeout per door), and
running it twice is harmless: a locker already available is only marked so.

A row is data someone could have written: ``row_target`` trusts none of its labels. The target
is derived from the row's URLs through the one host parser (``harness.hosts``), and a row whose
label and URLs disagree, or whose token URL would carry the secret somewhere it should not go,
is refused with its reason (``UntrustedRow``), never acted on.

Rows written on another host cannot be checked for a live process: ``plan`` leaves them alone for
``foreign_grace_s`` after their last write, then gives them back like any other (``force``: at once).
"""

from __future__ import annotations

import asyncio
import enum
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Final

from harness.api import AsyncHarborClient, Locker
from harness.config import Settings, Target, TargetKind, parse_target
from harness.errors import Conflict, Forbidden, HarnessError, NotFound, UsageError
from harness.flow import DoorOpener
from harness.hosts import HarborHost, HostError, harbor_host, is_loopback_host, url_host
from harness.ledger._store import LedgerEntry, ProcessStamp
from harness.model import LockerStatus, TowerId

__all__ = [
    "FOREIGN_GRACE_S",
    "LockerClaim",
    "Outcome",
    "Plan",
    "Settlement",
    "UntrustedRow",
    "give_back",
    "plan",
    "row_target",
]

#: Seconds after its last write that a row of another host's run is left alone (its process
#: cannot be looked at from here): longer than any bounded run of the harness.
FOREIGN_GRACE_S: Final = 12 * 3600.0

#: Status changes one locker may need at most: cancel, release, release, pickup (+ door, + slack).
DEFAULT_MAX_ACTIONS = 6
_CLEANUP_CLIENT_INFO = "locker-harness cleanup"
_PICKUP_TOKEN_SECONDS = 300


class Outcome(enum.StrEnum):
    """How one locker ended; ``done`` says whether its ledger rows may be closed."""

    RELEASED = "released"  # held by us, given back now
    NOT_HELD = "not held"  # already available, out of service, or held by another party now
    GONE = "gone"  # the target itself ended with the run (an embedded sandbox)
    IN_USE = "in use"  # its run still runs: left alone
    NEEDS_TOWER = "needs the tower"  # an item inside or a door open, and no doors to reach here
    NEEDS_CREDENTIALS = "needs credentials"  # no secret for the identity that holds it
    UNTRUSTED = "untrusted"  # the row's labels and URLs disagree: skipped, never acted on
    FAILED = "failed"  # could not reach or change it within the bounds

    @property
    def done(self) -> bool:
        return self in (Outcome.RELEASED, Outcome.NOT_HELD, Outcome.GONE)


@dataclass(frozen=True, slots=True)
class LockerClaim:
    """The open ledger rows that concern one locker of one identity on one target."""

    target: str
    api_url: str | None
    token_url: str | None
    client_id: str
    tower_id: TowerId
    locker_id: int
    entries: tuple[LedgerEntry, ...]

    @property
    def key(self) -> tuple[str, str, str]:
        """The (target, API URL, identity) whose client can give this locker back."""
        return (self.target, self.api_url or "", self.client_id)

    @property
    def reservation_ids(self) -> list[int]:
        """Reservations the rows name, newest first."""
        ids = [e.resource_id for e in self.entries if e.kind == "reservation" and e.resource_id is not None]
        return sorted(ids, reverse=True)

    @property
    def row_ids(self) -> list[int]:
        return [entry.id for entry in self.entries]


@dataclass(frozen=True, slots=True)
class Plan:
    """What ``cleanup`` will look at: lockers to give back, rows of live runs (or of another host's
    runs within their grace), rows with no locker."""

    claims: tuple[LockerClaim, ...]
    live: tuple[LedgerEntry, ...]
    unplaced: tuple[LedgerEntry, ...]


def plan(
    entries: Iterable[LedgerEntry],
    *,
    alive: Callable[[ProcessStamp], bool] = ProcessStamp.alive,
    foreign_grace_s: float = FOREIGN_GRACE_S,
    force: bool = False,
    now: float | None = None,
) -> Plan:
    """Group open rows by locker; rows of processes that still run (``alive``) are set aside, untouched.

    A row of another host's process is set aside only while its last write is younger than
    ``foreign_grace_s`` (and never with ``force``): whether that process runs cannot be seen here."""
    moment = time.time() if now is None else now
    grouped: dict[tuple[str, str, str, TowerId, int], list[LedgerEntry]] = {}
    live: list[LedgerEntry] = []
    unplaced: list[LedgerEntry] = []
    for entry in entries:
        if not entry.open:
            continue
        foreign = not entry.process.local
        if foreign and (force or moment - entry.updated_at >= foreign_grace_s):
            pass  # another host's row past its grace: given back like a dead run's
        elif alive(entry.process):
            live.append(entry)
            continue
        if entry.tower_id is None or entry.locker_id is None:
            unplaced.append(entry)  # an open request whose answer never came: the locker is unknown
            continue
        key = (entry.target, entry.api_url or "", entry.client_id, entry.tower_id, entry.locker_id)
        grouped.setdefault(key, []).append(entry)
    claims = tuple(
        LockerClaim(
            target=target,
            api_url=rows[0].api_url,
            token_url=rows[0].token_url,
            client_id=client_id,
            tower_id=tower_id,
            locker_id=locker_id,
            entries=tuple(rows),
        )
        for (target, _, client_id, tower_id, locker_id), rows in sorted(grouped.items())
    )
    # A locker one identity holds under several live rows is left alone even if a dead row names it.
    busy = {(e.target, e.api_url or "", e.client_id, e.locker_id) for e in live if e.locker_id is not None}
    kept = tuple(c for c in claims if (c.target, c.api_url or "", c.client_id, c.locker_id) not in busy)
    live += [entry for claim in claims if claim not in kept for entry in claim.entries]
    return Plan(kept, tuple(live), tuple(unplaced))


class UntrustedRow(UsageError):
    """A ledger row whose labels and URLs disagree, or whose URLs the guards refuse."""


def row_target(claim: LockerClaim, settings: Settings) -> Target:
    """The target ``claim``'s rows were written against, derived from their URLs alone.

    Raises ``UntrustedRow`` (with the reason) when the label disagrees with the URL, when the
    token URL would send the secret to a host the API URL does not vouch for, when plain http to
    another machine is not allowed by ``settings``, or when the token URL is neither the one the
    API URL implies nor the one ``settings`` configure for that API URL."""
    if claim.api_url is None:
        raise UntrustedRow("the row names no API URL")
    try:
        api_host = url_host(claim.api_url)
        token_host = url_host(claim.token_url) if claim.token_url else None
        target = parse_target(claim.api_url, token_url=claim.token_url, source="the row's API URL")
        implied = parse_target(claim.api_url, source="the row's API URL").token_url
    except (HostError, UsageError) as exc:
        raise UntrustedRow(f"its URLs cannot be used: {exc}") from None
    label = claim.target
    if label == TargetKind.LOCAL.value:
        if not is_loopback_host(api_host) or (token_host is not None and token_host != api_host):
            raise UntrustedRow(
                f"labelled local, but its URLs point at {api_host}"
                + (f" and {token_host}" if token_host and token_host != api_host else "")
                + ": an embedded sandbox only ever listens on this machine"
            )
        target = Target.local().running_at(target.api_url or claim.api_url, target.token_url)
    elif "://" in label:
        try:
            named = parse_target(label, source="the row's target")
        except UsageError as exc:
            raise UntrustedRow(f"its target label cannot be used: {exc}") from None
        if named.api_url != target.api_url:
            raise UntrustedRow(f"labelled {label}, but its API URL is on {api_host}")
    elif label in (TargetKind.SANDBOX.value, TargetKind.PRODUCTION.value) and target.kind.value != label:
        raise UntrustedRow(f"labelled {label}, but its API URL is on {api_host} ({target.kind.value})")
    if target.kind in (TargetKind.SANDBOX, TargetKind.PRODUCTION):
        if token_host is None or harbor_host(token_host) is not HarborHost(target.kind.value):
            raise UntrustedRow(
                f"its API URL is Harbor's {target.kind.value} host, but its token URL is on {token_host}: "
                "the client secret would go to a host that is not that environment's"
            )
    elif token_host is not None and harbor_host(token_host) is HarborHost.PRODUCTION:
        raise UntrustedRow(f"its token URL is on Harbor's production host {token_host}, its API URL on {api_host}")
    for what, url in (("API URL", target.api_url), ("token URL", target.token_url)):
        if (
            url is not None
            and url.startswith("http://")
            and not is_loopback_host(url_host(url))
            and not settings.allow_insecure_http
        ):
            raise UntrustedRow(
                f"its {what} {url} is plain http to another machine: the client secret would travel in clear "
                "(set HARBOR_ALLOW_INSECURE_HTTP=1 if that network is yours)"
            )
    # The secret goes only where the row's API URL implies its token endpoint is, or where this
    # configuration says it is for that API: never to a token URL the row alone names.
    configured = settings.target.token_url if settings.target.api_url == target.api_url else None
    if target.token_url not in (implied, configured):
        raise UntrustedRow(
            f"its token URL {target.token_url} is neither the one its API URL implies ({implied}) nor one this "
            "configuration names for that API: the client secret would go where the row alone says"
        )
    return target


@dataclass(slots=True)
class Settlement:
    """What happened to one locker: its status before and after, the calls made, the outcome."""

    claim: LockerClaim
    outcome: Outcome = Outcome.FAILED
    before: LockerStatus | None = None
    after: LockerStatus | None = None
    actions: list[str] = field(default_factory=list)
    note: str = ""


async def give_back(
    client: AsyncHarborClient,
    doors: DoorOpener | None,
    claim: LockerClaim,
    *,
    status_timeout: float = 10.0,
    max_actions: int = DEFAULT_MAX_ACTIONS,
) -> Settlement:
    """Walk one locker back to available along the model's paths; never raises a ``HarnessError``."""
    done = Settlement(claim)
    tower, locker_id = claim.tower_id, claim.locker_id
    reservations = claim.reservation_ids
    try:
        locker = await client.get_locker(tower, locker_id)
        done.before = locker.status
        if doors is not None and locker.status is not LockerStatus.AVAILABLE:
            # A run killed between open and close leaves the door open: close it as a person would
            # (closing a shut door changes nothing).
            await doors.wait_closed(locker, timeout=status_timeout)
            closed = await client.get_locker(tower, locker_id)
            if closed.status is not locker.status:
                done.actions.append(
                    f"closed the door left open: {locker.status.wire_name} -> {closed.status.wire_name}"
                )
            locker = closed
        for _ in range(max_actions):
            status = locker.status
            if status in (LockerStatus.AVAILABLE, LockerStatus.OUT_OF_SERVICE):
                done.outcome = Outcome.RELEASED if done.actions else Outcome.NOT_HELD
                if not done.actions:
                    done.note = f"already {status.wire_name}"
                break
            if status is LockerStatus.OCCUPIED:
                if doors is None:
                    done.outcome = Outcome.NEEDS_TOWER
                    done.note = (
                        f"locker {locker_id} (door {locker.name}) on tower {tower} holds the test item: "
                        "pick it up at the tower (a pickup token over BLE), then run cleanup again"
                    )
                    break
                locker = await _pickup(client, doors, locker, status_timeout, done)
                continue
            if status is LockerStatus.RESERVED and reservations:
                reservation_id = reservations.pop(0)
                try:
                    locker = await client.cancel_reservation(tower, locker_id, reservation_id)
                    done.actions.append(f"cancelled reservation {reservation_id}")
                    continue
                except (NotFound, Conflict, Forbidden):
                    pass  # not that reservation any more: a release decides below
            locker = await client.release_locker(tower, locker_id)
            done.actions.append(f"released: {status.wire_name} -> {locker.status.wire_name}")
        else:
            done.outcome = Outcome.FAILED
            done.note = f"still {locker.status.wire_name} after {max_actions} calls"
        done.after = locker.status
    except Forbidden as exc:
        # Only the holder may act [S]: another party holds it now, so it is not ours to give back.
        done.outcome = Outcome.NOT_HELD
        done.note = f"held by another party now ({exc.detail or 403})"
    except Conflict as exc:
        done.outcome = Outcome.NEEDS_TOWER if doors is None else Outcome.FAILED
        done.note = f"the target refused ({exc.detail or 409}): is its door open? close it at the tower"
    except NotFound as exc:
        done.outcome = Outcome.NOT_HELD
        done.note = f"the target does not know tower {tower} or locker {locker_id} ({exc.detail or 404})"
    except HarnessError as exc:
        done.outcome = Outcome.FAILED
        done.note = str(exc)
    return done


async def _pickup(
    client: AsyncHarborClient, doors: DoorOpener, locker: Locker, status_timeout: float, done: Settlement
) -> Locker:
    """Take the test item out: a pickup token, the door opened with it and closed again."""
    token = await client.create_pickup_token(locker.tower_id, locker.id, _PICKUP_TOKEN_SECONDS, _CLEANUP_CLIENT_INFO)
    await doors.open(locker, token)
    await doors.wait_closed(locker, timeout=status_timeout)
    done.actions.append("picked up the test item (pickup token, door opened and closed)")
    # A tower reports the close when it syncs [I]: give the API a bounded moment to show it.
    deadline = time.monotonic() + status_timeout
    interval = 0.02
    while True:
        after = await client.get_locker(locker.tower_id, locker.id)
        if after.status is not LockerStatus.OCCUPIED or time.monotonic() >= deadline:
            return after
        await asyncio.sleep(min(interval, max(deadline - time.monotonic(), 0.0)))  # a poll interval
        interval = min(interval * 2, 0.5)
