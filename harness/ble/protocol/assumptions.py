"""Every byte-layout choice of the Blink protocol that is *inferred* [I], not seen, in one place.

Reference 9.1-9.4 says which fields exist and which algorithms protect them; it does not show
every byte. Each constant below is a choice the harness made to fill such a gap. The virtual
tower follows the same choices, so the virtual radio cannot tell us whether they are right:
**confirm each one on a bench tower** (``hw_tests/README.md``, "Confirming the assumptions").
When one turns out wrong, change it here and nowhere else.

Each entry says what is known [S], what was chosen, and what a bench tower would show if the
choice is wrong.
"""

from __future__ import annotations

from typing import Final

# -- advertisement and device info (9.1) -------------------------------------------------------

#: Company id of the manufacturer-specific AD structure. [S] does not name it; 0xFFFF is the SIG's
#: "no company / testing" value. The client ignores the id and recognises the data by its length,
#: so a wrong guess here only affects what the virtual tower sends.
MANUFACTURER_COMPANY_ID: Final = 0xFFFF

#: [S] Android reads firmware = scan-record bytes [25,28), tower id = [32,40), name = [40,56).
#: That fits an advertisement whose manufacturer data is ``company(2) + firmware(3)`` and a scan
#: response whose manufacturer data is ``company(2) + tower id(8) + name(16)``. A bleak backend
#: may hand either part, or both merged under one company id, so the parser accepts all three
#: lengths below. Wrong if a bench tower's ``manufacturer_data`` has other lengths.
ADVERT_FIRMWARE_LEN: Final = 3
ADVERT_IDENTITY_LEN: Final = 8 + 16
ADVERT_MERGED_LEN: Final = ADVERT_FIRMWARE_LEN + ADVERT_IDENTITY_LEN

#: [S] the device-info value is "a 2-byte prefix, then firmware(3) + tower id(8) + name(16)". The
#: prefix's meaning is unknown; we send ``01 01`` (format 1, tower type Harbor=1 [S TowerType]) and
#: ignore it when reading.
DEVICE_INFO_PREFIX: Final = b"\x01\x01"

#: Tower names are UTF-8, padded with NULs to 16 bytes [S].
TOWER_NAME_LEN: Final = 16

# -- transport (9.2) ----------------------------------------------------------------------------

#: ATT write header: a write-without-response carries MTU - 3 bytes [S "max write length"].
ATT_WRITE_OVERHEAD: Final = 3

#: Only the outer packet carries the CBOR self-describe tag ``D9 D9 F7`` [S]; the inner (encrypted)
#: maps are plain CBOR. Wrong if a bench tower refuses our inner maps with MSG_CBOR_INVALID (108).
INNER_MAP_TAGGED: Final = False

# -- session crypto (9.3, 9.4) ------------------------------------------------------------------

#: [I] inner_wrapper = 1 prefix byte + 16-byte IV + AES-128-CTR ciphertext. The prefix's value is
#: not known; 0x01 is read as "format version 1". The reader checks it, so a bench tower using
#: another value shows up at once as a decode failure naming this constant.
WRAPPER_PREFIX: Final = 0x01
#: [I] inner_auth = 1 prefix byte + HMAC-SHA256(auth key, inner_wrapper) (all 32 bytes, untruncated).
AUTH_PREFIX: Final = 0x01
IV_LEN: Final = 16
HMAC_LEN: Final = 32

#: [S] HKDF-SHA256, empty salt, IKM = secret || request nonce || grant nonce; info strings and
#: lengths as below. [I] the grant payload is sealed with keys from the *session seed* and the
#: in-session packets with keys from the granted *session key*, each by this same derivation.
HKDF_INFO_AUTH: Final = b"authenticate"
HKDF_INFO_ENCRYPT: Final = b"encrypt"
AUTH_KEY_LEN: Final = 32
ENCRYPT_KEY_LEN: Final = 16

#: [I] nonces and the session key are 16 random bytes each (the SDK's request nonce is 16 [S]).
NONCE_LEN: Final = 16
SESSION_KEY_LEN: Final = 16

#: [I] GRANT_SESSION carries the sealed GRANT_SESSION_PAYLOAD in ``payload`` (9) as
#: prefix + IV + ciphertext and its HMAC in ``payload_auth`` (10) as prefix + HMAC, the same
#: layout as inner_wrapper / inner_auth.
GRANT_SEALED_LIKE_INNER: Final = True

#: [I] sequence numbers (field 25): each direction counts its own packets from 1 and a receiver
#: accepts only a number greater than the last one it accepted (replays and reordering refused).
#: A tower answers a refused sequence with SESSION_ERROR AUTH_INVALID (201).
SEQUENCE_START: Final = 1

#: [I] ``packet_timestamp`` (5) is whole seconds since the Unix epoch, on the tower's clock.
TIMESTAMP_UNIT_SECONDS: Final = True

#: [I] error replies: before a session exists (or when the wrapper itself fails authentication)
#: the tower answers in clear with SESSION_ERROR {1: 3, 2: code, 3: message}; a command refused
#: inside a session comes back encrypted as ERROR {1: 5, 2: code, 3: message, 25: seq}.
CLEAR_SESSION_ERRORS: Final = True

# -- commands and sync (9.5-9.7) ----------------------------------------------------------------

#: [I] CHECK_LOCKER_DOOR and REOPEN_LOCKER carry no locker id [S]: they act on the last locker
#: opened in this session; without one the tower answers SYS_LAST_OPEN (504) [S description].
DOOR_COMMANDS_USE_LAST_OPENED: Final = True

#: [I] LOCKER_OPENED's ``locker_id`` (70) is the id the API shows (``Locker.id``), not a door index
#: local to the tower. The client compares it with the token's locker only while this holds; a
#: bench tower reporting small indexes (1..24) means it does not.
LOCKER_OPENED_REPORTS_API_ID: Final = True

#: [G] OPEN_LOCKER_WITH_TOKEN carries only payload (9) and payload_auth (10) [S]; the tower opens
#: the locker the token names. To test "a token for another locker" the harness can also send
#: ``locker_id`` (70), the door the phone means, and the virtual tower then refuses a token for
#: any other locker (AUTH_INVALID). Only the rig's wrong-locker test sends it. On a bench tower that
#: ignores the field, that test sees the token's own door open and says so.
OPEN_MAY_NAME_LOCKER: Final = True

#: [I] SYNC_MARK_SEEN_EVENTS' ``sync_event_start`` (31) is the first event id *not* yet seen,
#: i.e. ``start + count`` of the batch just delivered to the server.
MARK_SEEN_IS_NEXT_UNSEEN: Final = True

#: [S] events go to the server in batches of 5; [I] one SYNC_PULL answers with at most this many.
SYNC_BATCH_EVENTS: Final = 5

#: [I] TERMINATE_SESSION is acknowledged with ACK (0) before the tower forgets the session.
TERMINATE_ACKED: Final = True
