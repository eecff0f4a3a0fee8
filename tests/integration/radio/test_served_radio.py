"""A sandbox's towers reached over its radio from another process: the harness's own client, and a
plain bumble central that knows nothing of the harness but the Blink codec."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
import time

import pytest
from bumble import hci
from bumble.core import UUID
from bumble.device import Device, Peer
from bumble.transport import open_transport

from harness.api import AsyncHarborClient
from harness.ble import BleLinkError, TowerClient, choose_backend, find_tower
from harness.ble import protocol as blink
from harness.ble.protocol import Field, PacketType
from harness.config import Settings
from harness.errors import ExitCode
from harness.model import TowerId
from harness.sim import SimControl, VirtualSandbox
from harness.targets import announced_radio

from .conftest import OTHER_TOWER, TOWER


def test_the_control_plane_announces_the_radio_on_loopback(control: SimControl, settings: Settings) -> None:
    """``GET /_sim/radio`` names a loopback ``tcp-client`` address and both seeded towers; the targets
    layer reads the same answer."""
    described = control.radio()
    assert described["transport"].startswith("tcp-client:127.0.0.1:")
    assert [tower["tower_id"] for tower in described["towers"]] == [TOWER, OTHER_TOWER]
    assert described["mtu"] == 247 and described["connection_interval"] == 0.0
    assert settings.target.api_url is not None
    announced = announced_radio(settings.target.api_url)
    assert announced is not None and announced.transport == described["transport"]
    assert announced.towers == (TowerId(TOWER), TowerId(OTHER_TOWER))


def test_a_door_opens_through_a_child_sandboxs_radio(control: SimControl, transport: str, settings: Settings) -> None:
    """The harness's virtual backend, given only the announced address, scans, connects, opens a
    session and opens a door of the sandbox in the other process; the door is open there after."""
    backend = choose_backend("virtual", link=transport)
    tower = TowerId(TOWER)

    async def deliver() -> int:
        async with AsyncHarborClient(settings) as api:
            locker = next(x for x in await api.list_lockers(tower) if x.status.wire_name == "available")
            await api.reserve(tower, locker.id, 300)
            token = await api.create_dropoff_token(tower, locker.id, 600, "")
            found = await find_tower(backend, tower, timeout=5.0)
            async with TowerClient.over(backend, found.device, tower_id=tower, response_timeout=5.0) as client:
                await client.start_session(api.create_session_token)
                opened = await client.open_with_token(token.payload, token.payload_auth)
                assert client.mtu == 247
            assert opened == locker.id
            return opened

    opened = asyncio.run(deliver())
    assert control.door_state(TOWER, opened) or control.locker(opened)["status"] != "available"


def test_the_mtu_set_on_the_control_plane_reaches_the_other_process(control: SimControl, transport: str) -> None:
    """``POST /_sim/radio {"mtu": 23}``: the next connection from another process gets ATT MTU 23."""
    backend = choose_backend("virtual", link=transport)

    async def mtu() -> int:
        found = await find_tower(backend, TowerId(TOWER), timeout=5.0)
        async with TowerClient.over(backend, found.device, tower_id=TowerId(TOWER)) as client:
            return client.mtu

    control.configure_radio(mtu=23)
    try:
        assert asyncio.run(mtu()) == 23
    finally:
        control.configure_radio(mtu=247)


def test_a_supervision_timeout_reaches_the_other_process_and_the_tower_comes_back(
    control: SimControl, transport: str, settings: Settings
) -> None:
    """The sandbox's ``ble_supervision_timeout`` fault, switched on its control plane, silences the link
    of a client in another process as it does an in-process one: its command fails as a lost link
    (exit 4, naming the phase); the tower advertises again and the next session runs."""
    backend = choose_backend("virtual", link=transport)
    tower = TowerId(TOWER)

    async def session() -> None:
        async with AsyncHarborClient(settings) as api:
            found = await find_tower(backend, tower, timeout=5.0)
            async with TowerClient.over(backend, found.device, tower_id=tower, response_timeout=3.0) as client:
                await client.start_session(api.create_session_token)
                await client.doors_open()  # an in-session command: the one the fault loses on the air

    control.set_faults("ble_supervision_timeout", count=1, ms=100)
    with pytest.raises(BleLinkError) as lost:
        asyncio.run(session())
    assert lost.value.exit_code == ExitCode.INFRASTRUCTURE and "phase=" in str(lost.value)
    asyncio.run(session())


class _Central:
    """A bumble central in this process on the served radio's transport: no harness client code."""

    def __init__(self, device: Device) -> None:
        self.device = device
        self.adverts: dict[hci.Address, bytes] = {}

    async def scan_for(self, tower_id: str) -> tuple[hci.Address, bytes]:
        """The tower's address and its raw scan record (advertisement, then scan response), actively scanned."""
        found: asyncio.Future[tuple[hci.Address, bytes]] = asyncio.get_running_loop().create_future()

        def on_report(report: object) -> None:
            scan_response = bool(getattr(report, "event_type", 0) & 0x08)
            address, data = getattr(report, "address"), bytes(getattr(report, "data"))  # noqa: B009
            if not scan_response:
                self.adverts[address] = data
                return
            record = self.adverts.get(address, b"") + data
            try:
                identity = blink.identity_from_scan_record(record)
            except blink.DecodeError:
                return
            if str(identity.tower_id) == tower_id and not found.done():
                found.set_result((address, record))

        self.device.host.on("advertising_report", on_report)
        await self.device.start_scanning(active=True, filter_duplicates=False)
        try:
            return await asyncio.wait_for(found, 5.0)
        finally:
            self.device.host.remove_listener("advertising_report", on_report)
            await self.device.stop_scanning()


async def _open_over_bumble(transport: str, settings: Settings) -> tuple[int, bytes]:
    """Scan, connect, REQUEST/GRANT_SESSION and OPEN_LOCKER_WITH_TOKEN with bumble and the codec alone."""
    tower = TowerId(TOWER)
    async with AsyncHarborClient(settings) as api:
        locker = next(x for x in await api.list_lockers(tower) if x.status.wire_name == "available")
        await api.reserve(tower, locker.id, 300)
        token = await api.create_dropoff_token(tower, locker.id, 600, "")
        async with await open_transport(transport) as hci_transport:
            device = Device.with_hci("bumble-phone", hci.Address.generate_static_address(), *hci_transport)
            await device.power_on()
            address, record = await _Central(device).scan_for(TOWER)
            connection = await device.connect(address, timeout=5.0)
            peer = Peer(connection)
            mtu = await peer.request_mtu(247)
            [service] = await peer.discover_service(UUID(blink.NUS_SERVICE_UUID))
            characteristics = await peer.discover_characteristics(service=service)
            rx = next(c for c in characteristics if c.uuid == UUID(blink.RX_UUID))
            tx = next(c for c in characteristics if c.uuid == UUID(blink.TX_UUID))
            replies: asyncio.Queue[blink.Packet] = asyncio.Queue()
            reassembler = blink.Reassembler()
            await peer.subscribe(
                tx, lambda value: [replies.put_nowait(blink.decode_packet(p)) for p in reassembler.feed(bytes(value))]
            )

            async def exchange(packet: blink.Packet) -> blink.Packet:
                for chunk in blink.chunks(blink.encode_packet(packet), mtu):
                    await peer.write_value(rx, chunk, with_response=False)
                return await asyncio.wait_for(replies.get(), 5.0)

            identity = blink.identity_from_scan_record(record)
            session_token = await api.create_session_token(tower, identity.firmware_version or "0.0.0")
            nonce = blink.new_nonce()
            grant = await exchange(
                blink.request_session(
                    bytes.fromhex(session_token.payload),
                    bytes.fromhex(session_token.payload_auth),
                    nonce=nonce,
                    timestamp=int(time.time()),
                )
            )
            blink.raise_for_error(grant)
            opened = blink.open_grant(bytes.fromhex(session_token.session_seed), nonce, grant)
            channel = blink.SessionChannel(opened.session_id, opened.session_key, nonce, opened.grant_nonce)
            command = {
                Field.PACKET_TYPE: PacketType.OPEN_LOCKER_WITH_TOKEN,
                Field.PAYLOAD: bytes.fromhex(token.payload),
                Field.PAYLOAD_AUTH: bytes.fromhex(token.payload_auth),
            }
            answer = channel.unwrap(await exchange(channel.wrap(command)))
            blink.raise_for_error(answer)
            assert answer[Field.PACKET_TYPE] == PacketType.LOCKER_OPENED
            await connection.disconnect()
            return int(answer[Field.LOCKER_ID]), record


def test_a_bumble_central_scans_connects_and_opens(control: SimControl, transport: str, settings: Settings) -> None:
    """A bumble central of another process (this one), with no harness client code, finds the tower by
    its raw scan record at the Android SDK's offsets, connects, opens a session and opens a door."""
    opened, record = asyncio.run(_open_over_bumble(transport, settings))
    assert str(blink.identity_from_scan_record(record).tower_id) == TOWER
    assert control.locker(opened)["status"] != "available"


async def _connect_and_vanish(transport: str) -> None:
    """Connect to the tower, then close the socket without a disconnection (a phone's app killed)."""
    hci_transport = await open_transport(transport)
    device = Device.with_hci("vanishing-phone", hci.Address.generate_static_address(), *hci_transport)
    await device.power_on()
    address, _ = await _Central(device).scan_for(TOWER)
    await device.connect(address, timeout=5.0)
    await hci_transport.close()


async def _connect_once(transport: str) -> float:
    """Seconds from the start of a scan to a connection with the tower, over a fresh transport."""
    async with await open_transport(transport) as hci_transport:
        device = Device.with_hci("next-phone", hci.Address.generate_static_address(), *hci_transport)
        await device.power_on()
        start = time.perf_counter()
        address, _ = await _Central(device).scan_for(TOWER)
        connection = await device.connect(address, timeout=5.0)
        took = time.perf_counter() - start
        await connection.disconnect()
        return took


def test_a_client_that_vanishes_leaves_the_tower_advertising(control: SimControl, transport: str) -> None:
    """A client that closes its socket while connected takes its controller off the link: the tower
    loses the link and advertises again, so the next client connects at once; nothing stays attached."""
    attached = control.radio()["clients"]  # this process's harness adapter may be connected already
    asyncio.run(_connect_and_vanish(transport))
    assert asyncio.run(_connect_once(transport)) < 2.0
    deadline = time.monotonic() + 5.0
    while control.radio()["clients"] > attached and time.monotonic() < deadline:
        time.sleep(0.02)  # the poll's pace; the bound is the deadline
    assert control.radio()["clients"] == attached


def test_two_clients_at_once_each_get_a_controller(control: SimControl, transport: str) -> None:
    """Two bumble hosts on the transport at the same time both scan the towers: each has its own
    controller (bumble's stock tcp-server would give the second the first one's)."""

    async def both() -> list[tuple[hci.Address, bytes]]:
        async with await open_transport(transport) as one, await open_transport(transport) as two:
            devices = [
                Device.with_hci(name, hci.Address.generate_static_address(), *t)
                for name, t in (("one", one), ("two", two))
            ]
            for device in devices:
                await device.power_on()
            assert control.radio()["clients"] >= 2
            return list(await asyncio.gather(*(_Central(d).scan_for(OTHER_TOWER) for d in devices)))

    first, second = asyncio.run(both())
    assert first[0] == second[0]


def test_the_radio_port_in_use_is_one_line_exit_2() -> None:
    """``python -m harness.sim --radio-port`` on a port already taken: one line on stderr, exit 2."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = subprocess.run(
            [sys.executable, "-m", "harness.sim", "--radio-port", str(port)],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.count("\n") == 1 and f"cannot bind the radio on 127.0.0.1:{port}" in done.stderr


def test_a_stopped_sandbox_fails_the_next_scan_at_once(transport: str) -> None:
    """When the radio's process goes away the client's adapter notices: the next scan fails with the
    harness's link error naming the radio, never a hang; a new sandbox is reached afresh."""
    from harness.errors import InfrastructureError

    sandbox = VirtualSandbox().start_subprocess(radio=True)
    address = sandbox.control.radio()["transport"]
    backend = choose_backend("virtual", link=address)
    try:
        asyncio.run(find_tower(backend, TowerId(TOWER), timeout=5.0))
    finally:
        sandbox.stop()
    start = time.perf_counter()
    with pytest.raises(InfrastructureError):
        asyncio.run(find_tower(backend, TowerId(TOWER), timeout=5.0))
    assert time.perf_counter() - start < 5.0
