"""Blink packets on the wire: CBOR maps with small-integer keys behind the self-describe tag (9.2).

``encode_packet`` / ``decode_packet`` turn one packet map into bytes and back; ``chunks`` cuts a
request into writes of the negotiated MTU; ``Reassembler`` collects notifications until they hold
one complete CBOR item.
"""

from __future__ import annotations

import io
from collections.abc import Iterator, Mapping
from typing import Any

import cbor2

from . import assumptions
from ._errors import DecodeError, FirmwareCode
from ._tables import Field, PacketType

__all__ = [
    "SELF_DESCRIBE_TAG",
    "Packet",
    "Reassembler",
    "chunks",
    "decode_map",
    "decode_packet",
    "encode_map",
    "encode_packet",
    "packet_type",
]

#: CBOR tag 55799 ("self-described CBOR") as it is written on the wire [S].
SELF_DESCRIBE_TAG = b"\xd9\xd9\xf7"

#: One Blink packet: field key -> value (ints, bytes, text, bools, nested maps).
Packet = dict[int, Any]


def encode_map(packet: Mapping[int, Any]) -> bytes:
    """Plain CBOR of a packet map (the inner, encrypted maps carry no tag)."""
    try:
        return cbor2.dumps({int(key): value for key, value in packet.items()})
    except (cbor2.CBOREncodeError, TypeError, ValueError) as exc:
        raise DecodeError(f"cannot encode packet: {exc}", firmware_code=FirmwareCode.MSG_ITEM_TYPE) from exc


def encode_packet(packet: Mapping[int, Any]) -> bytes:
    """The bytes written to RX: the self-describe tag, then the CBOR map."""
    return SELF_DESCRIBE_TAG + encode_map(packet)


def _as_packet(item: Any) -> Packet:
    if not isinstance(item, Mapping):
        raise DecodeError(f"a Blink packet is a CBOR map, not {type(item).__name__}")
    packet: Packet = {}
    for key, value in item.items():
        if not isinstance(key, int) or isinstance(key, bool):
            raise DecodeError(f"packet key {key!r} is not an integer", firmware_code=FirmwareCode.MSG_ITEM_TYPE)
        packet[key] = value
    return packet


def decode_map(data: bytes) -> Packet:
    """A packet map from CBOR bytes, with or without the self-describe tag."""
    try:
        item = cbor2.loads(data)  # cbor2 strips tag 55799 itself
    except (cbor2.CBORDecodeError, ValueError, TypeError, OverflowError, RecursionError) as exc:
        raise DecodeError(f"not a CBOR item: {exc}") from exc
    return _as_packet(item)


def decode_packet(data: bytes) -> Packet:
    """A complete packet as read from TX (or RX on the tower): must name its packet type."""
    packet = decode_map(data)
    if packet_type(packet) is None and Field.INNER_WRAPPER not in packet:
        raise DecodeError("packet has no packet_type (1)", firmware_code=FirmwareCode.MSG_ITEM_MISSING)
    return packet


def packet_type(packet: Mapping[int, Any]) -> PacketType | int | None:
    """The packet's type: an unknown number stays a plain int; ``None`` for a session wrapper.

    Session-wrapped packets (22, 7, 8) carry their type inside the encrypted map.
    """
    value = packet.get(Field.PACKET_TYPE)
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool):
        raise DecodeError("packet_type (1) is not an integer", firmware_code=FirmwareCode.MSG_ITEM_TYPE)
    try:
        return PacketType(value)
    except ValueError:
        return value


def chunks(data: bytes, mtu: int) -> Iterator[bytes]:
    """``data`` cut into writes of at most ``mtu - 3`` bytes (write without response) [S]."""
    size = mtu - assumptions.ATT_WRITE_OVERHEAD
    if size < 1:
        raise ValueError(f"MTU {mtu} leaves no room for data")
    for start in range(0, len(data), size):
        yield data[start : start + size]


class Reassembler:
    """Notification fragments in, complete packets out ("until it parses as one CBOR item" [S]).

    Bytes after a complete item are kept for the next one. ``max_bytes`` bounds the buffer, so a
    tower that never completes an item cannot grow it without end.
    """

    def __init__(self, max_bytes: int = 64 * 1024) -> None:
        self._buffer = bytearray()
        self._max_bytes = max_bytes

    def __len__(self) -> int:
        return len(self._buffer)

    def clear(self) -> None:
        self._buffer.clear()

    def feed(self, fragment: bytes) -> list[bytes]:
        """Add one notification; return every packet (raw bytes) it completes, oldest first."""
        self._buffer += fragment
        if len(self._buffer) > self._max_bytes:
            size = len(self._buffer)
            self._buffer.clear()
            raise DecodeError(f"{size} bytes buffered without a complete CBOR item")
        complete: list[bytes] = []
        while self._buffer:
            end = self._complete_item_end()
            if end is None:
                break
            complete.append(bytes(self._buffer[:end]))
            del self._buffer[:end]
        return complete

    def _complete_item_end(self) -> int | None:
        stream = io.BytesIO(self._buffer)
        try:
            cbor2.CBORDecoder(stream).decode()
        except cbor2.CBORDecodeEOF:
            return None  # not all there yet
        except (cbor2.CBORDecodeError, ValueError, TypeError, OverflowError, RecursionError) as exc:
            size = len(self._buffer)
            self._buffer.clear()
            raise DecodeError(f"notifications do not form a CBOR item ({size} bytes): {exc}") from exc
        return stream.tell()
