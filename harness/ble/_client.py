"""``TowerClient``: what Harbor's phone SDK does over BLE, over any bleak client, every phase timed.

    client = TowerClient(bleak_client, tower_id="0100000000000014")
    await client.connect()                              # link, UART characteristics, device info
    await client.start_session(api.create_session_token)
    locker_id = await client.open_with_token(token.payload, token.payload_auth)
    await client.wait_door_closed()
    await client.sync_events(api.upload_tower_events)
    await client.terminate()

One command is in flight at a time (the SDK's queue [S]); each (its writes and its reply) is
bounded by ``response_timeout`` (20 s as the SDK has it), and so is every other call into the
radio (scanner start and stop, GATT setup, disconnect): nothing here waits on bleak unbounded.
Every failure leaves as a harness error: ``TowerRefused`` (the tower's verdict, with its firmware
code), ``BleLinkError`` (the link failed: infrastructure) or ``BluetoothUnavailable``. The client
never sees httpx: the session token and the event upload are callables (the API client's
``create_session_token`` and ``upload_tower_events`` fit).
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

from bleak import BleakClient
from bleak.backends.characteristic import BleakGATTCharacteristic
from bleak.backends.device import BLEDevice
from bleak.backends.scanner import AdvertisementData

from harness.ble import protocol as blink
from harness.ble._backend import Radio
from harness.ble._errors import BleLinkError, translate
from harness.ble._timing import Phase, PhaseTimer
from harness.ble.protocol import Field, FirmwareCode, PacketType, SdkCode, TowerIdentity
from harness.errors import HarnessError, InfrastructureError, ProductDefect
from harness.model import TowerEventBatch, TowerId

__all__ = [
    "DEFAULT_RESPONSE_TIMEOUT",
    "FoundTower",
    "TowerClient",
    "discover_towers",
    "find_tower",
]

log = logging.getLogger(__name__)

_T = TypeVar("_T")

#: The SDK's response timeout [S]: "Time out packet wait" after 20 s.
DEFAULT_RESPONSE_TIMEOUT = 20.0
#: Session claim the first-party examples use (role 5, developer) [S].
DEFAULT_CLAIMS = ("developer",)
#: The SDK's session-token duration for ``sendRequestSession`` [S].
DEFAULT_SESSION_DURATION = 3600
#: Seconds for a call into the local radio that carries no command (scanner start and stop): the OS
#: answers in milliseconds, but a stuck D-Bus or bumble call must not hang a run.
RADIO_CALL_TIMEOUT = 10.0


def _hex(value: str | bytes) -> bytes:
    return value if isinstance(value, bytes) else bytes.fromhex(value)


async def _maybe_await(value: _T | Awaitable[_T]) -> _T:
    if inspect.isawaitable(value):
        return await value
    return value


@dataclass(frozen=True, slots=True)
class FoundTower:
    """A tower seen on the air: the device to connect to and who it says it is."""

    device: BLEDevice
    identity: TowerIdentity
    rssi: int | None = None


#: ``(tower_id, firmware_version) -> token`` with ``payload``, ``payload_auth``, ``session_seed``
#: (hex) as attributes or keys; may be a coroutine function. ``api.create_session_token`` fits.
SessionTokenSource = Callable[[TowerId, str], Any]
#: ``(tower_id, batches) -> anything``; may be a coroutine function. ``api.upload_tower_events`` fits.
EventUpload = Callable[[TowerId, Sequence[TowerEventBatch]], Any]


def _token_part(token: Any, name: str) -> bytes:
    value = token.get(name) if isinstance(token, Mapping) else getattr(token, name, None)
    if not isinstance(value, str | bytes):
        raise InfrastructureError(f"the session token has no {name}")
    return _hex(value)


@contextmanager
def _edge(phase: Phase, tower_id: str | None, locker_id: int | None = None) -> Iterator[None]:
    """Translate whatever escapes a BLE step into the harness's tree, naming the phase."""
    try:
        yield
    except HarnessError:
        raise
    except Exception as exc:
        raise translate(exc, phase=phase.short, tower_id=tower_id, locker_id=locker_id) from exc


async def find_tower(
    backend: Radio,
    tower_id: str | None = None,
    *,
    timeout: float = 20.0,
    timer: PhaseTimer | None = None,
) -> FoundTower:
    """Scan for the Nordic UART service until ``tower_id`` (or any tower) advertises itself."""
    wanted = None if tower_id is None else TowerId(tower_id)
    loop = asyncio.get_running_loop()
    found: asyncio.Future[FoundTower] = loop.create_future()

    def seen(device: BLEDevice, advertisement: AdvertisementData) -> None:
        identity = TowerIdentity.from_manufacturer_data(advertisement.manufacturer_data)
        if identity is None or found.done():
            return
        if wanted is None or identity.tower_id == wanted:
            found.set_result(FoundTower(device, identity, advertisement.rssi))

    with _edge(Phase.SCAN, wanted):
        start = time.perf_counter_ns()
        scanner = backend.scanner(seen, [blink.NUS_SERVICE_UUID])
        await asyncio.wait_for(scanner.start(), RADIO_CALL_TIMEOUT)
        try:
            result = await asyncio.wait_for(found, timeout)
        except TimeoutError:
            raise BleLinkError(
                f"no {f'tower {wanted}' if wanted else 'tower'} advertised within {timeout:g} s",
                code=SdkCode.DISCOVERY_FAILED,
                phase=Phase.SCAN.short,
                tower_id=wanted,
            ) from None
        finally:
            await asyncio.wait_for(scanner.stop(), RADIO_CALL_TIMEOUT)
        if timer is not None:
            timer.record(Phase.SCAN, time.perf_counter_ns() - start)
        return result


async def discover_towers(backend: Radio, *, duration: float = 2.0) -> list[FoundTower]:
    """Every tower advertising within ``duration`` seconds, by tower id."""
    towers: dict[str, FoundTower] = {}

    def seen(device: BLEDevice, advertisement: AdvertisementData) -> None:
        identity = TowerIdentity.from_manufacturer_data(advertisement.manufacturer_data)
        if identity is not None:
            towers[identity.tower_id] = FoundTower(device, identity, advertisement.rssi)

    with _edge(Phase.SCAN, None):
        scanner = backend.scanner(seen, [blink.NUS_SERVICE_UUID])
        await asyncio.wait_for(scanner.start(), RADIO_CALL_TIMEOUT)
        try:
            await asyncio.sleep(duration)  # a scan window: listening is the point, not waiting for state
        finally:
            await asyncio.wait_for(scanner.stop(), RADIO_CALL_TIMEOUT)
    return sorted(towers.values(), key=lambda tower: tower.identity.tower_id)


class TowerClient:
    """One phone talking Blink to one tower through a bleak client (any backend)."""

    def __init__(
        self,
        client: BleakClient,
        *,
        tower_id: str | None = None,
        response_timeout: float = DEFAULT_RESPONSE_TIMEOUT,
        timer: PhaseTimer | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._client = client
        self.expected_tower_id = None if tower_id is None else TowerId(tower_id)
        self.response_timeout = response_timeout
        self.timer = timer if timer is not None else PhaseTimer()
        self._clock = clock
        self.identity: TowerIdentity | None = None
        self._rx: BleakGATTCharacteristic | None = None
        self._reassembler = blink.Reassembler()
        self._in_flight = asyncio.Lock()
        self._pending: asyncio.Future[blink.Packet] | None = None
        self._channel: blink.SessionChannel | None = None
        self._opened_at_ns: int | None = None
        self.last_opened: int | None = None

    @classmethod
    def over(
        cls,
        backend: Radio,
        device: BLEDevice | str,
        *,
        connect_timeout: float = 20.0,
        **options: Any,
    ) -> TowerClient:
        """A client for ``device`` on ``backend``; the bleak client reports disconnections to it."""
        holder: list[TowerClient] = []
        bleak_client = backend.client(
            device,
            timeout=connect_timeout,
            disconnected_callback=lambda _c: holder[0]._on_disconnected(),
            services=[blink.NUS_SERVICE_UUID],  # the SDK's scan filter; phones resolve only this service
        )
        client = cls(bleak_client, **options)
        holder.append(client)
        return client

    @property
    def tower_id(self) -> str | None:
        return self.identity.tower_id if self.identity is not None else self.expected_tower_id

    @property
    def in_session(self) -> bool:
        return self._channel is not None

    @property
    def is_connected(self) -> bool:
        return bool(self._client.is_connected)

    # -- link -------------------------------------------------------------------------------------

    async def connect(self) -> TowerIdentity:
        """Connect, find the UART characteristics, enable TX notifications, read device info."""
        with _edge(Phase.CONNECT, self.tower_id), self.timer.time(Phase.CONNECT):
            await self._client.connect()
        with _edge(Phase.DISCOVERY, self.tower_id), self.timer.time(Phase.DISCOVERY):
            services = self._client.services
            rx = services.get_characteristic(blink.RX_UUID)
            tx = services.get_characteristic(blink.TX_UUID)
            info = services.get_characteristic(blink.DEVICE_INFO_UUID)
            if rx is None or tx is None or info is None:
                raise BleLinkError(
                    "the device has no Harbor UART characteristics (RX, TX, device info)",
                    code=SdkCode.DISCOVERY_CHARACTERISTIC_FAILED,
                    phase=Phase.DISCOVERY.short,
                    tower_id=self.tower_id,
                )
            self._rx = rx
            async with asyncio.timeout(self.response_timeout):
                await self._client.start_notify(tx, self._on_notification)
                identity = TowerIdentity.from_device_info(bytes(await self._client.read_gatt_char(info)))
        if self.expected_tower_id is not None and identity.tower_id != self.expected_tower_id:
            await self.disconnect()
            raise InfrastructureError(
                f"connected to tower {identity.tower_id}, not the expected {self.expected_tower_id}"
            )
        self.identity = identity
        return identity

    async def disconnect(self) -> None:
        """Drop the link (and the session with it); safe to call twice."""
        self._channel = None
        self._fail_pending(blink.SdkError("the harness disconnected", code=SdkCode.CANCELED))
        with _edge(Phase.TERMINATE, self.tower_id):
            await asyncio.wait_for(self._client.disconnect(), self.response_timeout)

    async def __aenter__(self) -> TowerClient:
        if self.identity is None or not self.is_connected:
            await self.connect()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        try:
            if self.in_session and self.is_connected:
                await self.terminate()
        except HarnessError as exc:
            log.debug("terminate on exit failed: %s", exc)
        finally:
            await self.disconnect()

    def _on_disconnected(self) -> None:
        self._channel = None
        # A protocol error, not yet a harness one: the phase's edge translates it and names the phase.
        self._fail_pending(blink.SdkError("the tower dropped the link", code=SdkCode.NOT_CONNECTED_WITH_TOWER))

    def _fail_pending(self, error: BaseException) -> None:
        if self._pending is not None and not self._pending.done():
            self._pending.set_exception(error)

    def _on_notification(self, _characteristic: BleakGATTCharacteristic, data: bytearray) -> None:
        try:
            packets = self._reassembler.feed(bytes(data))
        except blink.DecodeError as exc:
            self._fail_pending(exc)
            return
        for raw in packets:
            pending = self._pending
            if pending is None or pending.done():
                log.debug("unsolicited %d-byte packet from tower %s dropped", len(raw), self.tower_id)
                continue
            try:
                pending.set_result(blink.decode_packet(raw))
            except blink.DecodeError as exc:
                pending.set_exception(exc)

    # -- one command in flight ------------------------------------------------------------------------

    async def _exchange(self, packet: blink.Packet) -> blink.Packet:
        """Write one packet in MTU-sized chunks and wait for the one packet that answers it; the
        writes and the wait share one ``response_timeout`` (a write the radio never acknowledges
        is as much a silent tower as a reply that never comes)."""
        if self._rx is None or not self.is_connected:
            raise blink.SdkError("not connected to the tower", code=SdkCode.NOT_CONNECTED_WITH_TOWER)
        async with self._in_flight:
            self._reassembler.clear()
            loop = asyncio.get_running_loop()
            pending: asyncio.Future[blink.Packet] = loop.create_future()
            self._pending = pending
            try:
                raw = blink.encode_packet(packet)
                async with asyncio.timeout(self.response_timeout):
                    for chunk in blink.chunks(raw, self._client.mtu_size):
                        await self._client.write_gatt_char(self._rx, chunk, response=False)
                    return await pending
            finally:
                self._pending = None

    async def _command(self, inner: blink.Packet, expect: PacketType) -> blink.Packet:
        """Send an in-session command and return the reply's inner map; the tower's refusals raise."""
        channel = self._channel
        if channel is None:
            raise blink.SdkError("no session with the tower", code=SdkCode.NOT_CONNECTED_WITH_TOWER)
        reply = await self._exchange(channel.wrap(inner))
        blink.raise_for_error(reply)  # a clear SESSION_ERROR: the wrapper itself was refused
        answer = channel.unwrap(reply)
        blink.raise_for_error(answer)
        if answer.get(Field.PACKET_TYPE) != expect:
            raise blink.DecodeError(f"expected {expect.name}, got packet type {answer.get(Field.PACKET_TYPE)}")
        return answer

    # -- session --------------------------------------------------------------------------------------

    async def start_session(
        self,
        session_token: SessionTokenSource,
        *,
        token: Any = None,
    ) -> None:
        """Fetch a session token for this tower (unless ``token`` is given), then REQUEST_SESSION ->
        GRANT_SESSION, and keep the session's keys."""
        identity = self._require_identity()
        if token is None:
            with self.timer.time(Phase.SESSION_TOKEN):
                token = await _maybe_await(session_token(identity.tower_id, identity.firmware_version or "0.0.0"))
        with _edge(Phase.SESSION, identity.tower_id), self.timer.time(Phase.SESSION):
            payload, payload_auth = _token_part(token, "payload"), _token_part(token, "payload_auth")
            seed = _token_part(token, "session_seed")
            nonce = blink.new_nonce()
            reply = await self._exchange(
                blink.request_session(payload, payload_auth, nonce=nonce, timestamp=int(self._clock()))
            )
            blink.raise_for_error(reply)
            if reply.get(Field.PACKET_TYPE) != PacketType.GRANT_SESSION:
                raise blink.DecodeError(f"expected GRANT_SESSION, got packet type {reply.get(Field.PACKET_TYPE)}")
            grant = blink.open_grant(seed, nonce, reply)
            self._channel = blink.SessionChannel(grant.session_id, grant.session_key, nonce, grant.grant_nonce)

    async def terminate(self, code: int = 0, message: str = "") -> None:
        """TERMINATE_SESSION; a non-zero code needs a message and is logged by the tower as an error [S]."""
        if code and not message:
            raise ValueError("a non-zero terminate code needs a message")
        inner: blink.Packet = {Field.PACKET_TYPE: PacketType.TERMINATE_SESSION, Field.ERROR_CODE: code}
        if message:
            inner[Field.ERROR_MESSAGE] = message
        with _edge(Phase.TERMINATE, self.tower_id), self.timer.time(Phase.TERMINATE):
            try:
                await self._command(inner, PacketType.ACK)
            finally:
                self._channel = None

    # -- lockers --------------------------------------------------------------------------------------

    async def open_with_token(
        self,
        payload: str | bytes,
        payload_auth: str | bytes,
        *,
        expect_locker: int | None = None,
        at_locker: int | None = None,
    ) -> int:
        """OPEN_LOCKER_WITH_TOKEN -> LOCKER_OPENED; returns the opened locker's id.

        ``at_locker`` names the door meant (field 70, ``assumptions.OPEN_MAY_NAME_LOCKER``), so the
        tower can refuse a token for another locker; the SDK never sends it.
        """
        inner: blink.Packet = {
            Field.PACKET_TYPE: PacketType.OPEN_LOCKER_WITH_TOKEN,
            Field.PAYLOAD: _hex(payload),
            Field.PAYLOAD_AUTH: _hex(payload_auth),
        }
        if at_locker is not None:
            inner[Field.LOCKER_ID] = at_locker
            expect_locker = at_locker if expect_locker is None else expect_locker
        with _edge(Phase.OPEN, self.tower_id, at_locker or expect_locker), self.timer.time(Phase.OPEN):
            answer = await self._command(inner, PacketType.LOCKER_OPENED)
        self._opened_at_ns = time.perf_counter_ns()
        locker_id = answer.get(Field.LOCKER_ID)
        if not isinstance(locker_id, int) or isinstance(locker_id, bool):
            raise translate(blink.DecodeError("LOCKER_OPENED has no locker_id"), phase="open", tower_id=self.tower_id)
        self.last_opened = locker_id
        if expect_locker is not None and locker_id != expect_locker and blink.assumptions.LOCKER_OPENED_REPORTS_API_ID:
            raise ProductDefect(
                f"the token for locker {expect_locker} opened locker {locker_id}",
                check="ble_token_opens_its_own_locker",
                step="open",
            )
        return locker_id

    async def reopen(self) -> int:
        """REOPEN_LOCKER: the last locker opened in this session again (SYS_LAST_OPEN if none)."""
        with _edge(Phase.OPEN, self.tower_id, self.last_opened), self.timer.time(Phase.OPEN):
            answer = await self._command({Field.PACKET_TYPE: PacketType.REOPEN_LOCKER}, PacketType.LOCKER_OPENED)
        self._opened_at_ns = time.perf_counter_ns()
        locker_id = answer.get(Field.LOCKER_ID)
        return locker_id if isinstance(locker_id, int) else -1

    async def door_open(self) -> bool:
        """CHECK_LOCKER_DOOR on the last opened locker: is its door open?"""
        with _edge(Phase.DOOR, self.tower_id, self.last_opened):
            answer = await self._command(
                {Field.PACKET_TYPE: PacketType.CHECK_LOCKER_DOOR}, PacketType.LOCKER_DOOR_STATE
            )
        return bool(answer.get(Field.LOCKER_DOOR_OPEN))

    async def wait_door_closed(self, *, timeout: float = 120.0, poll_interval: float = 0.05) -> int:
        """Poll CHECK_LOCKER_DOOR until the door is shut; records door-open -> door-closed.

        Bounded by ``timeout`` (a person on a bench may take a while); returns the polls made.
        """
        deadline = time.monotonic() + timeout
        polls = 0
        while True:
            polls += 1
            if not await self.door_open():
                break
            if time.monotonic() >= deadline:
                raise InfrastructureError(
                    f"the door of locker {self.last_opened} was not closed within {timeout:g} s ({polls} checks)"
                )
            await asyncio.sleep(poll_interval)  # paces the tower polls, as the SDK's examples do (1 s x 6)
        if self._opened_at_ns is not None:
            self.timer.record(Phase.DOOR, time.perf_counter_ns() - self._opened_at_ns)
            self._opened_at_ns = None
        return polls

    # -- events ---------------------------------------------------------------------------------------

    async def sync_events(
        self,
        upload: EventUpload,
        *,
        busy_retries: int = 10,
        busy_delay: float = 2.0,
        max_batches: int = 1000,
    ) -> int:
        """Carry the tower's events to Harbor (9.7): status, pull, upload, mark seen; returns events moved.

        A busy tower (SYS_SYNC_BUSY) is asked again after ``busy_delay`` s, ``busy_retries`` times,
        as the SDK does (2 s x 10) [S].
        """
        tower_id = self._require_identity().tower_id
        moved = 0
        with self.timer.time(Phase.SYNC):
            with _edge(Phase.SYNC, tower_id):
                status = await self._busy_retry(
                    {Field.PACKET_TYPE: PacketType.REQUEST_SYNC_STATUS},
                    PacketType.SYNC_STATUS,
                    busy_retries,
                    busy_delay,
                )
            start = int(status.get(Field.SYNC_EVENT_START, 0))
            remaining = int(status.get(Field.SYNC_EVENT_COUNT, 0))
            for _ in range(max_batches):
                if remaining <= 0:
                    break
                with _edge(Phase.SYNC, tower_id):
                    events = await self._busy_retry(
                        {Field.PACKET_TYPE: PacketType.SYNC_PULL, Field.SYNC_EVENT_START: start},
                        PacketType.SYNC_EVENTS,
                        busy_retries,
                        busy_delay,
                    )
                batch = TowerEventBatch(
                    sync_event_start=int(events.get(Field.SYNC_EVENT_START, start)),
                    sync_event_count=int(events.get(Field.SYNC_EVENT_COUNT, 0)),
                    payload=bytes(events.get(Field.PAYLOAD, b"")).hex(),
                    payload_auth=bytes(events.get(Field.PAYLOAD_AUTH, b"")).hex(),
                )
                if batch.sync_event_count <= 0:
                    break
                await _maybe_await(upload(tower_id, [batch]))
                next_unseen = batch.sync_event_start + batch.sync_event_count
                with _edge(Phase.SYNC, tower_id):
                    await self._command(
                        {Field.PACKET_TYPE: PacketType.SYNC_MARK_SEEN_EVENTS, Field.SYNC_EVENT_START: next_unseen},
                        PacketType.ACK,
                    )
                moved += batch.sync_event_count
                remaining -= batch.sync_event_count
                start = next_unseen
        return moved

    async def _busy_retry(self, inner: blink.Packet, expect: PacketType, retries: int, delay: float) -> blink.Packet:
        for attempt in range(retries + 1):
            try:
                return await self._command(inner, expect)
            except blink.FirmwareError as exc:
                if exc.code is not FirmwareCode.SYS_SYNC_BUSY or attempt == retries:
                    raise
                log.info("tower %s busy (SYS_SYNC_BUSY); asking again in %.2f s", self.tower_id, delay)
                await asyncio.sleep(delay)  # the tower asked for a pause; bounded by ``retries``
        raise AssertionError("unreachable")

    def _require_identity(self) -> TowerIdentity:
        if self.identity is None:
            raise BleLinkError("connect() first", code=SdkCode.NOT_CONNECTED_WITH_TOWER)
        return self.identity
