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


async def _scan(link: object, seconds_bound: float = 5.0) -> dict[str, tuple[BLEDevice, AdvertisementData]]:
    seen: dict[str, tuple[BLEDevice, AdvertisementData]] = {}
    both = asyncio.Event()

    def on_advert(device: BLEDevice, advert: AdvertisementData) -> None:
        identity = blink.TowerIdentity.from_manufacturer_data(advert.manufacturer_data)
        if identity is not None:
            seen[identity.tower_id] = (device, advert)
        if len(seen) == 2:
            both.set()

    async with BleakScanner(on_advert, [blink.NUS_SERVICE_UUID], backend=VirtualBleakScanner, link=link):
        await asyncio.wait_for(both.wait(), seconds_bound)
    return seen


async def test_scanner_sees_both_towers_with_their_identity(sandbox: VirtualSandbox) -> None:
    """A BleakScanner filtered on the Nordic UART service reports both towers with id, name and firmware."""
    seen = await _scan(sandbox.radio.link)
    identity = blink.TowerIdentity.from_manufacturer_data(seen[TOWER][1].manufacturer_data)
    assert identity == blink.TowerIdentity(TOWER, "Virtual Tower 14", "1.2.3")
    assert OTHER_TOWER in seen
    assert blink.NUS_SERVICE_UUID in seen[TOWER][1].service_uuids


async def test_find_device_by_filter_works_with_periodic_adverts(sandbox: VirtualSandbox) -> None:
    """bleak's own find_device_by_filter finds a tower: the towers advertise repeatedly, not once."""
    device = await BleakScanner.find_device_by_filter(
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
    device, _ = (await _scan(sandbox.radio.link))[TOWER]
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
    device, _ = (await _scan(sandbox.radio.link))[TOWER]
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
