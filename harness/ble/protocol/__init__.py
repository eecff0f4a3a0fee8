"""The Blink protocol, pure: packets, framing, session crypto, identities, error codes. No I/O.

Both the BLE client (``harness.ble``) and the virtual tower (``harness.sim``) use it; it is the
only code they share besides the locker model (whose ``TowerId`` its identities carry). Inferred
byte layouts: :mod:`.assumptions`.
"""

from __future__ import annotations

from . import assumptions
from ._codec import (
    SELF_DESCRIBE_TAG,
    Packet,
    Reassembler,
    chunks,
    decode_map,
    decode_packet,
    encode_map,
    encode_packet,
    packet_type,
)
from ._errors import BlinkError, DecodeError, FirmwareCode, FirmwareError, SdkCode, SdkError
from ._identity import TowerIdentity
from ._session import (
    GrantPayload,
    SessionChannel,
    SessionKeys,
    SessionRequest,
    derive_keys,
    error_packet,
    grant_session,
    new_nonce,
    open_grant,
    raise_for_error,
    request_session,
    seal,
    unseal,
)
from ._tables import DEVICE_INFO_UUID, DFU_SERVICE_UUID, NUS_SERVICE_UUID, RX_UUID, TX_UUID, Field, PacketType

__all__ = [
    "DEVICE_INFO_UUID",
    "DFU_SERVICE_UUID",
    "NUS_SERVICE_UUID",
    "RX_UUID",
    "SELF_DESCRIBE_TAG",
    "TX_UUID",
    "BlinkError",
    "DecodeError",
    "Field",
    "FirmwareCode",
    "FirmwareError",
    "GrantPayload",
    "Packet",
    "PacketType",
    "Reassembler",
    "SdkCode",
    "SdkError",
    "SessionChannel",
    "SessionKeys",
    "SessionRequest",
    "TowerIdentity",
    "assumptions",
    "chunks",
    "decode_map",
    "decode_packet",
    "derive_keys",
    "encode_map",
    "encode_packet",
    "error_packet",
    "grant_session",
    "new_nonce",
    "open_grant",
    "packet_type",
    "raise_for_error",
    "request_session",
    "seal",
    "unseal",
]
