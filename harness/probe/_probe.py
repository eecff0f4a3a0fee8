"""The drift probe: ask a target every read of the API document and see which of our guesses hold.

Against any target, read-only by default: each read operation of contracts/harbor-api.yaml is
called once through the API client, which reads tolerantly and records what each answer shows of
the registry's assumptions (``harness.assumptions``). With ``write`` it also makes one
reservation on an available locker and gives it back at once (the cleanup ledger holds its row
first): a create's status code, the reserved status's id and a reservation's ``expires`` are seen
only that way. A read the target refuses or answers otherwise than the document is noted on its
operation's row; only an [S] fact broken makes the probe fail.
"""

from __future__ import annotations

import dataclasses
import enum
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import httpx
import yaml

from harness.api import HarborClient, Location, Locker, Scope
from harness.assumptions import Judged, Outcome, observing, outcomes, record
from harness.config import PROJECT_ROOT, Settings
from harness.errors import HarborAPIError, InfrastructureError, ProductDefect, UsageError
from harness.model import LockerStatus
from harness.probe._exchanges import RecordingTransport, har_document
from harness.redaction import Redactor

__all__ = [
    "DELIVERY",
    "DOCUMENT",
    "READS",
    "Asked",
    "Deliver",
    "OperationResult",
    "ProbeResult",
    "Read",
    "probe",
    "read_operations",
    "suggested_block",
    "table_document",
    "write_folder",
]

#: The API document the probe holds a target to.
DOCUMENT: Final = PROJECT_ROOT / "contracts" / "harbor-api.yaml"
#: POSTs that change nothing on Harbor's side (the wire guard lets them through to production too).
_READ_POSTS: Final = frozenset({"testToken", "authorizeSdkUser"})
#: Operations whose answers are lockers: a shape defect there breaks a seen fact (``locker_fields``).
_LOCKER_READS: Final = frozenset({"listTowerLockers", "getLocker", "listAssignedLockers"})
_PROBE_USER: Final = "locker-harness-probe"
#: Seconds what the probe's write holds is made for: it frees itself soon whatever happens.
_HOLD_S: Final = 60


def read_operations(document: Path = DOCUMENT) -> list[str]:
    """The operationIds of the document's reads: every GET, and the POSTs that only read."""
    raw = yaml.load(document.read_text(encoding="utf-8"), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    found = []
    for item in raw.get("paths", {}).values():
        for method, operation in item.items():
            if not isinstance(operation, dict) or "operationId" not in operation:
                continue
            if method == "get" or operation["operationId"] in _READ_POSTS:
                found.append(str(operation["operationId"]))
    return found


class Asked(enum.StrEnum):
    """How one read went."""

    ANSWERED = "answered as documented"
    DIFFERS = "differs from the document"
    REFUSED = "refused"
    SKIPPED = "not asked"
    UNREACHABLE = "no answer"


@dataclass(frozen=True, slots=True)
class OperationResult:
    operation: str
    asked: Asked
    note: str = ""

    def as_dict(self) -> dict[str, str]:
        return {"operation": self.operation, "result": self.asked.value, "note": self.note}


@dataclass
class _Known:
    """What earlier reads taught later ones: a locker, a location."""

    lockers: list[Locker] = field(default_factory=list)
    locations: list[Location] = field(default_factory=list)


#: One read: what to call with the client and what the probe knows so far; ``None`` = skipped (why).
Read = Callable[[HarborClient, Settings, _Known], str | None]
#: One whole delivery on a virtual sandbox's doors, its webhooks received, every HTTP exchange sent
#: through the transport it is given: what it showed, in a line. Raises as the flow does.
Deliver = Callable[[httpx.AsyncBaseTransport], str]
#: The row of ``--write``'s delivery.
DELIVERY: Final = "delivery (drop-off and pickup doors), webhooks"


def _tower(settings: Settings) -> Any:
    return settings.tower()


def _list_lockers(client: HarborClient, settings: Settings, known: _Known) -> str | None:
    known.lockers = client.list_lockers(_tower(settings))
    return f"{len(known.lockers)} lockers"


def _get_locker(client: HarborClient, settings: Settings, known: _Known) -> str | None:
    if not known.lockers:
        return None
    return f"locker {client.get_locker(_tower(settings), known.lockers[0].id).id}"


def _first_location(known: _Known) -> Location | None:
    return known.locations[0] if known.locations else None


def _get_location(client: HarborClient, settings: Settings, known: _Known) -> str | None:
    first = _first_location(known)
    return None if first is None else f"location {client.get_location(first.id).id}"


def _location_availability(client: HarborClient, settings: Settings, known: _Known) -> str | None:
    first = _first_location(known)
    return None if first is None else f"{client.location_availability(first.id).available} available"


def _closest(client: HarborClient, settings: Settings, known: _Known) -> str | None:
    first = _first_location(known)
    return None if first is None else f"location {client.closest_location(first.lat, first.lon).id}"


def _locations(client: HarborClient, settings: Settings, known: _Known) -> str | None:
    known.locations = client.list_locations()
    return f"{len(known.locations)} locations"


#: operationId -> how the probe asks it; reads after the ones they learn from.
READS: Final[dict[str, Read]] = {
    "testToken": lambda client, settings, known: f"scope {client.token_info().scope}",
    "authorizeSdkUser": lambda client, settings, known: client.authorize_sdk_user(_PROBE_USER).token_type,
    "listTowerLockers": _list_lockers,
    "getLocker": _get_locker,
    "getTowerAvailability": lambda client, settings, known: (
        f"{client.tower_availability(_tower(settings)).available} available"
    ),
    "listAssignedLockers": lambda client, settings, known: f"{len(client.assigned_lockers())} held",
    "listLockerTypes": lambda client, settings, known: f"{len(client.locker_types())} types",
    "listLocations": _locations,
    "getLocation": _get_location,
    "getLocationAvailability": _location_availability,
    "getClosestLocation": _closest,
    "getLockerOpenRequest": lambda client, settings, known: None,  # no request id is known without a write
    "listTowerCommands": lambda client, settings, known: f"{len(client.tower_commands(_tower(settings)))} batches",
    "getTowerConfiguration": lambda client, settings, known: (
        f"{len(client.tower_configuration(_tower(settings)).commands)} commands"
    ),
    "listBleServices": lambda client, settings, known: (
        ", ".join(str(service.uuid).upper() for service in client.ble_services()) or "no services"
    ),
}
_WHY_SKIPPED: Final = {
    "getLocker": "no locker listed",
    "getLocation": "no location listed",
    "getLocationAvailability": "no location listed",
    "getClosestLocation": "no location listed",
    "getLockerOpenRequest": "no request id is known without creating one (--write asks it)",
}


@dataclass
class ProbeResult:
    """What a probe learnt: each assumption's outcome, each read's, the exchanges."""

    target: str
    rows: list[Judged]
    operations: list[OperationResult]
    transport: RecordingTransport
    wrote: list[str] = field(default_factory=list)

    @property
    def broken(self) -> list[Judged]:
        """[S] facts the target does not keep: product defects."""
        return [row for row in self.rows if row.outcome is Outcome.BROKEN]

    @property
    def refuted(self) -> list[Judged]:
        return [row for row in self.rows if row.outcome is Outcome.REFUTED]


def _asked_of(error: ProductDefect | HarborAPIError) -> Asked:
    """How a write that raised went: the answer differs from the document, or the target refused."""
    return Asked.DIFFERS if isinstance(error, ProductDefect) else Asked.REFUSED


def _read_order(operation: str) -> int:
    return list(READS).index(operation) if operation in READS else len(READS)


def _ask(operation: str, read: Read, client: HarborClient, settings: Settings, known: _Known) -> OperationResult:
    try:
        said = read(client, settings, known)
    except ProductDefect as defect:
        if operation in _LOCKER_READS:
            record("locker_fields", False, str(defect))
        return OperationResult(operation, Asked.DIFFERS, str(defect))
    except HarborAPIError as error:
        return OperationResult(operation, Asked.REFUSED, str(error))
    except InfrastructureError as error:
        return OperationResult(operation, Asked.UNREACHABLE, str(error))
    if said is None:
        return OperationResult(operation, Asked.SKIPPED, _WHY_SKIPPED.get(operation, "nothing to ask with"))
    return OperationResult(operation, Asked.ANSWERED, said)


def _write(client: HarborClient, settings: Settings, known: _Known) -> list[OperationResult]:
    """Lockers held for a moment and given back at once, each call in the cleanup ledger first: an
    available locker reserved, then given a drop-off token (its answer shows the token's guesses),
    then released; and a drop-off locker request at the first location, read back by its id
    (``getLockerOpenRequest``), its locker released.

    What is made lasts a minute where the API takes a duration, so even a locker the target would
    not let go of frees itself soon after; ``locker-harness cleanup`` finds anything left.
    """
    return [_hold_and_give_back(client, settings, known), _request_and_give_back(client, settings, known)]


def _hold_and_give_back(client: HarborClient, settings: Settings, known: _Known) -> OperationResult:
    name = "reserveLocker, createDropoffToken"
    free = sorted((lk for lk in known.lockers if lk.status is LockerStatus.AVAILABLE), key=lambda lk: lk.id)
    if not free:
        return OperationResult(name, Asked.SKIPPED, "no available locker to reserve")
    tower, locker = _tower(settings), free[0]
    done: list[str] = []
    asked = Asked.ANSWERED
    try:
        client.reserve(tower, locker.id, _HOLD_S)
        done.append(f"reserved locker {locker.id}")
        token = client.create_dropoff_token(tower, locker.id, _HOLD_S)
        done.append(f"a drop-off token ({token.locker.status.wire_name})")
    except (ProductDefect, HarborAPIError) as error:
        asked = _asked_of(error)
        done.append(str(error))
    done.append(_give_back(client, settings, locker.id))
    return OperationResult(name, asked, "; ".join(done))


def _request_and_give_back(client: HarborClient, settings: Settings, known: _Known) -> OperationResult:
    name = "createDropoffLockerRequest, getLockerOpenRequest"
    location = _first_location(known)
    if location is None:
        return OperationResult(name, Asked.SKIPPED, "no location listed")
    done: list[str] = []
    asked = Asked.ANSWERED
    made = None
    try:
        made = client.create_dropoff_request(location.id, 1, client_info="locker-harness probe")
        done.append(f"a drop-off request at location {location.id} (locker {made.locker_id})")
        read = client.get_open_request(made.id)
        done.append(f"read back: request {read.id}")
    except (ProductDefect, HarborAPIError) as error:
        asked = _asked_of(error)
        done.append(str(error))
    if made is not None:
        done.append(_give_back(client, dataclasses.replace(settings, tower_id=made.tower_id), made.locker_id))
    return OperationResult(name, asked, "; ".join(done))


def _give_back(client: HarborClient, settings: Settings, locker_id: int) -> str:
    """Release until the locker is available (reserved -> available; rented -> declined -> available)."""
    tower = _tower(settings)
    steps = []
    try:
        status = client.get_locker(tower, locker_id).status
        for _ in range(2):
            if status in (LockerStatus.AVAILABLE, LockerStatus.OUT_OF_SERVICE) or not status.is_known:
                break
            status = client.release_locker(tower, locker_id).status
            steps.append(status.wire_name)
    except (HarborAPIError, ProductDefect) as error:
        return f"could not give it back ({error}): `locker-harness cleanup` finds it in the ledger"
    return f"given back: {' -> '.join(steps) or status.wire_name}"


def _delivered(deliver: Deliver | None, recording: RecordingTransport) -> OperationResult:
    """``--write``'s delivery: when a locker turns occupied (``occupied_on``) and how webhooks are
    signed (``webhook_signature_header``) show only when a door opens and a webhook arrives."""
    if deliver is None:
        why = "no virtual doors: a tower's door opens for a person (`locker-harness smoke` shows it on a bench)"
        return OperationResult(DELIVERY, Asked.SKIPPED, why)
    try:
        return OperationResult(DELIVERY, Asked.ANSWERED, deliver(recording))
    except (ProductDefect, HarborAPIError) as error:
        return OperationResult(DELIVERY, _asked_of(error), str(error))
    except InfrastructureError as error:
        return OperationResult(DELIVERY, Asked.UNREACHABLE, str(error))


def probe(
    settings: Settings,
    *,
    write: bool = False,
    transport: httpx.BaseTransport | None = None,
    run_id: str | None = None,
    operations: Sequence[str] | None = None,
    deliver: Deliver | None = None,
) -> ProbeResult:
    """Probe ``settings``' target (bound to a running one): every read, and with ``write`` one
    reservation given back at once, then one delivery through ``deliver`` (a virtual sandbox's doors;
    ``None``: a row saying why not). ``UsageError`` for a write to production without the opt-in
    (before anything is sent) and for credentials refused; ``TargetUnreachable`` when nothing answers."""
    if write:
        settings.check_writes_allowed("probe --write (a locker held a moment, given back at once)")
    from harness.ledger import ledger_holds  # the ledger's SQLite only when something may be held

    recording = RecordingTransport(transport)
    documented = read_operations()
    # In READS' order: a read that needs a locker or a location comes after the one that lists them.
    chosen = list(operations) if operations is not None else sorted(documented, key=_read_order)
    unknown = [name for name in chosen if name not in READS]
    if unknown:
        raise UsageError(f"the probe does not know how to ask {', '.join(unknown)}")
    holds = ledger_holds(settings, run_id=run_id) if write else None
    results: list[OperationResult] = []
    wrote: list[str] = []
    known = _Known()
    with observing() as seen, HarborClient(settings, transport=recording, holds=holds) as client:
        client.authenticate()
        client.authenticate(Scope.TOWER_ACCESS)
        for name in chosen:
            results.append(_ask(name, READS[name], client, settings, known))
        if write:
            written = _write(client, settings, known)
            # A read the writes asked (getLockerOpenRequest, by the id the drop-off request made) is
            # theirs to show: its "not asked, --write asks it" row would contradict them.
            covered = {part for r in written if r.asked is not Asked.SKIPPED for part in r.operation.split(", ")}
            results = [r for r in results if not (r.asked is Asked.SKIPPED and r.operation in covered)]
            written.append(_delivered(deliver, recording))
            results += written
            wrote = [result.note for result in written if result.asked is not Asked.SKIPPED]
    rows = outcomes(seen.entries(), settings.assume)
    return ProbeResult(settings.target.name, rows, results, recording, wrote)


def table_document(result: ProbeResult) -> dict[str, Any]:
    """The probe's findings as JSON-ready data: each assumption's outcome and each read's."""
    return {
        "target": result.target,
        "broken_facts": len(result.broken),
        "refuted": len(result.refuted),
        "assumptions": [row.as_dict() for row in result.rows],
        "operations": [operation.as_dict() for operation in result.operations],
        "wrote": result.wrote,
    }


def write_folder(result: ProbeResult, folder: Path, redactor: Redactor, *, when: str) -> list[Path]:
    """``probe/`` of a run folder: ``assumptions.json``, ``assume.toml`` and ``exchanges.har``, redacted."""
    folder.mkdir(parents=True, exist_ok=True)
    table = folder / "assumptions.json"
    table.write_text(json.dumps(redactor.value(table_document(result)), indent=2) + "\n", encoding="utf-8")
    block = folder / "assume.toml"
    block.write_text(redactor.text(suggested_block(result, when=when)), encoding="utf-8")
    har = folder / "exchanges.har"
    document = har_document(result.transport.exchanges, redactor, comment=f"locker-harness probe of {result.target}")
    har.write_text(json.dumps(document, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    return [table, block, har]


def suggested_block(result: ProbeResult, *, when: str) -> str:
    """The ``[assume]`` block that adopts what the target showed, as a TOML file's text."""
    lines = [
        f"# Suggested by `locker-harness probe` against {result.target} ({when}):",
        "# the values this target showed where they differ from our guesses ([I] inferred, [G] guessed).",
        "# Copy the lines under [assume] of locker-harness.toml ([tool.locker-harness.assume] in pyproject.toml).",
        "[assume]",
    ]
    adopt = [row.adopt for row in result.refuted if row.adopt and "<one of ours>" not in row.adopt]
    advice = [row.adopt for row in result.refuted if "<one of ours>" in row.adopt]
    lines += adopt or ["# nothing to adopt: every guess this probe could see held"]
    lines += [f"# {line}" for line in advice]
    return "\n".join(lines) + "\n"
