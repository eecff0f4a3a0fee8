"""Every byte-layout and behaviour choice of the Blink protocol that is not fully seen, in one place.

Reference 9.1-9.8 says which fields exist and which algorithms protect them; it does not show
every byte, nor every rule a tower keeps. Each constant below is a choice the harness made to
fill such a gap, and each is also an entry of ``ASSUMPTIONS``: an id, the evidence mark of the
reference ([S] seen, [I] inferred, [G] guessed), the value, what was chosen, where it is used,
and what a bench tower would show if it is wrong. The virtual tower follows the same choices, so
the virtual radio cannot tell us whether they are right: **confirm each [I]/[G] one on a bench
tower** (``hw_tests/README.md``, "Confirming the assumptions"). When one turns out wrong, change
it here and nowhere else.

A few [S] facts that the code keys on (offsets, lengths) are registered too, so a reader finds
the whole layout in one list; a test checks that every entry's ``used_by`` files really read it.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Final, TypeVar

__all__ = ["ASSUMPTIONS", "Assumption", "Evidence"]

_T = TypeVar("_T")


class Evidence(enum.StrEnum):
    """The reference's confidence marks (section 0)."""

    SEEN = "S"
    THIRD_PARTY = "S3"
    INFERRED = "I"
    GUESSED = "G"


@dataclass(frozen=True, slots=True)
class Assumption:
    """One registered choice: ``name`` is the module constant that holds ``value``."""

    id: str
    name: str
    evidence: Evidence
    value: object
    chosen: str
    used_by: tuple[str, ...]
    wrong_if: str = ""

    @property
    def mark(self) -> str:
        return f"[{self.evidence.value}]"


_REGISTRY: dict[str, Assumption] = {}

_S, _I, _G = Evidence.SEEN, Evidence.INFERRED, Evidence.GUESSED


def _assume(
    id_: str,
    name: str,
    evidence: Evidence,
    value: _T,
    chosen: str,
    used_by: tuple[str, ...],
    wrong_if: str = "",
) -> _T:
    if id_ in _REGISTRY:
        raise ValueError(f"assumption {id_} registered twice")
    _REGISTRY[id_] = Assumption(id_, name, evidence, value, chosen, used_by, wrong_if)
    return value


_IDENTITY = "harness/ble/protocol/_identity.py"
_ADVERT = "harness/ble/protocol/_advert.py"
_SESSION = "harness/ble/protocol/_session.py"
_CODEC = "harness/ble/protocol/_codec.py"
_CLIENT = "harness/ble/_client.py"
_VIRTUAL = "harness/ble/_virtual.py"
_BLINK = "harness/sim/blink.py"
_FIRMWARE = "harness/sim/firmware.py"
_RADIO = "harness/sim/radio.py"
_LOCKERS = "harness/ble/protocol/_lockers.py"
_OPENER = "harness/ble/_opener.py"
_SETTINGS = "harness/sim/_settings.py"

# -- advertisement and device info (9.1) -------------------------------------------------------

#: Company id of the manufacturer-specific AD structures. [S] does not name it; 0xFFFF is the SIG's
#: "no company / testing" value. The client ignores the id and recognises the data by its length,
#: so a wrong guess here only affects what the virtual tower sends.
MANUFACTURER_COMPANY_ID: Final = _assume(
    "ble.advert.company_id",
    "MANUFACTURER_COMPANY_ID",
    _G,
    0xFFFF,
    "0xFFFF (the SIG's 'no company' id) in both manufacturer AD structures",
    (_ADVERT,),
    "bleak's manufacturer_data shows another key on a bench tower (harmless: the client matches by length)",
)

#: [S] Android reads the raw scan record: firmware = bytes [25,28), tower id = [32,40), name = [40,56).
SCAN_RECORD_FIRMWARE: Final = _assume(
    "ble.scan_record.firmware",
    "SCAN_RECORD_FIRMWARE",
    _S,
    (25, 28),
    "firmware version bytes of the raw scan record, joined with '.'",
    (_ADVERT,),
)
SCAN_RECORD_TOWER_ID: Final = _assume(
    "ble.scan_record.tower_id",
    "SCAN_RECORD_TOWER_ID",
    _S,
    (32, 40),
    "tower id bytes of the raw scan record",
    (_ADVERT,),
)
SCAN_RECORD_NAME: Final = _assume(
    "ble.scan_record.name",
    "SCAN_RECORD_NAME",
    _S,
    (40, 56),
    "tower name bytes of the raw scan record, UTF-8 with NULs stripped",
    (_ADVERT,),
)

#: [I] the AD structures that put those [S] bytes at those [S] offsets of a legacy scan record
#: (advertisement then scan response, as Android concatenates them): the advertisement is flags(3)
#: + the UART service's 128-bit UUID(18) + manufacturer data ``company(2) + firmware(3)`` (7), 28
#: bytes; the scan response is manufacturer data ``company(2) + tower id(8) + name(16)``, 28 bytes.
#: Firmware then lands at 21+4 = 25, the tower id at 28+4 = 32, the name at 40.
ADVERT_SPLIT_LAYOUT: Final = _assume(
    "ble.advert.layout",
    "ADVERT_SPLIT_LAYOUT",
    _I,
    True,
    "legacy ADV_IND: flags + NUS UUID128 + manufacturer(company, firmware); SCAN_RSP: manufacturer(company, id, name)",
    (_ADVERT,),
    "scan finds no tower on a bench, or finds it only with one of the other presentations",
)

#: [S] firmware version: three bytes. [S] tower id 8 bytes + name 16 bytes. [I] a bleak backend may
#: hand the two manufacturer payloads as they are, or one replacing the other (BlueZ and WinRT keep
#: the last per company id), or both concatenated under one company id: the parser accepts all
#: three lengths below and remembers a firmware part seen before the scan response.
ADVERT_FIRMWARE_LEN: Final = _assume(
    "ble.advert.firmware_len", "ADVERT_FIRMWARE_LEN", _S, 3, "3 bytes of firmware version", (_IDENTITY, _ADVERT)
)
ADVERT_IDENTITY_LEN: Final = _assume(
    "ble.advert.identity_len",
    "ADVERT_IDENTITY_LEN",
    _S,
    8 + 16,
    "tower id(8) + name(16) in the scan response's manufacturer data",
    (_IDENTITY, _ADVERT),
)
ADVERT_MERGED_LEN: Final = _assume(
    "ble.advert.merged_len",
    "ADVERT_MERGED_LEN",
    _I,
    ADVERT_FIRMWARE_LEN + ADVERT_IDENTITY_LEN,
    "firmware + id + name concatenated when a backend merges both payloads under one company id",
    (_IDENTITY, _ADVERT),
    "a bench tower's manufacturer_data has other lengths",
)

#: [S] the device-info value is "a 2-byte prefix, then firmware(3) + tower id(8) + name(16)". The
#: prefix's meaning is unknown; we send ``01 01`` (format 1, tower type Harbor=1 [S TowerType]) and
#: ignore it when reading.
DEVICE_INFO_PREFIX: Final = _assume(
    "ble.device_info.prefix",
    "DEVICE_INFO_PREFIX",
    _G,
    b"\x01\x01",
    "01 01 (format 1, tower type Harbor 1); ignored when read",
    (_IDENTITY,),
)

#: Tower names are UTF-8, padded with NULs to 16 bytes [S].
TOWER_NAME_LEN: Final = _assume(
    "ble.tower_name_len", "TOWER_NAME_LEN", _S, 16, "16 bytes, UTF-8, NUL-padded", (_IDENTITY,)
)

# -- transport (9.2) ----------------------------------------------------------------------------

#: ATT write header: a write-without-response carries MTU - 3 bytes [S "max write length"]. A
#: write longer than that is refused by the phone's stack before it reaches the air, and a tower's
#: ATT server drops one that arrives anyway (the Bluetooth Core spec; not a Harbor fact).
ATT_WRITE_OVERHEAD: Final = _assume(
    "ble.att.write_overhead",
    "ATT_WRITE_OVERHEAD",
    _S,
    3,
    "writes and notifications carry at most MTU - 3 bytes",
    (_CODEC, _VIRTUAL, _RADIO),
)

#: [S] the Bluetooth Core spec's bounds of the ATT MTU on LE; [G] a tower grants up to 247 (what
#: iOS and Android ask for), the virtual radio's default.
ATT_MTU_MIN: Final = _assume("ble.att.mtu_min", "ATT_MTU_MIN", _S, 23, "the LE minimum ATT MTU", (_RADIO,))
ATT_MTU_MAX: Final = _assume(
    "ble.att.mtu_max",
    "ATT_MTU_MAX",
    _G,
    247,
    "a tower grants an ATT MTU of up to 247",
    (_RADIO,),
    "a bench run's hw table shows another MTU",
)

#: Only the outer packet carries the CBOR self-describe tag ``D9 D9 F7`` [S]; the inner (encrypted)
#: maps are plain CBOR. Wrong if a bench tower refuses our inner maps with MSG_CBOR_INVALID (108).
INNER_MAP_TAGGED: Final = _assume(
    "ble.inner_map_tagged",
    "INNER_MAP_TAGGED",
    _I,
    False,
    "inner maps are plain CBOR, without the self-describe tag",
    (_SESSION,),
    "a bench tower answers MSG_CBOR_INVALID (108) to in-session commands",
)

# -- session crypto (9.3, 9.4) ------------------------------------------------------------------

#: [I] inner_wrapper = 1 prefix byte + 16-byte IV + AES-128-CTR ciphertext. The prefix's value is
#: not known; 0x01 is read as "format version 1". The reader checks it, so a bench tower using
#: another value shows up at once as a decode failure naming this constant.
WRAPPER_PREFIX: Final = _assume(
    "ble.crypto.wrapper_prefix",
    "WRAPPER_PREFIX",
    _G,
    0x01,
    "inner_wrapper's first byte is 0x01",
    (_SESSION,),
    "session step fails: undecodable reply naming WRAPPER_PREFIX/AUTH_PREFIX",
)
#: [I] inner_auth = 1 prefix byte + HMAC-SHA256(auth key, inner_wrapper) (all 32 bytes, untruncated).
AUTH_PREFIX: Final = _assume(
    "ble.crypto.auth_prefix",
    "AUTH_PREFIX",
    _G,
    0x01,
    "inner_auth's first byte is 0x01",
    (_SESSION,),
    "session step fails: undecodable reply naming WRAPPER_PREFIX/AUTH_PREFIX",
)
IV_LEN: Final = _assume("ble.crypto.iv_len", "IV_LEN", _I, 16, "16-byte AES-CTR IV after the prefix", (_SESSION,))
HMAC_LEN: Final = _assume(
    "ble.crypto.hmac_len", "HMAC_LEN", _I, 32, "the whole 32-byte HMAC-SHA256, untruncated", (_SESSION,)
)

#: [S] HKDF-SHA256, empty salt, IKM = secret || request nonce || grant nonce; info strings and
#: lengths as below. [I] the grant payload is sealed with keys from the *session seed* and the
#: in-session packets with keys from the granted *session key*, each by this same derivation.
HKDF_INFO_AUTH: Final = _assume(
    "ble.crypto.hkdf_info_auth", "HKDF_INFO_AUTH", _S, b"authenticate", "HKDF info of the auth key", (_SESSION,)
)
HKDF_INFO_ENCRYPT: Final = _assume(
    "ble.crypto.hkdf_info_encrypt", "HKDF_INFO_ENCRYPT", _S, b"encrypt", "HKDF info of the cipher key", (_SESSION,)
)
AUTH_KEY_LEN: Final = _assume("ble.crypto.auth_key_len", "AUTH_KEY_LEN", _S, 32, "32-byte auth key", (_SESSION,))
ENCRYPT_KEY_LEN: Final = _assume(
    "ble.crypto.encrypt_key_len", "ENCRYPT_KEY_LEN", _S, 16, "16-byte AES-128 key", (_SESSION,)
)

#: [I] nonces and the session key are 16 random bytes each (the SDK's request nonce is 16 [S]).
NONCE_LEN: Final = _assume("ble.crypto.nonce_len", "NONCE_LEN", _I, 16, "16-byte request and grant nonces", (_SESSION,))
SESSION_KEY_LEN: Final = _assume(
    "ble.crypto.session_key_len", "SESSION_KEY_LEN", _I, 16, "16-byte session key", (_SESSION, _BLINK)
)

#: [I] GRANT_SESSION carries the sealed GRANT_SESSION_PAYLOAD in ``payload`` (9) as
#: prefix + IV + ciphertext and its HMAC in ``payload_auth`` (10) as prefix + HMAC, the same
#: layout as inner_wrapper / inner_auth.
GRANT_SEALED_LIKE_INNER: Final = _assume(
    "ble.crypto.grant_sealed_like_inner",
    "GRANT_SEALED_LIKE_INNER",
    _I,
    True,
    "GRANT_SESSION's payload/payload_auth use the inner wrapper's layout",
    (_SESSION,),
    "the session step fails to open the grant on a bench tower",
)

#: [I] sequence numbers (field 25): each direction counts its own packets from 1 and a receiver
#: accepts only a number greater than the last one it accepted (replays and reordering refused).
#: A tower answers a refused sequence with SESSION_ERROR AUTH_INVALID (201).
SEQUENCE_START: Final = _assume(
    "ble.session.sequence_start",
    "SEQUENCE_START",
    _I,
    1,
    "each direction numbers its packets from 1, strictly increasing",
    (_SESSION,),
    "the second in-session command gets SESSION_ERROR 201 on a bench tower",
)

#: [I] ``packet_timestamp`` (5) is whole seconds since the Unix epoch, on the tower's clock.
TIMESTAMP_UNIT_SECONDS: Final = _assume(
    "ble.packet_timestamp_seconds",
    "TIMESTAMP_UNIT_SECONDS",
    _I,
    True,
    "packet_timestamp is whole Unix seconds",
    (_SESSION,),
    "REQUEST_SESSION is refused MSG_EXPIRED (107) on a bench tower",
)

#: [I] error replies: before a session exists (or when the wrapper itself fails authentication)
#: the tower answers in clear with SESSION_ERROR {1: 3, 2: code, 3: message}; a command refused
#: inside a session comes back encrypted as ERROR {1: 5, 2: code, 3: message, 25: seq}.
CLEAR_SESSION_ERRORS: Final = _assume(
    "ble.session.clear_session_errors",
    "CLEAR_SESSION_ERRORS",
    _I,
    True,
    "session-level refusals in clear (SESSION_ERROR), command refusals encrypted (ERROR)",
    (_SESSION,),
)

# -- commands and sync (9.5-9.7) ----------------------------------------------------------------

#: [I] CHECK_LOCKER_DOOR and REOPEN_LOCKER carry no locker id [S]: they act on the last locker
#: opened in this session; without one the tower answers SYS_LAST_OPEN (504) [S description].
DOOR_COMMANDS_USE_LAST_OPENED: Final = _assume(
    "ble.command.door_commands_use_last_opened",
    "DOOR_COMMANDS_USE_LAST_OPENED",
    _I,
    True,
    "CHECK_LOCKER_DOOR and REOPEN_LOCKER act on the session's last opened locker, else SYS_LAST_OPEN",
    (_BLINK,),
)

#: [I] LOCKER_OPENED's ``locker_id`` (70) is the id the API shows (``Locker.id``), not a door index
#: local to the tower. The client compares it with the token's locker only while this holds; a
#: bench tower reporting small indexes (1..24) means it does not.
LOCKER_OPENED_REPORTS_API_ID: Final = _assume(
    "ble.command.locker_opened_reports_api_id",
    "LOCKER_OPENED_REPORTS_API_ID",
    _I,
    True,
    "LOCKER_OPENED's locker_id is the API's Locker.id",
    (_CLIENT,),
    "the open step reports small door indexes on a bench tower",
)

#: [G] OPEN_LOCKER_WITH_TOKEN carries only payload (9) and payload_auth (10) [S]; the tower opens
#: the locker the token names. To test "a token for another locker" the harness can also send
#: ``locker_id`` (70), the door the phone means, and the virtual tower then refuses a token for
#: any other locker (AUTH_INVALID). Only the rig's wrong-locker test sends it. On a bench tower that
#: ignores the field, that test sees the token's own door open and says so.
OPEN_MAY_NAME_LOCKER: Final = _assume(
    "ble.command.open_may_name_locker",
    "OPEN_MAY_NAME_LOCKER",
    _G,
    True,
    "OPEN_LOCKER_WITH_TOKEN may carry locker_id (70): a token for another locker is refused there",
    (_CLIENT, _BLINK),
    "the wrong-locker rig test sees the token's own door open",
)

#: [G] whether a drop-off token that already opened its locker opens it again while the locker is
#: occupied (a second drop-off). The reference lets a holder get *another* drop-off token for an
#: occupied locker [S]; whether a used one still works is not said. Default: it does (the model's
#: reading, and what a retry after a lost notification relies on); ``SimSettings.single_use_tokens``
#: makes the virtual tower refuse a used token (AUTH_INVALID) to see what a stricter tower does.
DROPOFF_TOKEN_SINGLE_USE: Final = _assume(
    "ble.token.dropoff_single_use",
    "DROPOFF_TOKEN_SINGLE_USE",
    _G,
    False,
    "a used drop-off token may open its occupied locker again; single use is a sandbox setting",
    (_SETTINGS, _FIRMWARE),
    "a bench tower refuses a drop-off token the second time (the retry after a lost reply fails)",
)

#: [I] FIND_AVAILABLE_LOCKERS -> FOUND_LOCKERS' ``locker_type_map`` (78) is {locker type id: count}
#: [S], counting the tower's lockers that are available (not held, in service, door shut) [I],
#: keyed by the API's locker type ids (1 small .. 4 xlarge) [I]; types with none are left out [G].
FOUND_LOCKERS_COUNTS_AVAILABLE: Final = _assume(
    "ble.command.found_lockers_counts_available",
    "FOUND_LOCKERS_COUNTS_AVAILABLE",
    _I,
    True,
    "locker_type_map counts available, in-service, shut lockers per API type id; empty types omitted",
    (_FIRMWARE,),
    "a bench tower's counts disagree with the API's available lockers per type",
)

#: [G] OPEN_AVAILABLE_LOCKER (44): among the tower's lockers that match (type if
#: ``match_locker_type`` >= 0; available or not per ``match_available``; the token the tower keeps
#: for the locker, if ``match_token`` is given), in service and shut, the tower opens the lowest
#: door, stores ``locker_token`` (75) for it and answers LOCKER_OPENED with its id. With
#: ``locker_available`` (73) false the locker stays held for the session's client (rented, then
#: occupied when the door closes); with it true the locker is left available when the door closes
#: (an occupied one is emptied: a pickup). None matching: SYS_LOCKER_NOT_FOUND (502).
OPEN_AVAILABLE_RULES: Final = _assume(
    "ble.command.open_available_rules",
    "OPEN_AVAILABLE_RULES",
    _G,
    "lowest matching door; locker_available false holds it for the session's client; none: 502",
    "which door opens, what the locker becomes, and the refusal when none matches",
    (_FIRMWARE, _BLINK),
    "the OPEN_AVAILABLE_LOCKER rig test sees another door, state or code on a bench tower",
)

#: [S] ALL_LOCKER_DOOR_STATES' ``locker_doors_open`` (79) is a bitfield by logical locker id, 1 =
#: open. [G] the logical id is the door label (the API's ``Locker.name``, "1".."24"); door n is bit
#: (n - 1) % 8 of byte (n - 1) // 8, least significant bit first, one byte per 8 doors.
DOOR_BITFIELD_BY_LABEL: Final = _assume(
    "ble.command.door_bitfield_by_label",
    "DOOR_BITFIELD_BY_LABEL",
    _G,
    True,
    "door label n is bit (n-1)%8 of byte (n-1)//8, LSB first",
    (_LOCKERS, _CLIENT, _OPENER),
    "CHECK_ALL_LOCKER_DOORS on a bench shows the open door at another bit",
)

#: [I] GET_DEVICE_INFO (60) -> DEVICE_INFO (61) carries tower_id (61, 8 bytes), tower_name (60),
#: info_firmware_version (125, "x.y.z"), info_device_model (126), info_tower_serial (138),
#: info_uptime (120, s), info_clock_time (129, Unix s), info_battery_mv (147) and info_locker (133,
#: the number of lockers); field names [S], this selection and the value types [G].
DEVICE_INFO_FIELDS: Final = _assume(
    "ble.command.device_info_fields",
    "DEVICE_INFO_FIELDS",
    _G,
    (61, 60, 125, 126, 138, 120, 129, 147, 133),
    "DEVICE_INFO's fields: id, name, firmware, model, serial, uptime, clock, battery mV, locker count",
    (_LOCKERS, _CLIENT),
    "hw shows fields missing or of other types on a bench tower",
)

#: [I] SYNC_MARK_SEEN_EVENTS' ``sync_event_start`` (31) is the first event id *not* yet seen,
#: i.e. ``start + count`` of the batch just delivered to the server.
MARK_SEEN_IS_NEXT_UNSEEN: Final = _assume(
    "ble.sync.mark_seen_is_next_unseen",
    "MARK_SEEN_IS_NEXT_UNSEEN",
    _I,
    True,
    "SYNC_MARK_SEEN_EVENTS names the first event not yet seen",
    (_CLIENT,),
    "a bench tower hands the last event of a batch again on the next sync",
)

#: [S] events go to the server in batches of 5; [I] one SYNC_PULL answers with at most this many.
SYNC_BATCH_EVENTS: Final = _assume(
    "ble.sync.batch_events", "SYNC_BATCH_EVENTS", _I, 5, "one SYNC_PULL answers at most 5 events", (_BLINK,)
)

#: [I] TERMINATE_SESSION is acknowledged with ACK (0) before the tower forgets the session.
TERMINATE_ACKED: Final = _assume(
    "ble.session.terminate_acked",
    "TERMINATE_ACKED",
    _I,
    True,
    "TERMINATE_SESSION is answered ACK",
    (_CLIENT,),
    "terminate times out on a bench tower",
)

# -- the link (9.2, 9.4) -------------------------------------------------------------------------

#: [S] the SDK disconnects after TERMINATE_SESSION (RN ``sendTerminateSession``: "disconnects
#: afterwards"; its bridge passes ``disconnect = true``): the *phone* ends the link. [G] the tower
#: drops the link itself too once it has sent the ACK, so a phone that lingers is cut off.
TOWER_DISCONNECTS_AFTER_TERMINATE: Final = _assume(
    "ble.link.tower_disconnects_after_terminate",
    "TOWER_DISCONNECTS_AFTER_TERMINATE",
    _G,
    True,
    "after acknowledging TERMINATE_SESSION the tower drops the link (the SDK disconnects anyway [S])",
    (_BLINK, _RADIO, _CLIENT),
    "on a bench the link stays up after TERMINATE_SESSION until the phone leaves",
)

#: [G] a tower drops a link on which nothing was written for this many seconds (a battery device
#: does not keep an idle central). The reference gives no value; the SDK's own waits (20 s reply
#: timeout [S]) fit under it. ``VirtualRadio.configure(idle_timeout=...)`` and the
#: ``ble_idle_timeout`` fault change it.
TOWER_IDLE_TIMEOUT: Final = _assume(
    "ble.link.tower_idle_timeout",
    "TOWER_IDLE_TIMEOUT",
    _G,
    30.0,
    "the tower drops a link idle (no write from the phone) for 30 s",
    (_RADIO,),
    "a bench tower keeps an idle link longer, or drops it sooner (hw with a slow session-token call)",
)


#: Every entry above, by id (read-only).
ASSUMPTIONS: Mapping[str, Assumption] = MappingProxyType(_REGISTRY)
