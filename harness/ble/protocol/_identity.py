"""Who a tower is: tower id, name and firmware version, from its advertisement or device info (9.1).

The lengths and offsets are [S] for the device info and [I] for the advertisement
(:mod:`.assumptions`). Tower ids are 8 bytes on the wire and ``harness.model.TowerId`` in text.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from harness.model import TowerId

from . import assumptions as a
from ._errors import DecodeError

__all__ = ["TowerIdentity"]


def _version(raw: bytes) -> str:
    return ".".join(str(b) for b in raw)


def _version_bytes(version: str) -> bytes:
    parts = [int(p) for p in version.split(".")]
    if len(parts) != a.ADVERT_FIRMWARE_LEN or not all(0 <= p < 256 for p in parts):
        raise ValueError(f"firmware version must be three numbers 0..255, not {version!r}")
    return bytes(parts)


def _name(raw: bytes) -> str:
    return raw.rstrip(b"\x00").decode("utf-8", errors="replace")


def _name_bytes(name: str) -> bytes:
    raw = name.encode("utf-8")[: a.TOWER_NAME_LEN]
    return raw.ljust(a.TOWER_NAME_LEN, b"\x00")


@dataclass(frozen=True, slots=True)
class TowerIdentity:
    """A tower as it introduces itself; ``firmware_version`` may be unknown until device info is read."""

    tower_id: TowerId
    name: str
    firmware_version: str | None = None

    # -- advertisement ------------------------------------------------------------------------

    @classmethod
    def from_manufacturer_data(cls, data: Mapping[int, bytes]) -> TowerIdentity | None:
        """The identity in a scan's manufacturer data (company id -> bytes), or ``None`` if absent.

        Accepts the advertisement part (firmware), the scan-response part (id + name), or both
        merged, under any company id.
        """
        firmware: str | None = None
        identity: bytes | None = None
        for raw in data.values():
            raw = bytes(raw)
            if len(raw) == a.ADVERT_MERGED_LEN:
                firmware, identity = _version(raw[: a.ADVERT_FIRMWARE_LEN]), raw[a.ADVERT_FIRMWARE_LEN :]
            elif len(raw) == a.ADVERT_IDENTITY_LEN:
                identity = raw
            elif len(raw) == a.ADVERT_FIRMWARE_LEN:
                firmware = _version(raw)
        if identity is None:
            return None
        return cls(tower_id=TowerId.from_bytes(identity[:8]), name=_name(identity[8:]), firmware_version=firmware)

    def manufacturer_payloads(self) -> tuple[bytes, bytes]:
        """``(advertisement, scan response)`` manufacturer payloads, each without the company id."""
        firmware = _version_bytes(self.firmware_version or "0.0.0")
        return firmware, bytes.fromhex(self.tower_id) + _name_bytes(self.name)

    def manufacturer_payload_merged(self) -> bytes:
        """Both parts in one payload, for an advertisement that has room (extended advertising)."""
        advert, scan_response = self.manufacturer_payloads()
        return advert + scan_response

    # -- device info characteristic -------------------------------------------------------------

    @classmethod
    def from_device_info(cls, value: bytes) -> TowerIdentity:
        """Parse the device-info value: prefix(2) + firmware(3) + tower id(8) + name(16) [S]."""
        prefix = len(a.DEVICE_INFO_PREFIX)
        need = prefix + a.ADVERT_MERGED_LEN
        if len(value) < need:
            raise DecodeError(f"device info is {len(value)} bytes, expected at least {need}")
        body = bytes(value[prefix:need])
        return cls(
            tower_id=TowerId.from_bytes(body[3:11]),
            name=_name(body[11:]),
            firmware_version=_version(body[:3]),
        )

    def device_info(self) -> bytes:
        """The device-info value a tower serves."""
        return a.DEVICE_INFO_PREFIX + self.manufacturer_payload_merged()
