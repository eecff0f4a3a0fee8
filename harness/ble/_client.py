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
from bleak.exc import BleakError

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
    """A tower seen on the air: the device to connect to, who it says it is, and how the OS
    presented its advertisement (``layout``)."""

    device: BLEDevice
    identity: TowerIdentity
    rssi: int | None = None
    layout: blink.AdvertLayout | None = None


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
    """Scan for the Nordic UART service until ``tower_id`` (or any tower) advertises itself.

    However the OS hands the advertisement and scan response over (``blink.Sightings``), the tower
    is recognised: a firmware version seen in an earlier report of the same device is kept.
    """
    wanted = None if tower_id is None else TowerId(tower_id)
    loop = asyncio.get_running_loop()
    found: asyncio.Future[FoundTower] = loop.create_future()
    sightings = blink.Sightings()

    def seen(device: BLEDevice, advertisement: AdvertisementData) -> None:
        sighting = sightings.see(device.address, advertisement.manufacturer_data)
        if sighting is None or found.done():
            return
        if wanted is None or sighting.identity.tower_id == wanted:
            found.set_result(FoundTower(device, sighting.identity, advertisement.rssi, sighting.layout))

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
    sightings = blink.Sightings()

    def seen(device: BLEDevice, advertisement: AdvertisementData) -> None:
        sighting = sightings.see(device.address, advertisement.manufacturer_data)
        if sighting is not None:
            towers[sighting.identity.tower_id] = FoundTower(
                device, sighting.identity, advertisement.rssi, sighting.layout
            )

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
        ignore_mtu: bool = False,
    ) -> None:
        self._client = client
        #: A deliberately broken client, for tests: each packet goes out in one write whatever the
        #: MTU. A real stack refuses a write over MTU - 3, so such a client fails at once, clearly.
        self.ignore_mtu = ignore_mtu
        #: When the tower dropped the link while no command was waiting (``perf_counter``), for the
        #: next command's error message.
        self._dropped_at: float | None = None
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

    @property
    def opened_at_ns(self) -> int | None:
        """When the last door this client opened opened (``perf_counter_ns``), until its close is seen."""
        return self._opened_at_ns

    @property
    def mtu(self) -> int:
        """The ATT MTU negotiated on this link (23 before the exchange); writes carry MTU - 3 bytes."""
        return int(self._client.mtu_size)

    # -- link -------------------------------------------------------------------------------------

    async def connect(self) -> TowerIdentity:
        """Connect, find the UART characteristics, enable TX notifications, read device info."""
        with _edge(Phase.CONNECT, self.tower_id), self.timer.time(Phase.CONNECT):
            await self._client.connect()
        self._dropped_at = None
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
        if self._pending is None or self._pending.done():
            self._dropped_at = time.perf_counter()
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
            raise self._not_connected()
        async with self._in_flight:
            self._reassembler.clear()
            loop = asyncio.get_running_loop()
            pending: asyncio.Future[blink.Packet] = loop.create_future()
            self._pending = pending
            try:
                raw = blink.encode_packet(packet)
                pieces = [raw] if self.ignore_mtu else blink.chunks(raw, self.mtu)
                async with asyncio.timeout(self.response_timeout):
                    for chunk in pieces:
                        try:
                            await self._client.write_gatt_char(self._rx, chunk, response=False)
                        except BleakError as exc:
                            if not self.is_connected:
                                raise  # the link is gone: the edge says so
                            raise blink.SdkError(
                                f"writing {len(chunk)} bytes to the tower failed: {exc}",
                                code=SdkCode.UPDATE_CHARACTERISTIC_FAILED,
                            ) from exc
                    return await pending
            finally:
                self._pending = None

    def _not_connected(self) -> blink.SdkError:
        """Why there is no link: dropped by the tower while nothing was asked (say how long ago), or never up."""
        if self._dropped_at is not None:
            ago = time.perf_counter() - self._dropped_at
            return blink.SdkError(
                f"the tower dropped the link {ago:.1f} s before this command (idle, or ended by the tower)",
                code=SdkCode.NOT_CONNECTED_WITH_TOWER,
            )
        return blink.SdkError("not connected to the tower", code=SdkCode.NOT_CONNECTED_WITH_TOWER)

    async def _command(self, inner: blink.Packet, expect: PacketType) -> blink.Packet:
        """Send an in-session command and return the reply's inner map; the tower's refusals raise."""
        channel = self._channel
        if channel is None:
            if not self.is_connected:
                raise self._not_connected()
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
        """TERMINATE_SESSION -> ACK (``assumptions.TERMINATE_ACKED``); a non-zero code needs a message and
        is logged by the tower as an error [S]. The tower may drop the link right after its ACK
        (``assumptions.TOWER_DISCONNECTS_AFTER_TERMINATE``); the SDK disconnects itself anyway [S]."""
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
        locker_id = self._opened(answer)
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

    async def open_available(
        self,
        *,
        locker_type: int | None = None,
        match_available: bool = True,
        match_token: bytes | None = None,
        locker_token: bytes = b"",
        leave_available: bool = False,
        client_info: str | bytes = b"",
    ) -> int:
        """OPEN_AVAILABLE_LOCKER -> LOCKER_OPENED: the tower opens a matching locker of its choice
        (type ``locker_type``, available or not per ``match_available``, keeping ``match_token``),
        keeps ``locker_token`` for it, and leaves it available or not when it closes
        (``assumptions.OPEN_AVAILABLE_RULES``); returns the opened locker's id.

        Fields as the SDK sends them [S]: ``match_locker_type`` is left out when none is asked for.
        """
        inner: blink.Packet = {
            Field.PACKET_TYPE: PacketType.OPEN_AVAILABLE_LOCKER,
            Field.MATCH_AVAILABLE: match_available,
            Field.LOCKER_TOKEN: locker_token,
            Field.LOCKER_AVAILABLE: leave_available,
            Field.CLIENT_INFO: client_info.encode() if isinstance(client_info, str) else client_info,
        }
        if locker_type is not None and locker_type >= 0:
            inner[Field.MATCH_LOCKER_TYPE] = locker_type
        if match_token is not None:
            inner[Field.MATCH_TOKEN] = match_token
        with _edge(Phase.OPEN, self.tower_id), self.timer.time(Phase.OPEN):
            answer = await self._command(inner, PacketType.LOCKER_OPENED)
        return self._opened(answer)

    def _opened(self, answer: blink.Packet) -> int:
        """LOCKER_OPENED's locker id; the door is open from now (for the door phase)."""
        self._opened_at_ns = time.perf_counter_ns()
        locker_id = answer.get(Field.LOCKER_ID)
        if not isinstance(locker_id, int) or isinstance(locker_id, bool):
            raise translate(blink.DecodeError("LOCKER_OPENED has no locker_id"), phase="open", tower_id=self.tower_id)
        self.last_opened = locker_id
        return locker_id

    async def find_available(self) -> dict[int, int]:
        """FIND_AVAILABLE_LOCKERS -> FOUND_LOCKERS: available lockers per locker type id."""
        with _edge(Phase.FIND, self.tower_id), self.timer.time(Phase.FIND):
            answer = await self._command(
                {Field.PACKET_TYPE: PacketType.FIND_AVAILABLE_LOCKERS}, PacketType.FOUND_LOCKERS
            )
            counts = answer.get(Field.LOCKER_TYPE_MAP)
            if not isinstance(counts, dict) or not all(
                isinstance(k, int) and isinstance(v, int) for k, v in counts.items()
            ):
                raise blink.DecodeError("FOUND_LOCKERS' locker_type_map (78) is not a map of integers")
        return dict(sorted(counts.items()))

    async def doors_open(self) -> frozenset[int]:
        """CHECK_ALL_LOCKER_DOORS -> ALL_LOCKER_DOOR_STATES: the labels of the tower's open doors
        (the bitfield's order is ``assumptions.DOOR_BITFIELD_BY_LABEL``)."""
        with _edge(Phase.DOOR, self.tower_id):
            answer = await self._command(
                {Field.PACKET_TYPE: PacketType.CHECK_ALL_LOCKER_DOORS}, PacketType.ALL_LOCKER_DOOR_STATES
            )
            field = answer.get(Field.LOCKER_DOORS_OPEN)
            if not isinstance(field, bytes):
                raise blink.DecodeError("ALL_LOCKER_DOOR_STATES' locker_doors_open (79) is not bytes")
        return blink.decode_door_bits(field)

    async def device_info(self) -> blink.DeviceInfo:
        """GET_DEVICE_INFO -> DEVICE_INFO: the tower's identity, firmware, uptime, clock and battery
        (fields: ``assumptions.DEVICE_INFO_FIELDS``)."""
        with _edge(Phase.DEVICE_INFO, self.tower_id), self.timer.time(Phase.DEVICE_INFO):
            answer = await self._command({Field.PACKET_TYPE: PacketType.GET_DEVICE_INFO}, PacketType.DEVICE_INFO)
            return blink.DeviceInfo.from_packet(answer)

    async def door_open(self) -> bool:
        """CHECK_LOCKER_DOOR on the last opened locker: is its door open?"""
        with _edge(Phase.DOOR, self.tower_id, self.last_opened):
            answer = await self._command(
                {Field.PACKET_TYPE: PacketType.CHECK_LOCKER_DOOR}, PacketType.LOCKER_DOOR_STATE
            )
        return bool(answer.get(Field.LOCKER_DOOR_OPEN))

    async def wait_door_closed(
        self,
        *,
        timeout: float = 120.0,
        poll_interval: float = 0.05,
        door: int | None = None,
        opened_at_ns: int | None = None,
    ) -> int:
        """Poll CHECK_LOCKER_DOOR until the door is shut; records door-open -> door-closed.

        ``door`` (a door label) polls CHECK_ALL_LOCKER_DOORS for that door instead: what a session
        that did not open the locker itself can ask (after a reconnect); ``opened_at_ns`` is then when
        the door opened (``perf_counter_ns``), for the door phase. Bounded by ``timeout`` (a person
        on a bench may take a while); returns the polls made.
        """
        if opened_at_ns is not None:
            self._opened_at_ns = opened_at_ns
        deadline = time.monotonic() + timeout
        polls = 0
        while True:
            polls += 1
            shut = door not in await self.doors_open() if door is not None else not await self.door_open()
            if shut:
                break
            if time.monotonic() >= deadline:
                what = f"door {door}" if door is not None else f"the door of locker {self.last_opened}"
                raise InfrastructureError(f"{what} was not closed within {timeout:g} s ({polls} checks)")
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
                next_unseen = batch.sync_event_start + batch.sync_event_count  # assumptions.MARK_SEEN_IS_NEXT_UNSEEN
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
