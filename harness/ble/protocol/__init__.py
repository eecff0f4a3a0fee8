"""The Blink protocol, pure: packets, framing, session crypto, identities, error codes. No I/O.

Both the BLE client (``harness.ble``) and the virtual tower (``harness.sim``) use it; it is the
only code they share besides the locker model (whose ``TowerId`` its identities carry). Inferred
byte layouts: :mod:`.assumptions`.
"""

from __future__ import annotations

from . import assumptions
from ._advert import (
    AdvertLayout,
    Sighting,
    Sightings,
    identity_from_scan_record,
    tower_advertisement,
)
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
from ._lockers import DeviceInfo, decode_door_bits, encode_door_bits
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
    "AdvertLayout",
    "BlinkError",
    "DecodeError",
    "DeviceInfo",
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
    "Sighting",
    "Sightings",
    "TowerIdentity",
    "assumptions",
    "chunks",
    "decode_door_bits",
    "decode_map",
    "decode_packet",
    "derive_keys",
    "encode_door_bits",
    "encode_map",
    "encode_packet",
    "error_packet",
    "grant_session",
    "identity_from_scan_record",
    "new_nonce",
    "open_grant",
    "packet_type",
    "raise_for_error",
    "request_session",
    "seal",
    "tower_advertisement",
    "unseal",
]
