"""Every fact and guess the harness builds on, as data: the REST API, the locker model, webhooks, BLE.

Each entry says how sure we are (the reference's marks: [S] seen in Harbor's own material, [S3]
seen in third-party code that works against Harbor, [I] inferred, [G] guessed), the value we
assume, where the code uses it, what a real target would show if we are wrong, and the
``[assume]`` key that adopts another value.

The marks decide verdicts. A target that breaks an [S] fact is a product defect. A target that
differs from an [I] or [G] entry refutes *our guess*: a finding with the value seen and the line
that adopts it, never a failure of the product.

The BLE entries are ``harness.ble.protocol.assumptions``' own: that module stays the codec's
source of its constants (the codec is shared with the virtual sandbox, which must not import
this registry) and this registry lists them beside the others. They are code constants, read by
the virtual tower too, so they are adopted by changing the constant, not by configuration.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Final

from harness.ble.protocol import assumptions as ble
from harness.ble.protocol.assumptions import Evidence

__all__ = ["ASSUMPTIONS", "Area", "Assumption", "Evidence", "Kind", "assumption"]


class Area(enum.StrEnum):
    """What part of Harbor an entry is about."""

    REST = "rest"
    MODEL = "model"
    WEBHOOKS = "webhooks"
    BLE = "ble"


class Kind(enum.StrEnum):
    """How an ``[assume]`` value is written (and parsed)."""

    STATUS_CODE = "status code"  # an integer 200..299
    BOOLEAN = "boolean"
    CHOICE = "choice"  # one of ``choices``
    HEADER = "header"  # an HTTP header name
    STATUS_IDS = "status ids"  # a table: status -> integer id
    STATUS_NAMES = "status names"  # a table: status -> name as the API spells it
    FIXED = "fixed"  # a fact or a code constant: no configuration key


@dataclass(frozen=True, slots=True)
class Assumption:
    """One registered fact or guess."""

    id: str
    area: Area
    evidence: Evidence
    value: object
    #: The value in words, as the registry page shows it.
    chosen: str
    #: Files that read it (a test checks that each one names the id or its constant).
    used_by: tuple[str, ...]
    #: What a real target (or a bench tower) would show if we are wrong.
    wrong_if: str = ""
    kind: Kind = Kind.FIXED
    choices: tuple[str, ...] = ()
    #: The module constant that holds a BLE entry's value (``harness/ble/protocol/assumptions.py``).
    constant: str = ""

    @property
    def mark(self) -> str:
        return f"[{self.evidence.value}]"

    @property
    def is_fact(self) -> bool:
        """Seen ([S], [S3]): a target that differs breaks a promise (a product defect)."""
        return self.evidence in (Evidence.SEEN, Evidence.THIRD_PARTY)

    @property
    def key(self) -> str | None:
        """The ``[assume]`` key that adopts another value; ``None`` for facts and BLE constants."""
        return None if self.kind is Kind.FIXED else self.id

    @property
    def env(self) -> str | None:
        """The ``HARBOR_ASSUME_*`` variable that adopts another value, where one exists."""
        return None if self.key is None else f"HARBOR_ASSUME_{self.id.upper()}"


_S, _S3, _I, _G = Evidence.SEEN, Evidence.THIRD_PARTY, Evidence.INFERRED, Evidence.GUESSED

_CORE = "harness/api/_core.py"
_MODELS = "harness/api/_models.py"
_OPERATIONS = "harness/api/_operations.py"
_FLOW = "harness/flow.py"
_MODEL = "harness/model.py"
_OBSERVE = "harness/assumptions/_observe.py"
_CHECKS = "contracts/contract_checks.py"
_DOCUMENT = "harness/assumptions/_document.py"
_RECEIVER = "harness/webhooks/_receiver.py"
_EVENTS = "harness/webhooks/_events.py"
_MACHINE = "contracts/contract_machine.py"

#: The statuses whose name and id Harbor's material shows [S].
SEEN_STATUS_NAMES: Final = ("available", "rented", "occupied")

_REST: Final = (
    Assumption(
        "create_status",
        Area.REST,
        _I,
        201,
        "a create (reserve, drop-off and pickup tokens, locker open requests, session token) answers 201",
        (_OPERATIONS, _CORE, _DOCUMENT),
        "creates answer another 2xx, e.g. 200 (FastAPI's default for a POST)",
        Kind.STATUS_CODE,
    ),
    Assumption(
        "status_ids",
        Area.MODEL,
        _G,
        MappingProxyType({"reserved": 2, "rented": 3, "occupied": 4, "declined": 5, "out_of_service": 6}),
        "status.id follows the docs' listing order: reserved 2, rented 3, occupied 4, declined 5, "
        "out_of_service 6 (available 1 is seen)",
        (_MODEL, _OBSERVE, _CHECKS),
        "a locker shows a known status name with another id (e.g. rented with id 13)",
        Kind.STATUS_IDS,
    ),
    Assumption(
        "status_names",
        Area.MODEL,
        _G,
        MappingProxyType({"reserved": "reserved", "declined": "declined", "out_of_service": "out_of_service"}),
        "the statuses not seen by name are spelt reserved [I], declined [I] and out_of_service [G]",
        (_MODEL, _OBSERVE, _CHECKS, _DOCUMENT),
        "a locker shows a status name outside the six (e.g. 'out of service', or one we do not know at all)",
        Kind.STATUS_NAMES,
    ),
    Assumption(
        "token_id_field",
        Area.REST,
        _G,
        True,
        "a drop-off or pickup token's answer carries its id (`id`)",
        (_MODELS, _DOCUMENT),
        "token answers have no `id` (the third-party client reads none)",
        Kind.BOOLEAN,
    ),
    Assumption(
        "request_type_field",
        Area.REST,
        _G,
        True,
        "a locker open request's answer says which it is (`requestType`: dropoff or pickup)",
        (_MODELS, _DOCUMENT),
        "locker open request answers have no `requestType`",
        Kind.BOOLEAN,
    ),
    Assumption(
        "token_type_field",
        Area.REST,
        _I,
        True,
        "the token endpoint's and login/authorize's answers carry `token_type: Bearer`",
        (_CORE, _MODELS, _DOCUMENT),
        "a token answer has no `token_type` (login/authorize's seen answer has only `access_token`)",
        Kind.BOOLEAN,
    ),
    Assumption(
        "expires_offset",
        Area.REST,
        _I,
        True,
        "`expires` is an RFC 3339 time with an offset (`...+00:00` or `Z`)",
        (_MODELS, _CHECKS, _DOCUMENT),
        "`expires` has no offset (`2026-01-01T12:00:00`): read as UTC",
        Kind.BOOLEAN,
    ),
    Assumption(
        "occupied_on",
        Area.MODEL,
        _I,
        "open",
        "REST shows a locker occupied as soon as its drop-off door opens (the token is used), not once it closes",
        (_FLOW, _MACHINE),
        "right after the drop-off open the locker still shows rented, and occupied only after the close "
        "(a tower that reports its door events late looks the same)",
        Kind.CHOICE,
        ("open", "close"),
    ),
    Assumption(
        "webhook_signature_header",
        Area.WEBHOOKS,
        _G,
        "X-Harbor-Signature",
        "a signed webhook carries `X-Harbor-Signature: sha256=<hex HMAC-SHA256 of the body>`",
        (_RECEIVER,),
        "signed deliveries carry the HMAC under another header",
        Kind.HEADER,
    ),
    # -- facts: a target that differs breaks a promise ----------------------------------------------
    Assumption(
        "available_status",
        Area.MODEL,
        _S,
        MappingProxyType({"name": "available", "id": 1}),
        "an available locker shows status {name: available, id: 1}",
        (_OBSERVE,),
        "",
    ),
    Assumption(
        "seen_status_names",
        Area.MODEL,
        _S,
        SEEN_STATUS_NAMES,
        "available, rented and occupied are spelt so (docs, webhooks)",
        (_OBSERVE,),
    ),
    Assumption(
        "locker_fields",
        Area.REST,
        _S,
        ("id", "name", "isLowLocker", "towerId", "status", "type", "accessMode"),
        "a locker carries id, name, isLowLocker, towerId, status {name, id}, type {name, id}, accessMode",
        (_MODELS, _CHECKS),
    ),
    Assumption(
        "token_payload_hex",
        Area.REST,
        _S,
        ("payload", "payload_auth"),
        "a locker token's payload and payload_auth are hex strings the SDK turns into bytes",
        (_MODELS, _CHECKS),
    ),
    Assumption(
        "token_endpoint_answer",
        Area.REST,
        _S,
        ("access_token", "expires_in"),
        "the token endpoint answers {access_token, expires_in, ...} (Keycloak, realm harbor)",
        (_CORE,),
    ),
    Assumption(
        "keycloak_wrong_secret_error",
        Area.REST,
        _S,
        ("invalid_client", "unauthorized_client"),
        "a wrong client secret is refused with invalid_client (401) or, in older Keycloak, unauthorized_client",
        (_CORE,),
    ),
    Assumption(
        "error_detail_shape",
        Area.REST,
        _S,
        "detail",
        'an error answers {"detail": "..."} or FastAPI\'s {"detail": [{loc, msg, type}]}',
        (_CORE,),
    ),
    Assumption(
        "require_low_locker_optional",
        Area.REST,
        _S3,
        False,
        "a drop-off locker request may leave out requireLowLocker (default false)",
        (_OPERATIONS,),
    ),
    Assumption(
        "webhook_envelope",
        Area.WEBHOOKS,
        _S,
        ("timestamp", "event", "data"),
        'a webhook is {"timestamp", "event": "LOCKER_OPERATION", "data": {...}}; LOCKER_TOKEN_CREATED says '
        "rented, LOCKER_TOKEN_USED says occupied",
        (_EVENTS,),
    ),
)


def _ble_entry(entry: ble.Assumption) -> Assumption:
    return Assumption(
        entry.id,
        Area.BLE,
        entry.evidence,
        entry.value,
        entry.chosen,
        entry.used_by,
        entry.wrong_if,
        constant=entry.name,
    )


def _all() -> Mapping[str, Assumption]:
    entries = {entry.id: entry for entry in _REST}
    for entry in ble.ASSUMPTIONS.values():
        if entry.id in entries:
            raise ValueError(f"assumption {entry.id} registered twice")
        entries[entry.id] = _ble_entry(entry)
    return MappingProxyType(entries)


#: Every entry, by id (read-only): REST, the model, webhooks, then BLE.
ASSUMPTIONS: Final[Mapping[str, Assumption]] = _all()


def assumption(id_: str) -> Assumption:
    """The entry ``id_``; ``KeyError`` naming the known ids otherwise."""
    try:
        return ASSUMPTIONS[id_]
    except KeyError:
        raise KeyError(f"no assumption {id_!r}; known: {', '.join(ASSUMPTIONS)}") from None
