"""Plain bleak code reaches the virtual towers through bumble's ATT/GATT stack."""

from __future__ import annotations

import asyncio

import pytest
from bleak import BleakClient, BleakScanner
from bleak.backends.device import BLEDevice
from bleak.backends.scanner import AdvertisementData

from harness.ble import protocol as blink
from harness.ble._virtual import VirtualBleakClient, VirtualBleakScanner
from harness.sim import VirtualSandbox
from harness.sim.radio import LatencyModel

TOWER = "0100000000000014"
OTHER_TOWER = "0100000000000175"

pytestmark = pytest.mark.anyio


async def _scan(
    link: object, seconds_bound: float = 5.0
) -> dict[str, tuple[BLEDevice, AdvertisementData, blink.Sighting]]:
    seen: dict[str, tuple[BLEDevice, AdvertisementData, blink.Sighting]] = {}
    sightings = blink.Sightings()
    both = asyncio.Event()

    def on_advert(device: BLEDevice, advert: AdvertisementData) -> None:
        sighting = sightings.see(device.address, advert.manufacturer_data)
        if sighting is not None:
            seen[sighting.identity.tower_id] = (device, advert, sighting)
        if len(seen) == 2:
            both.set()

    async with BleakScanner(on_advert, [blink.NUS_SERVICE_UUID], backend=VirtualBleakScanner, link=link):
        await asyncio.wait_for(both.wait(), seconds_bound)
    return seen


async def test_scanner_sees_both_towers_with_their_identity(sandbox: VirtualSandbox) -> None:
    """A BleakScanner filtered on the Nordic UART service reports both towers with id, name and firmware:
    the firmware in the advertisement's report, the id and name in the scan response's, which replaces the
    advertisement's manufacturer entry (one company id) as BlueZ and WinRT do."""
    seen = await _scan(sandbox.radio.link)
    _, advert, sighting = seen[TOWER]
    assert sighting.identity == blink.TowerIdentity(TOWER, "Virtual Tower 14", "1.2.3")
    assert sighting.layout is blink.AdvertLayout.SCAN_RESPONSE_LATE
    assert list(advert.manufacturer_data) == [blink.assumptions.MANUFACTURER_COMPANY_ID]
    assert OTHER_TOWER in seen
    assert blink.NUS_SERVICE_UUID in advert.service_uuids


async def _raw_reports(sandbox: VirtualSandbox, *, active: bool) -> dict[str, list[tuple[int, bytes]]]:
    """``(event type, AD bytes)`` of every advertising report a plain bumble central on the radio's link
    heard in about 0.2 s, by advertiser address: the bytes the towers put on the air."""
    from bumble.device import Device
    from bumble.hci import Address
    from bumble.host import Host
    from bumble.transport.common import AsyncPipeSink

    link = sandbox.radio.link
    reports: dict[str, list[tuple[int, bytes]]] = {}

    async def listen() -> None:
        controller = link.central_controller("raw-listener", "C0:00:00:00:FF:01")
        device = Device(
            name="raw", address=Address("C0:00:00:00:FF:01"), host=Host(controller, AsyncPipeSink(controller))
        )
        device.host.on(
            "advertising_report",
            lambda r: reports.setdefault(str(r.address), []).append((int(r.event_type), bytes(r.data))),
        )
        await device.power_on()
        await device.start_scanning(active=active, filter_duplicates=False)
        await asyncio.sleep(0.2)  # a listening window: about ten advertising intervals
        await device.stop_scanning()
        await device.power_off()

    assert link.loop is not None
    await asyncio.wait_for(asyncio.wrap_future(asyncio.run_coroutine_threadsafe(listen(), link.loop)), 5.0)
    return reports


async def test_the_raw_scan_record_on_the_air_has_the_reference_offsets(sandbox: VirtualSandbox) -> None:
    """A virtual tower's advertisement followed by its scan response, as Android's raw scan record joins
    them, carries the firmware at [25,28) and the tower id at [32,40) (reference 9.1), each part within
    a legacy PDU's 31 bytes."""
    scan_response_bit = 0x08
    for address, heard in (await _raw_reports(sandbox, active=True)).items():
        adverts = [data for kind, data in heard if not kind & scan_response_bit]
        responses = [data for kind, data in heard if kind & scan_response_bit]
        assert adverts and responses, f"{address}: no advertisement and scan response heard"
        record = (adverts[0] + responses[0]).ljust(62, b"\x00")
        assert len(adverts[0]) <= 31 and len(responses[0]) <= 31
        if record[32:40] == bytes.fromhex(TOWER):
            assert record[25:28] == bytes((1, 2, 3))
            assert blink.identity_from_scan_record(record) == blink.TowerIdentity(TOWER, "Virtual Tower 14", "1.2.3")
            return
    raise AssertionError(f"no scan record with tower id {TOWER} at [32,40)")


async def test_a_passive_scan_hears_no_scan_response(sandbox: VirtualSandbox) -> None:
    """A scan response answers a scan request: a passive scanner hears the advertisement only."""
    heard = await _raw_reports(sandbox, active=False)
    assert heard
    assert all(not kind & 0x08 for reports in heard.values() for kind, _ in reports)


async def test_find_device_by_filter_works_with_periodic_adverts(sandbox: VirtualSandbox) -> None:
    """bleak's own find_device_by_filter finds a tower: the towers advertise repeatedly, not once."""
    device = await BleakScanner.find_device_by_filter(
        # The scan response's report carries the id: the advertisement's alone does not.
        lambda _d, ad: (blink.TowerIdentity.from_manufacturer_data(ad.manufacturer_data) or _NO).tower_id == TOWER,
        timeout=5.0,
        backend=VirtualBleakScanner,
        link=sandbox.radio.link,
    )
    assert device is not None


_NO = blink.TowerIdentity("0" * 16, "")


@pytest.mark.parametrize("latency", [LatencyModel.off(), LatencyModel(connection_interval=0.0075, jitter=0.001)])
async def test_client_connects_discovers_reads_and_exchanges(sandbox: VirtualSandbox, latency: LatencyModel) -> None:
    """BleakClient connects, finds RX/TX/device info, negotiates MTU 247, reads identity, gets a reply."""
    sandbox.radio.set_latency(latency)
    device, _, _ = (await _scan(sandbox.radio.link))[TOWER]
    replies: asyncio.Queue[bytes] = asyncio.Queue()
    async with BleakClient(device, backend=VirtualBleakClient, link=sandbox.radio.link, timeout=5.0) as client:
        assert client.mtu_size == 247
        info = await client.read_gatt_char(blink.DEVICE_INFO_UUID)
        assert blink.TowerIdentity.from_device_info(bytes(info)).tower_id == TOWER
        tx = client.services.get_characteristic(blink.TX_UUID)
        assert tx is not None and "notify" in tx.properties
        await client.start_notify(tx, lambda _c, data: replies.put_nowait(bytes(data)))
        # No session yet: the tower answers a door check with a clear SESSION_ERROR AUTH_NO_SESSION.
        raw = blink.encode_packet({blink.Field.PACKET_TYPE: blink.PacketType.CHECK_LOCKER_DOOR})
        await client.write_gatt_char(blink.RX_UUID, raw, response=False)
        reply = blink.decode_packet(await asyncio.wait_for(replies.get(), 5.0))
        assert reply[blink.Field.PACKET_TYPE] == blink.PacketType.SESSION_ERROR
        assert reply[blink.Field.ERROR_CODE] == blink.FirmwareCode.AUTH_NO_SESSION
    assert not client.is_connected


@pytest.mark.parametrize("services", [None, [blink.NUS_SERVICE_UUID]])
async def test_client_resolves_the_services_it_is_asked_for(
    sandbox: VirtualSandbox, services: list[str] | None
) -> None:
    """With ``services=`` the client resolves only those (found by UUID, as CoreBluetooth does with a
    filter); without it, every primary service, the tower's GAP and GATT services too."""
    device, _, _ = (await _scan(sandbox.radio.link))[TOWER]
    async with BleakClient(
        device, services=services, backend=VirtualBleakClient, link=sandbox.radio.link, timeout=5.0
    ) as client:
        resolved = {service.uuid for service in client.services}
        assert client.services.get_characteristic(blink.RX_UUID) is not None
        assert client.services.get_characteristic(blink.TX_UUID) is not None
    assert blink.NUS_SERVICE_UUID in resolved
    if services is None:
        assert len(resolved) > 1
    else:
        assert resolved == {blink.NUS_SERVICE_UUID}
