"""The value layouts of the locker and device commands (9.5, 9.6): the door bitfield and the device info.

Field keys and packet types are [S]; how the door bitfield is ordered and which fields DEVICE_INFO
carries are the harness's choices (``assumptions.DOOR_BITFIELD_BY_LABEL``,
``assumptions.DEVICE_INFO_FIELDS``). Both the client and the virtual tower use these, so the two
sides cannot drift apart, and a bench tower that differs shows it in one place.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from harness.model import TowerId

from . import assumptions as a
from ._errors import DecodeError
from ._tables import Field, PacketType

__all__ = ["DeviceInfo", "decode_door_bits", "encode_door_bits"]


def encode_door_bits(open_doors: Iterable[int], doors: int) -> bytes:
    """ALL_LOCKER_DOOR_STATES' ``locker_doors_open``: door label n is bit (n-1)%8 of byte (n-1)//8
    (``assumptions.DOOR_BITFIELD_BY_LABEL``), one byte per 8 of ``doors``."""
    field = bytearray((doors + 7) // 8)
    for door in open_doors:
        if not 1 <= door <= doors:
            raise ValueError(f"door {door} is not one of 1..{doors}")
        field[(door - 1) // 8] |= 1 << ((door - 1) % 8)
    return bytes(field)


def decode_door_bits(field: bytes) -> frozenset[int]:
    """The door labels whose bit is set (1 = open [S])."""
    return frozenset(index * 8 + bit + 1 for index, byte in enumerate(field) for bit in range(8) if byte >> bit & 1)


@dataclass(frozen=True, slots=True)
class DeviceInfo:
    """What GET_DEVICE_INFO answers (``assumptions.DEVICE_INFO_FIELDS``): who the tower is and how it is."""

    tower_id: TowerId
    tower_name: str
    firmware_version: str
    device_model: str
    tower_serial: str
    uptime: int  # seconds since the tower booted
    clock_time: int  # the tower's clock, Unix seconds
    battery_mv: int
    lockers: int

    def to_packet(self) -> dict[int, Any]:
        """The DEVICE_INFO reply (inner map)."""
        fields: dict[int, Any] = {
            Field.TOWER_ID: bytes.fromhex(self.tower_id),
            Field.TOWER_NAME: self.tower_name,
            Field.INFO_FIRMWARE_VERSION: self.firmware_version,
            Field.INFO_DEVICE_MODEL: self.device_model,
            Field.INFO_TOWER_SERIAL: self.tower_serial,
            Field.INFO_UPTIME: self.uptime,
            Field.INFO_CLOCK_TIME: self.clock_time,
            Field.INFO_BATTERY_MV: self.battery_mv,
            Field.INFO_LOCKER: self.lockers,
        }
        assert tuple(int(key) for key in fields) == a.DEVICE_INFO_FIELDS
        return {Field.PACKET_TYPE: PacketType.DEVICE_INFO, **fields}

    @classmethod
    def from_packet(cls, packet: Mapping[int, Any]) -> DeviceInfo:
        """Read a DEVICE_INFO reply; a missing or mistyped field is a ``DecodeError`` naming it."""

        def get(key: Field, kind: type) -> Any:
            value = packet.get(key)
            if not isinstance(value, kind) or isinstance(value, bool):
                raise DecodeError(f"DEVICE_INFO's {key.name.lower()} ({int(key)}) is not a {kind.__name__}")
            return value

        tower_id: bytes = get(Field.TOWER_ID, bytes)
        return cls(
            tower_id=TowerId.from_bytes(tower_id),
            tower_name=get(Field.TOWER_NAME, str),
            firmware_version=get(Field.INFO_FIRMWARE_VERSION, str),
            device_model=get(Field.INFO_DEVICE_MODEL, str),
            tower_serial=get(Field.INFO_TOWER_SERIAL, str),
            uptime=get(Field.INFO_UPTIME, int),
            clock_time=get(Field.INFO_CLOCK_TIME, int),
            battery_mv=get(Field.INFO_BATTERY_MV, int),
            lockers=get(Field.INFO_LOCKER, int),
        )
