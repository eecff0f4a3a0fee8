"""Session crypto of reference 9.3/9.4: key derivation, sealed inner maps, sequence numbers.

Both ends use this module: the client (``harness.ble``) and the virtual tower (``harness.sim``).
Byte layouts that are inferred live in :mod:`.assumptions`; this module only applies them.

Secrets (session seed, session key, derived keys) never appear in a ``repr`` or a message.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, hmac
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from . import assumptions as a
from ._codec import Packet, decode_map, encode_map
from ._errors import DecodeError, FirmwareCode, FirmwareError
from ._tables import Field, PacketType

__all__ = [
    "GrantPayload",
    "SessionChannel",
    "SessionKeys",
    "SessionRequest",
    "derive_keys",
    "error_packet",
    "grant_session",
    "new_nonce",
    "open_grant",
    "raise_for_error",
    "request_session",
    "seal",
    "unseal",
]


@dataclass(frozen=True, slots=True)
class SessionKeys:
    """The two keys one HKDF derivation yields: HMAC-SHA256 (32 B) and AES-128-CTR (16 B)."""

    auth: bytes = field(repr=False)
    encrypt: bytes = field(repr=False)


def new_nonce() -> bytes:
    return os.urandom(a.NONCE_LEN)


def _hkdf(ikm: bytes, info: bytes, length: int) -> bytes:
    # salt=None is HashLen zero bytes, which HMAC treats exactly like the empty salt of [S].
    return HKDF(algorithm=hashes.SHA256(), length=length, salt=None, info=info).derive(ikm)


def derive_keys(secret: bytes, request_nonce: bytes, grant_nonce: bytes) -> SessionKeys:
    """HKDF-SHA256 over ``secret || request nonce || grant nonce`` [S]; the secret is the session
    seed (grant keys) or the granted session key (session keys) [I]."""
    ikm = bytes(secret) + bytes(request_nonce) + bytes(grant_nonce)
    return SessionKeys(
        auth=_hkdf(ikm, a.HKDF_INFO_AUTH, a.AUTH_KEY_LEN),
        encrypt=_hkdf(ikm, a.HKDF_INFO_ENCRYPT, a.ENCRYPT_KEY_LEN),
    )


def _mac(keys: SessionKeys, data: bytes) -> hmac.HMAC:
    mac = hmac.HMAC(keys.auth, hashes.SHA256())
    mac.update(data)
    return mac


def _ctr(keys: SessionKeys, iv: bytes, data: bytes) -> bytes:
    cipher = Cipher(algorithms.AES(keys.encrypt), modes.CTR(iv)).encryptor()
    return cipher.update(data) + cipher.finalize()


def seal(keys: SessionKeys, plaintext: bytes, *, iv: bytes | None = None) -> tuple[bytes, bytes]:
    """``(wrapper, auth)``: prefix + IV + AES-128-CTR(plaintext), and prefix + HMAC(wrapper) [I]."""
    iv = os.urandom(a.IV_LEN) if iv is None else iv
    if len(iv) != a.IV_LEN:
        raise ValueError(f"IV must be {a.IV_LEN} bytes")
    wrapper = bytes([a.WRAPPER_PREFIX]) + iv + _ctr(keys, iv, plaintext)
    return wrapper, bytes([a.AUTH_PREFIX]) + _mac(keys, wrapper).finalize()


def unseal(keys: SessionKeys, wrapper: Any, auth: Any) -> bytes:
    """The plaintext of a sealed item; ``DecodeError`` (with the code a tower answers) if it is not
    well formed or its HMAC does not verify."""
    if not isinstance(wrapper, bytes) or not isinstance(auth, bytes):
        raise DecodeError("sealed item is not bytes", firmware_code=FirmwareCode.MSG_ITEM_TYPE)
    if len(wrapper) < 1 + a.IV_LEN or len(auth) != 1 + a.HMAC_LEN:
        raise DecodeError("sealed item has the wrong length", firmware_code=FirmwareCode.AUTH_SIZE)
    if wrapper[0] != a.WRAPPER_PREFIX or auth[0] != a.AUTH_PREFIX:
        raise DecodeError(
            "sealed item prefix differs from assumptions.WRAPPER_PREFIX/AUTH_PREFIX",
            firmware_code=FirmwareCode.MSG_ITEM_VALUE,
        )
    try:
        _mac(keys, wrapper).verify(auth[1:])
    except InvalidSignature as exc:
        raise DecodeError("HMAC does not verify", firmware_code=FirmwareCode.AUTH_SIGNATURE) from exc
    iv = wrapper[1 : 1 + a.IV_LEN]
    return _ctr(keys, iv, wrapper[1 + a.IV_LEN :])


# -- session establishment (clear packets) ------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SessionRequest:
    """REQUEST_SESSION as the tower reads it: the sealed session token and the phone's nonce."""

    payload: bytes = field(repr=False)
    payload_auth: bytes = field(repr=False)
    nonce: bytes
    timestamp: int

    @classmethod
    def from_packet(cls, packet: Mapping[int, Any]) -> SessionRequest:
        payload = _bytes(packet, Field.PAYLOAD)
        payload_auth = _bytes(packet, Field.PAYLOAD_AUTH)
        nonce = _bytes(packet, Field.SESSION_REQUEST_NONCE)
        if len(nonce) != a.NONCE_LEN:
            raise DecodeError("session_request_nonce has the wrong length", firmware_code=FirmwareCode.MSG_ITEM_LENGTH)
        return cls(payload, payload_auth, nonce, _int(packet, Field.PACKET_TIMESTAMP, default=0))


def request_session(payload: bytes, payload_auth: bytes, *, nonce: bytes, timestamp: int) -> Packet:
    """REQUEST_SESSION {1:1, 5: ts, 20: nonce, 10: payload_auth, 9: payload}, sent in clear [S]; ``ts``
    in whole Unix seconds (``assumptions.TIMESTAMP_UNIT_SECONDS``)."""
    return {
        Field.PACKET_TYPE: PacketType.REQUEST_SESSION,
        Field.PACKET_TIMESTAMP: timestamp,
        Field.SESSION_REQUEST_NONCE: nonce,
        Field.PAYLOAD_AUTH: payload_auth,
        Field.PAYLOAD: payload,
    }


@dataclass(frozen=True, slots=True)
class GrantPayload:
    """GRANT_SESSION_PAYLOAD once opened: what both ends need to run the session."""

    session_id: int
    session_key: bytes = field(repr=False)
    grant_nonce: bytes
    timestamp: int


def grant_session(
    seed: bytes,
    request_nonce: bytes,
    *,
    session_id: int,
    session_key: bytes,
    grant_nonce: bytes,
    timestamp: int,
) -> Packet:
    """GRANT_SESSION {1:2, 5, 21, 10, 9} with the grant payload sealed under the seed's keys [S/I]."""
    keys = derive_keys(seed, request_nonce, grant_nonce)
    inner: Packet = {
        Field.PACKET_TYPE: PacketType.GRANT_SESSION_PAYLOAD,
        Field.SESSION_ID: session_id,
        Field.SESSION_KEY: session_key,
        Field.PACKET_TIMESTAMP: timestamp,
        Field.SESSION_GRANT_NONCE: grant_nonce,
    }
    sealed, auth = seal(keys, encode_map(inner))  # as an inner wrapper (assumptions.GRANT_SEALED_LIKE_INNER)
    return {
        Field.PACKET_TYPE: PacketType.GRANT_SESSION,
        Field.PACKET_TIMESTAMP: timestamp,
        Field.SESSION_GRANT_NONCE: grant_nonce,
        Field.PAYLOAD_AUTH: auth,
        Field.PAYLOAD: sealed,
    }


def open_grant(seed: bytes, request_nonce: bytes, packet: Mapping[int, Any]) -> GrantPayload:
    """The phone's side of GRANT_SESSION: verify, decrypt, check the nonce it echoes."""
    grant_nonce = _bytes(packet, Field.SESSION_GRANT_NONCE)
    keys = derive_keys(seed, request_nonce, grant_nonce)
    inner = decode_map(unseal(keys, packet.get(Field.PAYLOAD), packet.get(Field.PAYLOAD_AUTH)))
    if inner.get(Field.PACKET_TYPE) != PacketType.GRANT_SESSION_PAYLOAD:
        raise DecodeError("grant payload is not GRANT_SESSION_PAYLOAD", firmware_code=FirmwareCode.MSG_INVALID_ID)
    if inner.get(Field.SESSION_GRANT_NONCE) != grant_nonce:
        raise DecodeError("grant payload nonce differs from the packet's", firmware_code=FirmwareCode.AUTH_INVALID)
    session_key = _bytes(inner, Field.SESSION_KEY)
    if len(session_key) != a.SESSION_KEY_LEN:
        raise DecodeError("session_key has the wrong length", firmware_code=FirmwareCode.MSG_ITEM_LENGTH)
    return GrantPayload(
        session_id=_int(inner, Field.SESSION_ID),
        session_key=session_key,
        grant_nonce=grant_nonce,
        timestamp=_int(inner, Field.PACKET_TIMESTAMP, default=0),
    )


# -- in-session packets ---------------------------------------------------------------------------


class SessionChannel:
    """One end of an established session: seals what it sends, opens and orders what it receives.

    Each direction numbers its packets from ``assumptions.SEQUENCE_START``; a packet whose number
    is not greater than the last accepted one is refused (a replay or a reordering) [I].
    """

    def __init__(self, session_id: int, session_key: bytes, request_nonce: bytes, grant_nonce: bytes) -> None:
        self.session_id = session_id
        self._keys = derive_keys(session_key, request_nonce, grant_nonce)
        self.sent = a.SEQUENCE_START - 1
        self.received = a.SEQUENCE_START - 1

    def __repr__(self) -> str:
        return f"SessionChannel(session_id={self.session_id}, sent={self.sent}, received={self.received})"

    def wrap(self, inner: Mapping[int, Any]) -> Packet:
        """The wrapper packet {22: session_id, 7: inner_wrapper, 8: inner_auth} for ``inner``."""
        self.sent += 1
        body = {**inner, Field.SESSION_SEQUENCE: self.sent}
        wrapper, auth = seal(self._keys, encode_map(body))  # untagged CBOR (assumptions.INNER_MAP_TAGGED)
        return {Field.SESSION_ID: self.session_id, Field.INNER_WRAPPER: wrapper, Field.INNER_AUTH: auth}

    def unwrap(self, packet: Mapping[int, Any]) -> Packet:
        """The inner map of a wrapper packet, after checking session id, HMAC and sequence."""
        if packet.get(Field.SESSION_ID) != self.session_id:
            raise DecodeError("packet is for another session", firmware_code=FirmwareCode.AUTH_SESSION_ID)
        inner = decode_map(unseal(self._keys, packet.get(Field.INNER_WRAPPER), packet.get(Field.INNER_AUTH)))
        sequence = inner.get(Field.SESSION_SEQUENCE)
        if not isinstance(sequence, int) or isinstance(sequence, bool):
            raise DecodeError("inner packet has no session_sequence", firmware_code=FirmwareCode.MSG_ITEM_MISSING)
        if sequence <= self.received:
            raise DecodeError(
                f"sequence {sequence} not after {self.received}: replayed or reordered",
                firmware_code=FirmwareCode.AUTH_INVALID,
            )
        self.received = sequence
        if inner.get(Field.PACKET_TYPE) is None:
            raise DecodeError("inner packet has no packet_type", firmware_code=FirmwareCode.MSG_ITEM_MISSING)
        return inner


# -- errors on the wire -------------------------------------------------------------------------


def error_packet(code: int, message: str = "", *, session_level: bool = False) -> Packet:
    """ERROR (5) or SESSION_ERROR (3) with ``error_code`` and an optional message (a tower sends the
    session-level one in clear: ``assumptions.CLEAR_SESSION_ERRORS``)."""
    kind = PacketType.SESSION_ERROR if session_level else PacketType.ERROR
    packet: Packet = {Field.PACKET_TYPE: kind, Field.ERROR_CODE: int(code)}
    if message:
        packet[Field.ERROR_MESSAGE] = message
    return packet


def raise_for_error(packet: Mapping[int, Any], **where: Any) -> None:
    """Raise ``FirmwareError`` if ``packet`` is ERROR or SESSION_ERROR; ``where`` fills phase etc."""
    kind = packet.get(Field.PACKET_TYPE)
    if kind not in (PacketType.ERROR, PacketType.SESSION_ERROR):
        return
    code = packet.get(Field.ERROR_CODE)
    code = code if isinstance(code, int) and not isinstance(code, bool) else FirmwareCode.UNKNOWN
    message = packet.get(Field.ERROR_MESSAGE)
    text = message if isinstance(message, str) and message else "the tower refused the command"
    raise FirmwareError(text, code=code, session_level=kind == PacketType.SESSION_ERROR, **where)


def _bytes(packet: Mapping[int, Any], key: Field) -> bytes:
    value = packet.get(key)
    if value is None:
        raise DecodeError(f"{key.name.lower()} ({int(key)}) is missing", firmware_code=FirmwareCode.MSG_ITEM_MISSING)
    if not isinstance(value, bytes):
        raise DecodeError(f"{key.name.lower()} ({int(key)}) is not bytes", firmware_code=FirmwareCode.MSG_ITEM_TYPE)
    return value


def _int(packet: Mapping[int, Any], key: Field, default: int | None = None) -> int:
    value = packet.get(key, default)
    if value is None:
        raise DecodeError(f"{key.name.lower()} ({int(key)}) is missing", firmware_code=FirmwareCode.MSG_ITEM_MISSING)
    if not isinstance(value, int) or isinstance(value, bool):
        raise DecodeError(
            f"{key.name.lower()} ({int(key)}) is not an integer", firmware_code=FirmwareCode.MSG_ITEM_TYPE
        )
    return value
