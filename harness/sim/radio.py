"""The virtual radio: one bumble peripheral per virtual tower on a ``LocalLink``, in its own thread.

Each tower advertises the Nordic UART service and its identity (manufacturer data as in
reference 9.1) every ~20 ms and serves GATT: RX (write), TX (notify), device info (read). What
arrives on RX is reassembled into Blink packets and handed to the tower's ``BlinkConnection``
(``harness.sim.blink``); replies go back as TX notifications of at most MTU - 3 bytes.

The radio runs on its own event loop in its own thread, so it lives as long as the sandbox and
does not care which loop (or how many ``asyncio.run``) a client uses. The link carries that loop
as ``link.loop``: the client's virtual bleak backend runs its bumble central there. The link is
the only thing the client gets from here.

``LatencyModel`` gives the link the shape of a real BLE connection: data waits for the next
connection event (``connection_interval``) plus a seeded jitter, in order per direction.
``Person`` closes a door ``dwell`` seconds after it opened (putting the item in, or taking it out).
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import contextlib
import logging
import random
import threading
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from bumble import core, gatt, hci
from bumble.controller import Controller
from bumble.core import AdvertisingData
from bumble.device import AdvertisingEventProperties, AdvertisingParameters, Connection, Device
from bumble.host import Host
from bumble.link import LocalLink
from bumble.transport.common import AsyncPipeSink

from harness.ble import protocol as blink

from .blink import BlinkConnection, OutcomeKind, TowerBlinkServer
from .firmware import TowerFirmware

if TYPE_CHECKING:
    from ._world import World

__all__ = ["LatencyModel", "Person", "RadioLink", "VirtualRadio"]

log = logging.getLogger(__name__)

_T = TypeVar("_T")

#: Advertising interval of the virtual towers, in ms: short, or each connect costs about 1 s.
ADVERTISING_INTERVAL_MS = 20.0


@dataclass(frozen=True, slots=True)
class LatencyModel:
    """When data sent on the link arrives: at the next connection event, plus jitter.

    ``connection_interval`` 7.5 ms is the BLE minimum and what phones negotiate for a busy
    link; 0 turns the model off (bumble's LocalLink has no air time at all).
    """

    connection_interval: float = 0.0075
    jitter: float = 0.001
    seed: int = 0

    @property
    def enabled(self) -> bool:
        return self.connection_interval > 0

    @classmethod
    def off(cls) -> LatencyModel:
        return cls(connection_interval=0.0, jitter=0.0)


class RadioLink(LocalLink):
    """bumble's ``LocalLink`` with a loop of its own (``loop``) and air time (``latency``)."""

    def __init__(self, latency: LatencyModel) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self.latency = latency
        #: The radio thread's loop; set when the radio starts. The client's backend reads it.
        self.loop: asyncio.AbstractEventLoop | None = None
        self._rng = random.Random(latency.seed)
        self._anchor: float | None = None
        self._queues: dict[tuple[int, int], collections.deque[tuple[float, Callable[[], None]]]] = {}
        self._draining: set[tuple[int, int]] = set()

    def set_latency(self, latency: LatencyModel) -> None:
        self.latency = latency
        self._rng = random.Random(latency.seed)

    def send_acl_data(
        self,
        sender_controller: Controller,
        destination_address: hci.Address,
        transport: core.PhysicalTransport,
        data: bytes,
    ) -> None:
        if not self.latency.enabled or transport != core.PhysicalTransport.LE:
            super().send_acl_data(sender_controller, destination_address, transport, data)
            return
        destination = self.find_le_controller(destination_address)
        if destination is None:
            return
        source_address = sender_controller.random_address
        loop = asyncio.get_running_loop()
        now = loop.time()
        if self._anchor is None:
            self._anchor = now
        interval = self.latency.connection_interval
        wait = interval - ((now - self._anchor) % interval) + self._rng.uniform(0.0, self.latency.jitter)
        key = (id(sender_controller), id(destination))
        queue = self._queues.setdefault(key, collections.deque())
        due = max(now + wait, queue[-1][0] if queue else 0.0)  # never overtake: ACL data is ordered

        def deliver() -> None:
            destination.on_link_acl_data(source_address, transport, data)

        queue.append((due, deliver))
        if key not in self._draining:
            self._draining.add(key)
            loop.call_at(due, self._drain, key)

    def _drain(self, key: tuple[int, int]) -> None:
        loop = asyncio.get_running_loop()
        queue = self._queues[key]
        while queue and queue[0][0] <= loop.time() + 1e-6:
            _, deliver = queue.popleft()
            deliver()
        if queue:
            loop.call_at(queue[0][0], self._drain, key)
        else:
            # Forget the drained pair: each connection brings new controllers, and their empty
            # queues would otherwise pile up for as long as the radio lives.
            del self._queues[key]
            self._draining.discard(key)


class Person:
    """Someone at the tower: when a door opens, they put the item in (or take it out) and close
    the door ``dwell`` seconds later. ``dwell=None``: nobody closes doors (use the control plane)."""

    def __init__(self, dwell: float | None = 0.05) -> None:
        self.dwell = dwell
        self._handles: set[asyncio.TimerHandle] = set()

    def door_opened(self, firmware: TowerFirmware, locker_id: int) -> None:
        """Radio loop only."""
        if self.dwell is None:
            return
        loop = asyncio.get_running_loop()

        def close() -> None:
            self._handles.discard(handle)
            try:
                firmware.close_door(locker_id)
            except Exception:  # the locker may have been forced meanwhile; the person walks away
                log.exception("the person could not close locker %s", locker_id)

        handle = loop.call_later(self.dwell, close)
        self._handles.add(handle)

    def cancel(self) -> None:
        for handle in self._handles:
            handle.cancel()
        self._handles.clear()


class TowerPeripheral:
    """One virtual tower on the air: a bumble device with the Nordic UART service."""

    def __init__(self, link: RadioLink, server: TowerBlinkServer, address: str) -> None:
        firmware = server.firmware
        self.server = server
        self.identity = blink.TowerIdentity(firmware.tower_id, firmware.name, firmware.firmware_version)
        controller = Controller(f"tower-{firmware.tower_id}", link=link, public_address=address)
        self.device = Device(
            name=firmware.name, address=hci.Address(address), host=Host(controller, AsyncPipeSink(controller))
        )
        self.tx = gatt.Characteristic(
            blink.TX_UUID, gatt.Characteristic.Properties.NOTIFY, gatt.Characteristic.Permissions.READABLE, b""
        )
        rx: gatt.Characteristic[bytes] = gatt.Characteristic(
            blink.RX_UUID,
            gatt.Characteristic.Properties.WRITE_WITHOUT_RESPONSE | gatt.Characteristic.Properties.WRITE,
            gatt.Characteristic.Permissions.WRITEABLE,
            gatt.CharacteristicValue(write=self._on_write),
        )
        info = gatt.Characteristic(
            blink.DEVICE_INFO_UUID,
            gatt.Characteristic.Properties.READ,
            gatt.Characteristic.Permissions.READABLE,
            self.identity.device_info(),
        )
        self.device.add_service(gatt.Service(blink.NUS_SERVICE_UUID, [rx, self.tx, info]))
        self.device.on(self.device.EVENT_CONNECTION, self._on_connection)
        self._sessions: dict[int, tuple[BlinkConnection, blink.Reassembler]] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    def advertising_data(self) -> bytes:
        """Flags, the UART service, and the identity in manufacturer data (extended PDU: it needs
        52 bytes, more than a legacy advertisement's 31)."""
        company = blink.assumptions.MANUFACTURER_COMPANY_ID.to_bytes(2, "little")
        return bytes(
            AdvertisingData(
                [
                    (AdvertisingData.FLAGS, bytes([0x06])),
                    (
                        AdvertisingData.COMPLETE_LIST_OF_128_BIT_SERVICE_CLASS_UUIDS,
                        bytes(core.UUID(blink.NUS_SERVICE_UUID)),
                    ),
                    (AdvertisingData.MANUFACTURER_SPECIFIC_DATA, company + self.identity.manufacturer_payload_merged()),
                ]
            )
        )

    async def start(self) -> None:
        await self.device.power_on()
        await self.device.create_advertising_set(
            advertising_parameters=AdvertisingParameters(
                advertising_event_properties=AdvertisingEventProperties(
                    is_connectable=True, is_scannable=False, is_legacy=False
                ),
                primary_advertising_interval_min=ADVERTISING_INTERVAL_MS,
                primary_advertising_interval_max=ADVERTISING_INTERVAL_MS,
            ),
            advertising_data=self.advertising_data(),
            auto_restart=True,
        )

    async def stop(self) -> None:
        for connection in list(self.device.connections.values()):
            with contextlib.suppress(core.BaseBumbleError):
                await connection.disconnect()
        await self.device.power_off()

    def _on_connection(self, connection: Connection) -> None:
        self._sessions[connection.handle] = (self.server.connection(), blink.Reassembler())
        connection.on(connection.EVENT_DISCONNECTION, lambda _reason: self._sessions.pop(connection.handle, None))

    def _on_write(self, connection: Connection, value: bytes) -> None:
        entry = self._sessions.get(connection.handle)
        if entry is None:
            return
        session, reassembler = entry
        try:
            packets = reassembler.feed(bytes(value))
        except blink.DecodeError as exc:
            error = blink.error_packet(exc.firmware_code, exc.message, session_level=True)
            self._spawn(self._notify(connection, (blink.encode_packet(error),)))
            return
        for raw in packets:
            outcome = session.handle(raw)
            if outcome.kind is OutcomeKind.REPLY:
                self._spawn(self._notify(connection, outcome.packets))
            elif outcome.kind is OutcomeKind.DISCONNECT:
                self._spawn(self._drop(connection))
                return

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)  # keep a reference until done, or the task may be collected
        task.add_done_callback(self._tasks.discard)

    async def _notify(self, connection: Connection, packets: tuple[bytes, ...]) -> None:
        size = connection.att_mtu - 3
        try:
            for raw in packets:
                for start in range(0, len(raw), size):
                    await self.device.notify_subscriber(connection, self.tx, raw[start : start + size])
        except core.BaseBumbleError as exc:
            log.debug("tower %s: notification not sent: %s", self.identity.tower_id, exc)

    async def _drop(self, connection: Connection) -> None:
        try:
            await connection.disconnect()
        except core.BaseBumbleError as exc:
            log.debug("tower %s: disconnect failed: %s", self.identity.tower_id, exc)


class VirtualRadio:
    """Every virtual tower of a sandbox's world on one link, served from the radio thread.

    ``start()`` brings the towers on the air (idempotent); ``link`` is what a client's virtual bleak
    backend needs; ``stop()`` powers everything off and ends the thread.
    """

    def __init__(
        self,
        world: World,
        *,
        latency: LatencyModel | None = None,
        dwell: float | None = 0.05,
    ) -> None:
        self.world = world
        self._link = RadioLink(latency if latency is not None else LatencyModel(seed=world.seed))
        self.person = Person(dwell)
        self.servers: dict[str, TowerBlinkServer] = {}
        self._peripherals: list[TowerPeripheral] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    @property
    def link(self) -> RadioLink:
        """The link a client's virtual bleak backend needs (``backend=..., link=radio.link``); the
        radio goes on the air the first time it is asked for."""
        if not self.running:
            self.start()
        return self._link

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def set_latency(self, latency: LatencyModel) -> None:
        """A new latency model from the next packet on."""
        if self._loop is None:
            self._link.set_latency(latency)
        else:
            self.call(self._set_latency(latency))

    async def _set_latency(self, latency: LatencyModel) -> None:
        self._link.set_latency(latency)

    def start(self, timeout: float = 10.0) -> VirtualRadio:
        with self._lock:
            if self.running:
                return self
            loop = asyncio.new_event_loop()
            ready = threading.Event()

            def run() -> None:
                asyncio.set_event_loop(loop)
                loop.call_soon(ready.set)
                loop.run_forever()
                loop.run_until_complete(loop.shutdown_asyncgens())
                loop.close()

            self._thread = threading.Thread(target=run, name="virtual-radio", daemon=True)
            self._thread.start()
            if not ready.wait(timeout):
                raise RuntimeError("the virtual radio's thread did not start")
            self._loop = loop
            self._link.loop = loop
            self.call(self._bring_up(), timeout=timeout)
            return self

    async def _bring_up(self) -> None:
        for number, (tower_id, firmware) in enumerate(sorted(self.world.firmwares.items()), start=1):
            server = TowerBlinkServer(
                firmware,
                self.world.faults,
                clock=self.world.now,
                on_opened=self._person_at(firmware),
            )
            self.servers[tower_id] = server
            peripheral = TowerPeripheral(self._link, server, f"D0:00:00:00:00:{number:02X}")
            await peripheral.start()
            self._peripherals.append(peripheral)

    def _person_at(self, firmware: TowerFirmware) -> Callable[[int], None]:
        return lambda locker_id: self.person.door_opened(firmware, locker_id)

    def call(self, coro: Coroutine[Any, Any, _T], timeout: float = 10.0) -> _T:
        """Run ``coro`` on the radio's loop from another thread and return its result."""
        loop = self._loop
        if loop is None:
            coro.close()
            raise RuntimeError("the virtual radio is not running")
        future: concurrent.futures.Future[_T] = asyncio.run_coroutine_threadsafe(coro, loop)
        return future.result(timeout)

    def stop(self, timeout: float = 10.0) -> None:
        with self._lock:
            loop, thread = self._loop, self._thread
            if loop is None or thread is None:
                return
            try:
                self.call(self._bring_down(), timeout=timeout)
            except (concurrent.futures.TimeoutError, RuntimeError) as exc:
                log.warning("virtual radio did not stop cleanly: %s", exc)
            loop.call_soon_threadsafe(loop.stop)
            thread.join(timeout)
            self._loop = self._thread = None
            self._link.loop = None

    async def _bring_down(self) -> None:
        self.person.cancel()
        for peripheral in self._peripherals:
            await peripheral.stop()
        self._peripherals.clear()
        # Let the disconnection events run before the loop stops.
        await asyncio.sleep(0)

    close = stop  # what VirtualSandbox.stop() calls

    def __enter__(self) -> VirtualRadio:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
