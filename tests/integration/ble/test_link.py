"""A link like a radio's: the MTU the tower grants, writes over MTU - 3 refused, idle links dropped, the
tower's hang-up after TERMINATE_SESSION, a supervision timeout mid-exchange; and the client following the
SDK's policy for each: resume on a new link while retries allow, else exit 4 naming the phase, nothing
left held."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from bleak import BleakClient
from bleak.exc import BleakError

from harness.api import AsyncHarborClient, Locker
from harness.ble import BleDoorOpener, BleLinkError, PhaseTimer, Radio, SdkCode, TowerClient, find_tower
from harness.ble import protocol as blink
from harness.config import Settings
from harness.errors import ExitCode
from harness.flow import Released, Step, StepFinished, run_delivery
from harness.model import LockerStatus
from harness.sim import VirtualSandbox

TOWER = "0100000000000014"

pytestmark = pytest.mark.anyio


async def _until(condition: Callable[[], bool], timeout: float = 3.0) -> float:
    """Poll ``condition`` (bounded); the seconds it took."""
    start = time.monotonic()
    while not condition():
        if time.monotonic() - start > timeout:
            raise TimeoutError(f"not within {timeout} s")
        await asyncio.sleep(0.005)
    return time.monotonic() - start


async def _client(backend: Radio, **options: Any) -> TowerClient:
    found = await find_tower(backend, TOWER, timeout=5.0)
    client = TowerClient.over(backend, found.device, tower_id=TOWER, response_timeout=2.0, **options)
    await client.connect()
    return client


async def _first_available(api: AsyncHarborClient) -> Locker:
    lockers = [x for x in await api.list_lockers(TOWER) if x.status is LockerStatus.AVAILABLE]
    return min(lockers, key=lambda locker: locker.id)


def _held(sandbox: VirtualSandbox) -> dict[int, str]:
    return {
        locker["id"]: locker["status"]
        for locker in sandbox.control.state()["lockers"]
        if locker["status"] not in ("available", "out_of_service")
    }


# -- MTU -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("mtu", [23, 100, 247])
async def test_the_link_runs_at_the_mtu_the_tower_grants(
    settings: Settings, backend: Radio, sandbox: VirtualSandbox, mtu: int
) -> None:
    """The central asks for 247; the tower grants ``mtu``; a drop-off over that link is cut into MTU - 3
    byte writes and notifications and completes."""
    sandbox.radio.configure(mtu=mtu)
    async with AsyncHarborClient(settings) as api:
        locker = sorted(
            (x for x in await api.list_lockers(TOWER) if x.status is LockerStatus.AVAILABLE), key=lambda x: x.id
        )[0]
        await api.reserve(TOWER, locker.id, 300)
        token = await api.create_dropoff_token(TOWER, locker.id, 600, "")
        async with await _client(backend) as tower:
            assert tower.mtu == mtu
            await tower.start_session(api.create_session_token)
            assert await tower.open_with_token(token.payload, token.payload_auth) == locker.id
            await tower.wait_door_closed(timeout=5.0, poll_interval=0.005)


def test_an_mtu_outside_23_to_247_is_refused(sandbox: VirtualSandbox) -> None:
    """The radio's MTU is bounded as the Core spec and the towers' grant are (assumptions.ATT_MTU_*)."""
    for mtu in (22, 248):
        with pytest.raises(ValueError, match=r"23\.\.247"):
            sandbox.radio.configure(mtu=mtu)


@pytest.mark.parametrize(("mtu", "size"), [(247, 260), (247, 245), (23, 21)])
async def test_a_write_over_mtu_minus_3_is_refused_by_the_stack(sandbox: VirtualSandbox, mtu: int, size: int) -> None:
    """Plain bleak on the virtual radio: a write without response longer than MTU - 3 is refused before it
    reaches the air, as BlueZ and WinRT refuse it; MTU - 3 bytes exactly go through."""
    from harness.ble._virtual import VirtualBleakClient

    sandbox.radio.configure(mtu=mtu)
    found = await find_tower(_radio(sandbox), TOWER)
    async with BleakClient(found.device, backend=VirtualBleakClient, link=sandbox.radio.link, timeout=5.0) as client:
        assert client.mtu_size == mtu
        with pytest.raises(BleakError, match=f"at most {mtu - 3}"):
            await client.write_gatt_char(blink.RX_UUID, bytes(size), response=False)
        await client.write_gatt_char(blink.RX_UUID, bytes(mtu - 3), response=False)


def _radio(sandbox: VirtualSandbox) -> Radio:
    from harness.ble import choose_backend

    return choose_backend("virtual", link=sandbox.radio.link)


async def test_a_client_that_ignores_the_mtu_fails_with_a_clear_error(
    settings: Settings, backend: Radio, sandbox: VirtualSandbox
) -> None:
    """The client switch ``ignore_mtu`` writes each packet in one piece: at MTU 23 the session request
    (hundreds of bytes) is refused by the stack, and the client fails at once with exit 4, naming the
    phase, the write and the MTU; the same client chunking as the SDK does succeeds."""
    sandbox.radio.configure(mtu=23)
    async with AsyncHarborClient(settings) as api:
        async with await _client(backend, ignore_mtu=True) as broken:
            with pytest.raises(BleLinkError) as failed:
                await broken.start_session(api.create_session_token)
        assert failed.value.code is SdkCode.UPDATE_CHARACTERISTIC_FAILED
        assert failed.value.phase == "session" and failed.value.exit_code is ExitCode.INFRASTRUCTURE
        assert "refused" in str(failed.value) and "ATT MTU 23" in str(failed.value)
        async with await _client(backend) as chunking:
            await chunking.start_session(api.create_session_token)


async def test_the_tower_drops_a_write_longer_than_the_mtu(sandbox: VirtualSandbox) -> None:
    """A central that sends an over-long ATT write anyway (bumble itself does not check) gets no answer:
    the tower's ATT server drops it. A long write with response (prepare + execute) gets an ATT error
    (invalid attribute length), not an acknowledgement. The next well-formed write is answered as ever."""
    from bumble import att
    from bumble.device import Device, Peer
    from bumble.hci import Address
    from bumble.host import Host
    from bumble.transport.common import AsyncPipeSink

    sandbox.radio.configure(mtu=23)
    link = sandbox.radio.link
    tower_address = Address((await find_tower(_radio(sandbox), TOWER)).device.address)
    request = blink.encode_packet({blink.Field.PACKET_TYPE: blink.PacketType.CHECK_LOCKER_DOOR})
    assert len(request) <= 20

    async def exchange() -> tuple[list[bytes], int | None, list[bytes]]:
        controller = link.central_controller("raw-writer", "C0:00:00:00:FF:02")
        device = Device(
            name="raw", address=Address("C0:00:00:00:FF:02"), host=Host(controller, AsyncPipeSink(controller))
        )
        await device.power_on()
        connection = await device.connect(tower_address, timeout=5.0)
        peer = Peer(connection)
        await peer.request_mtu(247)
        [service] = await peer.discover_service(blink.NUS_SERVICE_UUID)
        characteristics = {str(c.uuid).lower(): c for c in await peer.discover_characteristics(service=service)}
        rx, tx = characteristics[blink.RX_UUID], characteristics[blink.TX_UUID]
        replies: asyncio.Queue[bytes] = asyncio.Queue()
        await peer.subscribe(tx, replies.put_nowait)
        await peer.write_value(rx, request + bytes(30), with_response=False)  # 30 bytes over MTU - 3
        late: list[bytes] = []
        with contextlib.suppress(TimeoutError):
            late.append(await asyncio.wait_for(replies.get(), 0.3))  # bounded: an answer would come in ms
        refused: int | None = None
        try:
            await peer.write_value(rx, request + bytes(300), with_response=True)
        except att.ATT_Error as error:
            refused = error.error_code
        with contextlib.suppress(TimeoutError):
            late.append(await asyncio.wait_for(replies.get(), 0.3))
        await peer.write_value(rx, request, with_response=False)
        reassembler, answered = blink.Reassembler(), []
        while not answered:  # the reply comes in MTU - 3 byte notifications
            answered = reassembler.feed(await asyncio.wait_for(replies.get(), 5.0))
        await connection.disconnect()
        await device.power_off()
        return late, refused, answered

    assert link.loop is not None
    late, refused, answered = await asyncio.wait_for(
        asyncio.wrap_future(asyncio.run_coroutine_threadsafe(exchange(), link.loop)), 10.0
    )
    assert late == []
    assert refused == att.ATT_INVALID_ATTRIBUTE_LENGTH_ERROR
    assert blink.decode_packet(answered[0])[blink.Field.ERROR_CODE] == blink.FirmwareCode.AUTH_NO_SESSION


# -- idle links and the hang-up after TERMINATE_SESSION -------------------------------------------------


async def test_the_tower_drops_an_idle_link_and_the_client_says_so(backend: Radio, sandbox: VirtualSandbox) -> None:
    """Nothing written for longer than the idle timeout: the tower drops the link; the next command fails
    with exit 4, naming its phase and saying the tower dropped the link before it."""
    sandbox.radio.configure(idle_timeout=0.2)
    tower = await _client(backend)
    took = await _until(lambda: not tower.is_connected)
    assert took >= 0.1  # dropped for idleness, not at once
    with pytest.raises(BleLinkError) as failed:
        await tower.doors_open()
    assert failed.value.code is SdkCode.NOT_CONNECTED_WITH_TOWER and failed.value.phase == "door"
    assert "dropped the link" in str(failed.value) and "before this command" in str(failed.value)
    await tower.disconnect()


async def test_a_busy_link_is_not_idle(settings: Settings, backend: Radio, sandbox: VirtualSandbox) -> None:
    """Commands more often than the idle timeout keep the link up past it (the timeout, shortened on the
    live link, applies at once: the session's token call before it may take long on a loaded machine)."""
    async with AsyncHarborClient(settings) as api, await _client(backend) as tower:
        await tower.start_session(api.create_session_token)
        sandbox.radio.configure(idle_timeout=0.5)
        start = time.monotonic()
        while time.monotonic() - start < 1.5:  # three idle timeouts long
            await tower.doors_open()
            await asyncio.sleep(0.1)  # the pace of the commands, well under the idle timeout
        assert tower.is_connected


async def test_a_shorter_idle_timeout_applies_to_a_live_link_at_once(
    settings: Settings, backend: Radio, sandbox: VirtualSandbox
) -> None:
    """A link in session at the default idle timeout gets the shortened one at once: its next idle check
    is moved to within the new timeout (before, it came at the check the old timeout had scheduled, up to
    a second later), and the link is dropped."""

    async def idle_checks() -> list[tuple[object, float]]:
        # On the radio's loop: each live link's scheduled idle check and the seconds until it runs.
        loop = asyncio.get_running_loop()
        return [
            (link.idle_check, link.idle_check.when() - loop.time())
            for peripheral in sandbox.radio._peripherals
            for link in peripheral._links.values()
            if link.idle_check is not None
        ]

    async with AsyncHarborClient(settings) as api, await _client(backend) as tower:
        await tower.start_session(api.create_session_token)
        before = sandbox.radio.call(idle_checks())
        sandbox.radio.configure(idle_timeout=0.2)
        after = sandbox.radio.call(idle_checks())  # queued behind the reschedule configure asked for
        assert len(after) == len(before) == 1
        assert after[0][0] is not before[0][0] and after[0][1] <= 0.2, (before, after)
        await _until(lambda: not tower.is_connected)


async def test_the_tower_hangs_up_after_terminate_session(
    settings: Settings, backend: Radio, sandbox: VirtualSandbox
) -> None:
    """TERMINATE_SESSION is acknowledged, then the tower drops the link (assumption
    TOWER_DISCONNECTS_AFTER_TERMINATE); the client's own disconnect afterwards (the SDK's) is harmless."""
    assert blink.assumptions.TOWER_DISCONNECTS_AFTER_TERMINATE
    async with AsyncHarborClient(settings) as api:
        tower = await _client(backend)
        await tower.start_session(api.create_session_token)
        await tower.terminate()
        await _until(lambda: not tower.is_connected)
        await tower.disconnect()


# -- the client's policy: resume, or exit 4 naming the phase; nothing held --------------------------------


def _slow_session_token(api: AsyncHarborClient, delay: float, times: int) -> Callable[..., Awaitable[Any]]:
    """The API's session-token call, ``delay`` seconds slower the first ``times`` calls (a slow backend
    while the phone's link idles)."""
    calls = [0]

    async def token(tower_id: str, version: str) -> Any:
        calls[0] += 1
        if calls[0] <= times:
            await asyncio.sleep(delay)  # the slow API itself, not a wait for state
        return await api.create_session_token(tower_id, version)

    return token


@pytest.mark.parametrize("retries", [0, 1])
async def test_a_link_dropped_while_the_api_is_slow_fails_the_session_or_is_resumed(
    settings: Settings, backend: Radio, sandbox: VirtualSandbox, retries: int
) -> None:
    """The tower drops the link while the phone waits for a slow session token: without retries the
    delivery is red at the drop-off, exit 4, the error naming the session phase, and nothing is left held;
    with one retry the opener starts over (scan, connect, session) and the delivery completes."""
    sandbox.radio.configure(idle_timeout=0.6)  # well above a session-token call, even on a loaded machine
    async with AsyncHarborClient(settings) as api:
        opener = BleDoorOpener(
            backend,
            session_token=_slow_session_token(api, 1.5, times=1),
            upload_events=api.upload_tower_events,
            timer=PhaseTimer(),
            response_timeout=2.0,
            retries=retries,
        )
        events: list[Any] = []
        async with opener:
            if retries:
                delivery = await run_delivery(
                    api, opener, tower_id=TOWER, status_timeout=5.0, listeners=[events.append]
                )
                assert delivery.locker.status is LockerStatus.AVAILABLE
                assert [failure.phase for failure in opener.link_failures] == ["session"]
                return
            with pytest.raises(BleLinkError) as failed:
                await run_delivery(api, opener, tower_id=TOWER, status_timeout=5.0, listeners=[events.append])
    assert failed.value.phase == "session" and failed.value.exit_code is ExitCode.INFRASTRUCTURE
    assert "dropped the link" in str(failed.value)
    assert [e.step for e in events if isinstance(e, StepFinished) and not e.ok] == [Step.OPEN_FOR_DROPOFF]
    assert _held(sandbox) == {}


@pytest.mark.parametrize("fault", ["ble_supervision_timeout", "ble_disconnect"])
async def test_a_link_lost_while_the_door_is_open_is_resumed(
    settings: Settings, backend: Radio, sandbox: VirtualSandbox, fault: str
) -> None:
    """The link is lost while the phone waits for the door (a supervision timeout, or the tower
    disconnecting): with a retry the opener reconnects, opens a new session, watches the door with
    CHECK_ALL_LOCKER_DOORS, syncs and ends the session; the API shows occupied."""
    async with AsyncHarborClient(settings) as api:
        locker = await _first_available(api)
        await api.reserve(TOWER, locker.id, 300)
        token = await api.create_dropoff_token(TOWER, locker.id, 600, "")
        async with BleDoorOpener.for_api(api, backend, timer=PhaseTimer(), response_timeout=2.0, retries=1) as opener:
            sandbox.radio.person.dwell = 0.3
            assert await opener.open(locker, token) == locker.id
            sandbox.control.set_faults(fault, count=1)
            await opener.wait_closed(locker, timeout=5.0)
        assert len(opener.link_failures) == 1 and opener.link_failures[0].phase == "door"
    assert sandbox.world.states[locker.id].status is LockerStatus.OCCUPIED
    async with AsyncHarborClient(settings) as api:
        assert (await api.get_locker(TOWER, locker.id)).status is LockerStatus.OCCUPIED


@pytest.mark.parametrize("fault", ["idle", "ble_supervision_timeout"])
async def test_a_link_lost_while_the_door_is_open_without_retries_is_exit_4(
    settings: Settings, backend: Radio, sandbox: VirtualSandbox, fault: str
) -> None:
    """Without retries the same loss (or an idle drop: the phone polls the door more slowly than the tower's
    idle timeout while the person takes long) fails the wait with exit 4, naming the door phase, and the
    opener leaves no link open."""
    async with AsyncHarborClient(settings) as api:
        locker = await _first_available(api)
        await api.reserve(TOWER, locker.id, 300)
        token = await api.create_dropoff_token(TOWER, locker.id, 600, "")
        async with BleDoorOpener.for_api(api, backend, timer=PhaseTimer(), response_timeout=2.0) as opener:
            sandbox.radio.person.dwell = 1.0
            await opener.open(locker, token)
            if fault == "idle":  # shortened once the door is open: the session before it may be slow
                sandbox.radio.configure(idle_timeout=0.15)
                opener.door_poll_interval = 0.3  # slower than the tower's patience
            else:
                sandbox.control.set_faults(fault, count=1)
            with pytest.raises(BleLinkError) as failed:
                await opener.wait_closed(locker, timeout=5.0)
            assert not opener._open  # no link left open
    assert failed.value.phase == "door" and failed.value.exit_code is ExitCode.INFRASTRUCTURE


@pytest.mark.parametrize("after", [Step.OPEN_FOR_DROPOFF, Step.CLOSE_AFTER_DROPOFF])
async def test_a_link_lost_after_the_drop_off_without_retries_still_takes_the_item_out(
    settings: Settings, backend: Radio, sandbox: VirtualSandbox, after: Step
) -> None:
    """The link is lost with the test item inside (while the phone watches the door, or while it syncs
    the tower's events after the close), no retries: the delivery fails with exit 4 naming the phase,
    and the give-back learns the door's state over a new link (it does not claim the door was left
    open), takes the item out with a pickup token, and leaves the locker available."""
    sandbox.radio.person.dwell = 0.3 if after is Step.OPEN_FOR_DROPOFF else 0.05
    events: list[Any] = []

    def lose_the_link(event: Any) -> None:
        events.append(event)
        if isinstance(event, StepFinished) and event.step is after and event.ok:
            sandbox.control.set_faults("ble_supervision_timeout", count=1)

    async with (
        AsyncHarborClient(settings) as api,
        BleDoorOpener.for_api(api, backend, timer=PhaseTimer(), response_timeout=2.0) as opener,
    ):
        with pytest.raises(BleLinkError) as failed:
            await run_delivery(api, opener, tower_id=TOWER, status_timeout=5.0, listeners=[lose_the_link])
    assert failed.value.exit_code is ExitCode.INFRASTRUCTURE
    released = [event for event in events if isinstance(event, Released)]
    assert len(released) == 1 and released[0].ok, released
    assert "took the test item out" in released[0].note and "left open" not in released[0].note
    assert _held(sandbox) == {}


async def test_a_lost_open_reply_is_resumed_from_the_open_door(
    settings: Settings, backend: Radio, sandbox: VirtualSandbox
) -> None:
    """The tower opened the door but its LOCKER_OPENED was lost: the retry finds the door still open
    (CHECK_ALL_LOCKER_DOORS) and resumes from there instead of presenting the token again (which an open
    door refuses, and a single-use token would too); the delivery completes."""
    sandbox.radio.person.dwell = 1.0  # a person takes a moment: the door is still open at the retry
    sandbox.control.set_faults("ble_lost_notification", count=1)
    async with (
        AsyncHarborClient(settings) as api,
        BleDoorOpener.for_api(api, backend, timer=PhaseTimer(), response_timeout=0.3, retries=1) as opener,
    ):
        delivery = await run_delivery(api, opener, tower_id=TOWER, status_timeout=5.0)
    assert delivery.locker.status is LockerStatus.AVAILABLE
    assert [(f.code, f.phase) for f in opener.link_failures] == [(SdkCode.RESPONSE_TIMEOUT, "open")]
