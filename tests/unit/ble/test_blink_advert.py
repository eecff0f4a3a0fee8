"""The tower's advertisement (reference 9.1): the bytes on the air, and the tower recognised from every
way a bleak backend can present them.

The bytes are the reference's: firmware "1.2.3" is ``01 02 03`` [S, bytes 25..27 of the scan record],
tower id ``0100000000000014`` is 8 bytes [S, 32..39], the name is 16 bytes of UTF-8 padded with NULs
[S, 40..55]; the company id 0xFFFF and the AD structures around them are the harness's [I]/[G].
"""

from __future__ import annotations

import pytest

from harness.ble import protocol as p
from harness.ble.protocol import AdvertLayout, Sightings

FIRMWARE = bytes.fromhex("010203")
TOWER_ID = bytes.fromhex("0100000000000014")
NAME = b"Virtual Tower 14"  # exactly 16 bytes
SHORT_NAME = b"Bench".ljust(16, b"\x00")
TOWER = p.TowerIdentity("0100000000000014", "Virtual Tower 14", "1.2.3")
ADDRESS = "D0:00:00:00:00:01"


def test_the_raw_scan_record_has_the_reference_bytes_at_the_reference_offsets() -> None:
    """Advertisement + scan response, as Android concatenates them: firmware [25,28), id [32,40), name [40,56)."""
    advert, response = p.tower_advertisement(TOWER)
    assert len(advert) <= 31 and len(response) <= 31
    record = (advert + response).ljust(62, b"\x00")  # a legacy scan record: 31 + 31, zero-padded
    assert record[25:28] == FIRMWARE
    assert record[32:40] == TOWER_ID
    assert record[40:56] == NAME
    assert p.identity_from_scan_record(record) == TOWER


def test_the_advertisement_carries_the_uart_service_for_the_sdks_scan_filter() -> None:
    """The SDK filters the scan on the Nordic UART service [S]: its 128-bit UUID is in the advertisement."""
    advert, _ = p.tower_advertisement(TOWER)
    nus = bytes.fromhex("6E400001B5A3F393E0A9E50E24DCCA9E")[::-1]
    assert advert[3:5] == bytes((17, 0x07)) and advert[5:21] == nus


def test_a_short_scan_record_is_refused() -> None:
    """A record that ends before the name's last byte is not a tower's."""
    with pytest.raises(p.DecodeError):
        p.identity_from_scan_record(bytes(40))


def test_a_name_shorter_than_16_bytes_loses_its_padding() -> None:
    """NULs after the name are stripped [S]."""
    advert, response = p.tower_advertisement(p.TowerIdentity("0100000000000014", "Bench", "1.2.3"))
    assert (advert + response)[40:56] == SHORT_NAME
    assert p.identity_from_scan_record(advert + response).name == "Bench"


def test_separate_entries_under_two_company_ids() -> None:
    """Both payloads in one report, each under its own company id."""
    seen = Sightings().see(ADDRESS, {0xFFFF: FIRMWARE, 0x0059: TOWER_ID + NAME})
    assert seen is not None
    assert seen.identity == TOWER and seen.layout is AdvertLayout.SEPARATE


def test_merged_by_company_id() -> None:
    """One company id, the advertisement's payload then the scan response's, concatenated."""
    seen = Sightings().see(ADDRESS, {0xFFFF: FIRMWARE + TOWER_ID + NAME})
    assert seen is not None
    assert seen.identity == TOWER and seen.layout is AdvertLayout.MERGED


def test_scan_response_replacing_the_advertisements_entry() -> None:
    """BlueZ and WinRT keep the last value per company id: only id + name; firmware comes from device info."""
    seen = Sightings().see(ADDRESS, {0xFFFF: TOWER_ID + NAME})
    assert seen is not None
    assert seen.identity == p.TowerIdentity("0100000000000014", "Virtual Tower 14", None)
    assert seen.layout is AdvertLayout.SCAN_RESPONSE_ONLY


def test_scan_response_missing_at_first() -> None:
    """The advertisement alone first (no tower yet), the scan response in a later report: the firmware
    of the first is kept for the device and the tower is recognised whole."""
    sightings = Sightings()
    assert sightings.see(ADDRESS, {0xFFFF: FIRMWARE}) is None
    seen = sightings.see(ADDRESS, {0xFFFF: TOWER_ID + NAME})
    assert seen is not None
    assert seen.identity == TOWER and seen.layout is AdvertLayout.SCAN_RESPONSE_LATE


def test_an_earlier_firmware_of_another_device_is_not_borrowed() -> None:
    """What one device advertised never completes another's identity."""
    sightings = Sightings()
    sightings.see("D0:00:00:00:00:02", {0xFFFF: FIRMWARE})
    seen = sightings.see(ADDRESS, {0xFFFF: TOWER_ID + NAME})
    assert seen is not None and seen.identity.firmware_version is None


def test_alternating_reports_keep_recognising_the_tower() -> None:
    """A backend that shows the advertisement's entry again after the response still finds the tower."""
    sightings = Sightings()
    first = sightings.see(ADDRESS, {0xFFFF: TOWER_ID + NAME})
    assert sightings.see(ADDRESS, {0xFFFF: FIRMWARE}) is None
    again = sightings.see(ADDRESS, {0xFFFF: TOWER_ID + NAME})
    assert first is not None and again is not None
    assert again.identity == TOWER and first.identity.tower_id == again.identity.tower_id


@pytest.mark.parametrize(
    "data",
    [{}, {0x004C: bytes.fromhex("0215") + bytes(21)}, {0xFFFF: b"\x01\x02"}, {0xFFFF: bytes(30)}],
    ids=["nothing", "an iBeacon", "too short", "too long"],
)
def test_other_devices_are_not_towers(data: dict[int, bytes]) -> None:
    """Manufacturer data of any other length is not a tower's."""
    assert Sightings().see(ADDRESS, data) is None
