"""The virtual tower's side of the Blink protocol, on top of ``TowerFirmware``. No radio here.

``TowerBlinkServer`` is one per tower (it keeps what outlives a connection: the person who closes
doors; the sync pointer is the firmware's, whose log is trimmed by it). ``BlinkConnection`` is one
per BLE connection: packets in, an ``Outcome`` out (notify these packets, swallow the reply, or
drop the link).

What it answers, in the protocol's words (reference 9.3-9.8, layouts in
``harness.ble.protocol.assumptions``):

- REQUEST_SESSION: a session only for a session token the sandbox minted for *this* tower,
  unexpired (the firmware's checks: AUTH_TOWER_ID, AUTH_SIGNATURE, MSG_EXPIRED), refused in clear
  with SESSION_ERROR; granted with a fresh session id, key and nonce.
- In-session commands: a wrapper that fails authentication, names another session or replays a
  sequence number gets a clear SESSION_ERROR; a refused command gets an encrypted ERROR with the
  firmware's code (AUTH_*, MSG_EXPIRED, SYS_LOCKER_NOT_FOUND, SYS_LAST_OPEN...). Served:
  OPEN_LOCKER_WITH_TOKEN, REOPEN_LOCKER, CHECK_LOCKER_DOOR, FIND_AVAILABLE_LOCKERS,
  OPEN_AVAILABLE_LOCKER, CHECK_ALL_LOCKER_DOORS, GET_DEVICE_INFO, the sync commands,
  ADD_CLIENT_EVENT and TERMINATE_SESSION; anything else is MSG_UNKNOWN (100).
- TERMINATE_SESSION is acknowledged, and then the tower drops the link
  (``assumptions.TOWER_DISCONNECTS_AFTER_TERMINATE``).
- Faults read from the sandbox's fault profile on every in-session command: ``ble_disconnect``
  drops the link before the command reaches the firmware (nothing changes),
  ``ble_supervision_timeout`` loses the command on the air and then the link (nothing changes, and
  nobody says goodbye), ``ble_lost_notification`` runs the command and swallows its reply,
  ``ble_busy`` answers the sync commands SYS_SYNC_BUSY.
"""

from __future__ import annotations

import dataclasses
import enum
import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field

from harness.ble import protocol as blink
from harness.ble.protocol import Field, FirmwareCode, PacketType

from ._faults import Faults
from .firmware import FirmwareRefusal, SessionGrant, TowerFirmware

__all__ = ["BlinkConnection", "Outcome", "OutcomeKind", "TowerBlinkServer"]

log = logging.getLogger(__name__)

#: Claims that may open lockers; ``sync_packet`` alone may only sync [S claim names; I rule].
_OPEN_CLAIMS = frozenset({"locker_pickup", "locker_delivery", "owner", "technician", "developer"})


class OutcomeKind(enum.Enum):
    REPLY = "reply"  # notify the packets
    LOST = "lost"  # the reply is swallowed (fault: lost notification)
    DISCONNECT = "disconnect"  # drop the link without an answer (fault: disconnect mid-command)
    LINK_LOST = "link_lost"  # the link goes silent, then is lost (fault: supervision timeout)


@dataclass(frozen=True, slots=True)
class Outcome:
    kind: OutcomeKind
    packets: tuple[bytes, ...] = ()
    #: REPLY: drop the link once the packets are sent (after TERMINATE_SESSION).
    hang_up: bool = False
    #: LINK_LOST: seconds of silence before both ends give the link up.
    after: float = 0.0

    @classmethod
    def reply(cls, *packets: blink.Packet) -> Outcome:
        return cls(OutcomeKind.REPLY, tuple(blink.encode_packet(p) for p in packets))


_DISCONNECT = Outcome(OutcomeKind.DISCONNECT)


class TowerBlinkServer:
    """One tower's Blink endpoint: makes connections, calls the person."""

    def __init__(
        self,
        firmware: TowerFirmware,
        faults: Faults,
        *,
        clock: Callable[[], float],
        on_opened: Callable[[int], None] = lambda _locker: None,
    ) -> None:
        self.firmware = firmware
        self.faults = faults
        self.clock = clock
        #: Called with the locker id each time a door opens (the person walks up to it).
        self.on_opened = on_opened

    def __repr__(self) -> str:
        return f"TowerBlinkServer({self.firmware.tower_id})"

    def connection(self) -> BlinkConnection:
        return BlinkConnection(self)

    def timestamp(self) -> int:
        return int(self.clock())


@dataclass(slots=True)
class BlinkConnection:
    """The session state of one BLE connection."""

    server: TowerBlinkServer
    channel: blink.SessionChannel | None = None
    grant: SessionGrant | None = field(default=None, repr=False)
    last_opened: int | None = None
    _last_token: tuple[bytes, bytes] | None = field(default=None, repr=False)
    #: The last locker was opened at the tower (OPEN_AVAILABLE_LOCKER) with this ``leave_available``.
    _last_at_tower: bool | None = None

    def handle(self, raw: bytes) -> Outcome:
        """One complete packet from the phone; what to do in return."""
        try:
            packet = blink.decode_packet(raw)
        except blink.DecodeError as exc:
            return Outcome.reply(blink.error_packet(exc.firmware_code, exc.message, session_level=True))
        if packet.get(Field.PACKET_TYPE) == PacketType.REQUEST_SESSION:
            return self._request_session(packet)
        if Field.INNER_WRAPPER not in packet:
            return Outcome.reply(blink.error_packet(FirmwareCode.AUTH_NO_SESSION, "no session", session_level=True))
        return self._in_session(packet)

    # -- session ----------------------------------------------------------------------------------

    def _request_session(self, packet: blink.Packet) -> Outcome:
        server = self.server
        try:
            request = blink.SessionRequest.from_packet(packet)
            grant = server.firmware.verify_session_request(request.payload, request.payload_auth)
        except blink.DecodeError as exc:
            return Outcome.reply(blink.error_packet(exc.firmware_code, exc.message, session_level=True))
        except FirmwareRefusal as refusal:
            return Outcome.reply(blink.error_packet(refusal.code, refusal.detail, session_level=True))
        session_id = secrets.randbits(31) or 1
        session_key = secrets.token_bytes(blink.assumptions.SESSION_KEY_LEN)
        grant_nonce = blink.new_nonce()
        self.channel = blink.SessionChannel(session_id, session_key, request.nonce, grant_nonce)
        self.grant = grant
        self.last_opened = None
        self._last_token = None
        self._last_at_tower = None
        return Outcome.reply(
            blink.grant_session(
                grant.seed,
                request.nonce,
                session_id=session_id,
                session_key=session_key,
                grant_nonce=grant_nonce,
                timestamp=server.timestamp(),
            )
        )

    def _in_session(self, packet: blink.Packet) -> Outcome:
        channel = self.channel
        if channel is None:
            return Outcome.reply(blink.error_packet(FirmwareCode.AUTH_NO_SESSION, "no session", session_level=True))
        try:
            inner = channel.unwrap(packet)
        except blink.DecodeError as exc:
            return Outcome.reply(blink.error_packet(exc.firmware_code, exc.message, session_level=True))
        faults = self.server.faults
        if faults.ble("ble_disconnect"):
            log.info("fault ble_disconnect: dropping the link before %s", inner.get(Field.PACKET_TYPE))
            return _DISCONNECT
        if faults.ble("ble_supervision_timeout"):
            after = faults.supervision_timeout()
            log.info(
                "fault ble_supervision_timeout: %s lost on the air, link lost in %.3f s",
                inner.get(Field.PACKET_TYPE),
                after,
            )
            return Outcome(OutcomeKind.LINK_LOST, after=after)
        kind = inner.get(Field.PACKET_TYPE)
        if self.grant is not None and self.server.clock() >= self.grant.expires_at:
            answer = blink.error_packet(FirmwareCode.MSG_EXPIRED, "the session has expired")
            self.channel = None
        else:
            answer = self._command(kind, inner)
        reply = Outcome.reply(channel.wrap(answer))
        if kind == PacketType.TERMINATE_SESSION:
            self.channel = None
            self.grant = None
            if blink.assumptions.TOWER_DISCONNECTS_AFTER_TERMINATE and answer.get(Field.PACKET_TYPE) == PacketType.ACK:
                reply = dataclasses.replace(reply, hang_up=True)
        if faults.ble("ble_lost_notification"):
            log.info("fault ble_lost_notification: the reply to %s is swallowed", kind)
            return Outcome(OutcomeKind.LOST)
        return reply

    # -- commands ---------------------------------------------------------------------------------

    def _command(self, kind: object, inner: blink.Packet) -> blink.Packet:
        try:
            match kind:
                case PacketType.OPEN_LOCKER_WITH_TOKEN:
                    return self._open(inner)
                case PacketType.REOPEN_LOCKER:
                    return self._reopen()
                case PacketType.CHECK_LOCKER_DOOR:
                    locker_id = self._require_last_opened()
                    is_open = self.server.firmware.door_open(locker_id)
                    return {
                        Field.PACKET_TYPE: PacketType.LOCKER_DOOR_STATE,
                        Field.LOCKER_DOOR_OPEN: is_open,
                        Field.LOCKER_ID: locker_id,
                    }
                case PacketType.FIND_AVAILABLE_LOCKERS:
                    self._require_claims(_OPEN_CLAIMS, "find lockers")
                    counts = self.server.firmware.available_by_type()
                    return {Field.PACKET_TYPE: PacketType.FOUND_LOCKERS, Field.LOCKER_TYPE_MAP: counts}
                case PacketType.OPEN_AVAILABLE_LOCKER:
                    return self._open_available(inner)
                case PacketType.CHECK_ALL_LOCKER_DOORS:
                    doors = self.server.firmware.doors_open()
                    return {Field.PACKET_TYPE: PacketType.ALL_LOCKER_DOOR_STATES, Field.LOCKER_DOORS_OPEN: doors}
                case PacketType.GET_DEVICE_INFO:
                    return self.server.firmware.device_info().to_packet()
                case PacketType.REQUEST_SYNC_STATUS:
                    self._refuse_if_busy()
                    start, count = self.server.firmware.sync_status()
                    return {
                        Field.PACKET_TYPE: PacketType.SYNC_STATUS,
                        Field.SYNC_EVENT_START: start,
                        Field.SYNC_EVENT_COUNT: count,
                        Field.SYNC_COMMAND_START: 0,
                    }
                case PacketType.SYNC_PULL:
                    self._refuse_if_busy()
                    start = _int_field(inner, Field.SYNC_EVENT_START)
                    batch = self.server.firmware.event_batch(start, blink.assumptions.SYNC_BATCH_EVENTS)
                    return {
                        Field.PACKET_TYPE: PacketType.SYNC_EVENTS,
                        Field.SYNC_EVENT_START: batch.start,
                        Field.SYNC_EVENT_COUNT: batch.count,
                        Field.PAYLOAD: batch.payload,
                        Field.PAYLOAD_AUTH: batch.payload_auth,
                    }
                case PacketType.SYNC_MARK_SEEN_EVENTS:
                    self.server.firmware.mark_seen(_int_field(inner, Field.SYNC_EVENT_START))
                    return {Field.PACKET_TYPE: PacketType.ACK}
                case PacketType.ADD_CLIENT_EVENT:
                    info = inner.get(Field.CLIENT_INFO, "")
                    text = info.decode("utf-8", "replace") if isinstance(info, bytes) else str(info)
                    self.server.firmware.add_client_event(text)
                    return {Field.PACKET_TYPE: PacketType.ACK}
                case PacketType.TERMINATE_SESSION:
                    code = inner.get(Field.ERROR_CODE, 0)
                    if code and not inner.get(Field.ERROR_MESSAGE):
                        raise FirmwareRefusal(FirmwareCode.MSG_ITEM_MISSING, "a non-zero code needs a message")
                    return {Field.PACKET_TYPE: PacketType.ACK}
                case _:
                    raise FirmwareRefusal(FirmwareCode.MSG_UNKNOWN, f"packet type {kind} is not served here")
        except FirmwareRefusal as refusal:
            return blink.error_packet(refusal.code, refusal.detail)

    def _require_claims(self, claims: frozenset[str], what: str) -> None:
        if self.grant is not None and not claims & set(self.grant.permissions):
            raise FirmwareRefusal(FirmwareCode.AUTH_PERMISSIONS, f"this session may not {what}")

    def _open(self, inner: blink.Packet) -> blink.Packet:
        self._require_claims(_OPEN_CLAIMS, "open lockers")
        payload = inner.get(Field.PAYLOAD)
        payload_auth = inner.get(Field.PAYLOAD_AUTH)
        if not isinstance(payload, bytes) or not isinstance(payload_auth, bytes):
            raise FirmwareRefusal(FirmwareCode.MSG_ITEM_MISSING, "payload and payload_auth are required bytes")
        at_locker = inner.get(Field.LOCKER_ID)  # the door the phone means (assumptions.OPEN_MAY_NAME_LOCKER)
        if at_locker is not None and (not isinstance(at_locker, int) or isinstance(at_locker, bool)):
            raise FirmwareRefusal(FirmwareCode.MSG_ITEM_TYPE, "locker_id must be an integer")
        locker_id = self.server.firmware.open_with_token(payload, payload_auth, at_locker=at_locker)
        self.last_opened = locker_id
        self._last_token = (payload, payload_auth)
        self._last_at_tower = None
        self.server.on_opened(locker_id)
        return {Field.PACKET_TYPE: PacketType.LOCKER_OPENED, Field.LOCKER_ID: locker_id}

    def _open_available(self, inner: blink.Packet) -> blink.Packet:
        """OPEN_AVAILABLE_LOCKER (fields of reference 9.6's table; rules in ``assumptions.OPEN_AVAILABLE_RULES``)."""
        self._require_claims(_OPEN_CLAIMS, "open lockers")
        locker_type = inner.get(Field.MATCH_LOCKER_TYPE)  # omitted by the SDK when < 0 [S]
        if locker_type is not None and not _is_int(locker_type):
            raise FirmwareRefusal(FirmwareCode.MSG_ITEM_TYPE, "match_locker_type must be an integer")
        match_token = inner.get(Field.MATCH_TOKEN)
        if match_token is not None and not isinstance(match_token, bytes):
            raise FirmwareRefusal(FirmwareCode.MSG_ITEM_TYPE, "match_token must be bytes")
        locker_token = inner.get(Field.LOCKER_TOKEN, b"")
        if not isinstance(locker_token, bytes):
            raise FirmwareRefusal(FirmwareCode.MSG_ITEM_TYPE, "locker_token must be bytes")
        client_info = inner.get(Field.CLIENT_INFO, b"")
        text = client_info.decode("utf-8", "replace") if isinstance(client_info, bytes) else str(client_info)
        actor = self.grant.client_id if self.grant is not None else ""
        leave_available = _bool_field(inner, Field.LOCKER_AVAILABLE)
        locker_id = self.server.firmware.open_available(
            actor,
            locker_type=locker_type,
            match_available=_bool_field(inner, Field.MATCH_AVAILABLE),
            match_token=match_token or None,
            locker_token=locker_token,
            leave_available=leave_available,
            client_info=text,
        )
        self.last_opened = locker_id
        self._last_token = None
        self._last_at_tower = leave_available
        self.server.on_opened(locker_id)
        return {Field.PACKET_TYPE: PacketType.LOCKER_OPENED, Field.LOCKER_ID: locker_id}

    def _reopen(self) -> blink.Packet:
        locker_id = self._require_last_opened()
        firmware = self.server.firmware
        if not firmware.door_open(locker_id):
            if self._last_token is not None:
                # The tower re-checks the token it opened with: after a pickup the locker has moved on.
                firmware.open_with_token(*self._last_token, at_locker=locker_id, reopening=True)
            else:
                assert self._last_at_tower is not None
                actor = self.grant.client_id if self.grant is not None else ""
                firmware.open_at_tower(locker_id, actor, leave_available=self._last_at_tower)
            self.server.on_opened(locker_id)
        return {Field.PACKET_TYPE: PacketType.LOCKER_OPENED, Field.LOCKER_ID: locker_id}

    def _require_last_opened(self) -> int:
        # CHECK_LOCKER_DOOR and REOPEN_LOCKER act on it (assumptions.DOOR_COMMANDS_USE_LAST_OPENED).
        if self.last_opened is None:
            raise FirmwareRefusal(FirmwareCode.SYS_LAST_OPEN, "no locker was opened in this session")
        return self.last_opened

    def _refuse_if_busy(self) -> None:
        if self.server.faults.ble("ble_busy"):
            raise FirmwareRefusal(FirmwareCode.SYS_SYNC_BUSY, "the tower is busy; sync again later")


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _int_field(inner: blink.Packet, key: Field) -> int:
    value = inner.get(key)
    if not isinstance(value, int) or isinstance(value, bool):
        raise FirmwareRefusal(FirmwareCode.MSG_ITEM_MISSING, f"{key.name.lower()} is required")
    return value


def _bool_field(inner: blink.Packet, key: Field) -> bool:
    value = inner.get(key)
    if value is None:
        raise FirmwareRefusal(FirmwareCode.MSG_ITEM_MISSING, f"{key.name.lower()} is required")
    if not isinstance(value, bool):
        raise FirmwareRefusal(FirmwareCode.MSG_ITEM_TYPE, f"{key.name.lower()} must be a boolean")
    return value
