"""A tower's advertisement: the bytes it puts on the air, and who it is from what a scanner hands over (9.1).

On the air (``tower_advertisement``): a legacy connectable, scannable advertisement and its scan
response, laid out so that the raw scan record (advertisement bytes, then scan-response bytes, as
Android's ``ScanRecord.getBytes()`` gives them) carries the firmware version at [25,28), the tower
id at [32,40) and the name at [40,56) [S]; the AD structures around those bytes are [I]
(``assumptions.ADVERT_SPLIT_LAYOUT``). ``identity_from_scan_record`` reads a record the way the
Android SDK does, at those fixed offsets.

From a scanner (``Sightings``): bleak hands over a ``manufacturer_data`` dict per report, and each
OS shows the two manufacturer payloads differently (``AdvertLayout``): apart under two company ids,
concatenated under one, the scan response replacing the advertisement's entry (BlueZ and WinRT
keep the last value per company id), or the advertisement alone first and the scan response in a
later report (CoreBluetooth, WinRT before the response arrives). ``Sightings`` remembers per
device what earlier reports said, so every one of them identifies the tower.
"""

from __future__ import annotations

import enum
import uuid
from collections.abc import Mapping
from dataclasses import dataclass

from harness.model import TowerId

from . import assumptions as a
from ._errors import DecodeError
from ._identity import TowerIdentity
from ._tables import NUS_SERVICE_UUID

__all__ = [
    "LEGACY_AD_MAX",
    "AdvertLayout",
    "Sighting",
    "Sightings",
    "identity_from_scan_record",
    "tower_advertisement",
]

#: A legacy advertisement and a legacy scan response carry at most 31 bytes of AD structures each.
LEGACY_AD_MAX = 31

_FLAGS = 0x01
_COMPLETE_UUID128 = 0x07
_MANUFACTURER = 0xFF
#: LE General Discoverable, BR/EDR not supported.
_FLAGS_VALUE = 0x06


class AdvertLayout(enum.StrEnum):
    """How the tower's two manufacturer payloads reached the client."""

    SEPARATE = "separate entries"  # firmware and id+name under two company ids, in one report
    MERGED = "merged by company id"  # firmware+id+name concatenated under one company id
    SCAN_RESPONSE_ONLY = "scan response only"  # id+name alone: the firmware entry was replaced or never seen
    SCAN_RESPONSE_LATE = "scan response late"  # the firmware in an earlier report, id+name in a later one


def _ad(kind: int, value: bytes) -> bytes:
    return bytes((len(value) + 1, kind)) + value


def tower_advertisement(identity: TowerIdentity) -> tuple[bytes, bytes]:
    """``(advertising data, scan response data)`` of a tower, each at most 31 bytes."""
    firmware, scan_response = identity.manufacturer_payloads()
    company = a.MANUFACTURER_COMPANY_ID.to_bytes(2, "little")
    advert = (
        _ad(_FLAGS, bytes((_FLAGS_VALUE,)))
        + _ad(_COMPLETE_UUID128, uuid.UUID(NUS_SERVICE_UUID).bytes[::-1])  # AD UUIDs are little-endian
        + _ad(_MANUFACTURER, company + firmware)
    )
    response = _ad(_MANUFACTURER, company + scan_response)
    if len(advert) > LEGACY_AD_MAX or len(response) > LEGACY_AD_MAX:  # a real controller refuses them
        raise ValueError(f"advertisement {len(advert)} B / scan response {len(response)} B exceed 31 B")
    return advert, response


def identity_from_scan_record(record: bytes) -> TowerIdentity:
    """The tower a raw scan record names, read at the Android SDK's fixed offsets [S]."""
    end = a.SCAN_RECORD_NAME[1]
    if len(record) < end:
        raise DecodeError(f"scan record is {len(record)} bytes, the tower's fields end at byte {end}")
    start, stop = a.SCAN_RECORD_FIRMWARE
    firmware = ".".join(str(b) for b in record[start:stop])
    start, stop = a.SCAN_RECORD_TOWER_ID
    tower_id = TowerId.from_bytes(record[start:stop])
    start, stop = a.SCAN_RECORD_NAME
    name = record[start:stop].rstrip(b"\x00").decode("utf-8", errors="replace")
    return TowerIdentity(tower_id, name, firmware)


@dataclass(frozen=True, slots=True)
class Sighting:
    """A tower recognised in a scanner's report, and how its advertisement was presented."""

    identity: TowerIdentity
    layout: AdvertLayout


class Sightings:
    """What each device's reports said so far (address -> firmware seen), for ``see``."""

    def __init__(self) -> None:
        self._firmware: dict[str, str] = {}

    def see(self, address: str, manufacturer_data: Mapping[int, bytes]) -> Sighting | None:
        """The tower in this report of ``address``, or ``None`` while its id has not been seen."""
        firmware: bytes | None = None
        identity: bytes | None = None
        merged = False
        for raw in manufacturer_data.values():
            raw = bytes(raw)
            if len(raw) == a.ADVERT_MERGED_LEN:
                firmware, identity, merged = raw[: a.ADVERT_FIRMWARE_LEN], raw[a.ADVERT_FIRMWARE_LEN :], True
            elif len(raw) == a.ADVERT_IDENTITY_LEN:
                identity = raw
            elif len(raw) == a.ADVERT_FIRMWARE_LEN:
                firmware = raw
        if firmware is not None:
            self._firmware[address] = ".".join(str(b) for b in firmware)
        if identity is None:
            return None
        if merged:
            layout = AdvertLayout.MERGED
        elif firmware is not None:
            layout = AdvertLayout.SEPARATE
        elif address in self._firmware:
            layout = AdvertLayout.SCAN_RESPONSE_LATE
        else:
            layout = AdvertLayout.SCAN_RESPONSE_ONLY
        tower = TowerIdentity.from_manufacturer_data({0: identity})
        assert tower is not None  # 24 bytes always parse
        return Sighting(
            TowerIdentity(tower.tower_id, tower.name, self._firmware.get(address)),
            layout,
        )
