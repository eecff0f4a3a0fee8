"""Harbor's webhook envelope, read; and the check that a delivery's two events arrived as documented.

Reference section 6 [S]: ``{"timestamp": "YYYY-MM-DDTHH:MM:SS", "event": "LOCKER_OPERATION",
"data": {...}}`` with the ``data`` fields below. For a delivery made with a drop-off token the
integrator receives ``LOCKER_TOKEN_CREATED`` (``locker_status: "rented"``) when the token is
issued, then ``LOCKER_TOKEN_USED`` (``"occupied"``) when it opens the door [S]; a ``"rented"`` there
is read as a target that turns the locker occupied on the close (``occupied_on`` [I]), as REST's is.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from harness.assumptions import record
from harness.model import InvalidTowerId, TowerId
from harness.webhooks._receiver import Delivery, WebhookReceiver, canonical_header

__all__ = ["DATA_FIELDS", "DROPOFF_WAIT_S", "WebhookEvent", "check_delivery", "check_dropoff"]

#: Seconds a check waits for a delivery's webhooks after it ends (they come within milliseconds).
DROPOFF_WAIT_S: Final = 10.0

#: The ``data`` fields of a ``LOCKER_OPERATION`` [S], and the JSON types each may have.
DATA_FIELDS: Final[Mapping[str, tuple[type, ...]]] = {
    "timestamp": (str,),
    "locker_id": (int,),
    "locker_status": (str,),
    "tower_id": (str,),
    "source": (str,),
    "reservation_id": (int, type(None)),
    "open_locker_token_id": (int, type(None)),
    "keypad_code": (str, type(None)),
    "client_info": (str, type(None)),
    "locker_open_request_id": (int, type(None)),
    "locker_open_request_payload": (dict, type(None)),
}
#: What a drop-off delivery shows an integrator, in order [S].
DROPOFF_EVENTS: Final = (("LOCKER_TOKEN_CREATED", "rented"), ("LOCKER_TOKEN_USED", "occupied"))
_TOKEN_USED: Final = DROPOFF_EVENTS[1][0]


@dataclass(frozen=True, slots=True)
class WebhookEvent:
    """One ``LOCKER_OPERATION`` as read from its envelope."""

    source: str
    locker_id: int
    locker_status: str
    tower_id: TowerId
    data: Mapping[str, Any]

    @classmethod
    def read(cls, body: Any) -> tuple[WebhookEvent | None, list[str]]:
        """The event, or ``None``, and what about the envelope differs from the documented one."""
        problems = []
        if not isinstance(body, Mapping):
            return None, ["the body is not a JSON object"]
        if body.get("event") != "LOCKER_OPERATION":
            problems.append(f"event is {body.get('event')!r}, not 'LOCKER_OPERATION'")
        stamp = body.get("timestamp")
        if not isinstance(stamp, str) or not _iso(stamp):
            problems.append(f"timestamp {stamp!r} is not YYYY-MM-DDTHH:MM:SS")
        data = body.get("data")
        if not isinstance(data, Mapping):
            return None, [*problems, "data is not an object"]
        for name, kinds in DATA_FIELDS.items():
            if name not in data:
                problems.append(f"data.{name} is missing")
            elif not isinstance(data[name], kinds) or isinstance(data[name], bool):
                problems.append(
                    f"data.{name} is {type(data[name]).__name__}, not {' or '.join(k.__name__ for k in kinds)}"
                )
        if isinstance(data.get("timestamp"), str) and not _iso(data["timestamp"], offset=True):
            problems.append(f"data.timestamp {data['timestamp']!r} is not an ISO time with an offset")
        try:
            tower_id = TowerId(str(data["tower_id"]))
        except InvalidTowerId as error:
            return None, [*problems, f"data.tower_id: {error}"]
        except KeyError:
            return None, problems
        try:
            event = cls(str(data["source"]), int(data["locker_id"]), str(data["locker_status"]), tower_id, data)
        except (KeyError, TypeError, ValueError):
            return None, problems
        return event, problems


def _iso(text: str, *, offset: bool = False) -> bool:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return False
    return moment.tzinfo is not None if offset else True


def check_delivery(
    deliveries: Sequence[Delivery], *, locker_id: int, tower_id: TowerId, signed: bool = False
) -> list[str]:
    """What is wrong with the webhooks a drop-off delivery on ``locker_id`` produced: its
    ``LOCKER_TOKEN_CREATED`` (rented) and ``LOCKER_TOKEN_USED`` (occupied) must each arrive with the
    documented envelope and fields, in that order (``[]``: all as documented). Records the
    observations the deliveries show (``webhook_envelope``, and with ``signed`` the signature's header)."""
    problems: list[str] = []
    ours: list[tuple[WebhookEvent, Delivery]] = []
    for delivery in deliveries:
        if not delivery.accepted:
            continue
        event, shape = WebhookEvent.read(delivery.body)
        if event is None or event.locker_id != locker_id or event.tower_id != tower_id:
            continue
        ours.append((event, delivery))
        record("webhook_envelope", not shape, f"webhook {event.source} of locker {locker_id}")
        problems += [f"{event.source}: {problem}" for problem in shape]
        if signed:
            if delivery.signature_header is not None:
                seen = canonical_header(delivery.signature_header)
                record("webhook_signature_header", seen, f"webhook {event.source} of locker {locker_id}")
            if not delivery.signature_ok:
                problems.append(f"{event.source}: the signature does not match the body (or is missing)")
    sources = [event.source for event, _ in ours]
    position = -1
    for source, status in DROPOFF_EVENTS:
        matches = [index for index, (event, _) in enumerate(ours) if event.source == source]
        if not matches:
            problems.append(f"no {source} for locker {locker_id} arrived (got: {', '.join(sources) or 'none'})")
            continue
        index = matches[0]
        said = ours[index][0].locker_status
        if source == _TOKEN_USED and said in ("occupied", "rented"):
            # When the locker turns occupied is the registry's occupied_on [I]: "rented" here is a target
            # that turns it occupied on the close, a finding about our reading, not a broken promise.
            record("occupied_on", "open" if said == "occupied" else "close", f"webhook {source} of locker {locker_id}")
        elif said != status:
            problems.append(f"{source} says locker_status {said!r}, not {status!r}")
        if index < position:
            problems.append(f"{source} arrived before {DROPOFF_EVENTS[0][0]}")
        position = index
    return problems


def check_dropoff(
    receiver: WebhookReceiver,
    *,
    locker_id: int,
    tower_id: TowerId,
    signed: bool = False,
    timeout: float = DROPOFF_WAIT_S,
) -> list[str]:
    """``check_delivery`` once the drop-off's two events reached ``receiver`` (or ``timeout`` passed)."""
    wanted = {source for source, _ in DROPOFF_EVENTS}

    def both_arrived(events: list[object]) -> bool:
        read = [WebhookEvent.read(body)[0] for body in events]
        return wanted <= {event.source for event in read if event is not None and event.locker_id == locker_id}

    receiver.wait_for(both_arrived, timeout=timeout)
    return check_delivery(receiver.deliveries, locker_id=locker_id, tower_id=tower_id, signed=signed)
