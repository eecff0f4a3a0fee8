"""The virtual radio: one bumble peripheral per virtual tower on a ``LocalLink``, in its own thread.

Each tower advertises every ~20 ms as reference 9.1 lays it out: a legacy advertisement (flags,
the Nordic UART service, the firmware version) and a scan response (tower id and name), so the raw
scan record carries them at the Android SDK's offsets (``harness.ble.protocol.tower_advertisement``).
It serves GATT: RX (write), TX (notify), device info (read). What arrives on RX is reassembled into
Blink packets and handed to the tower's ``BlinkConnection`` (``harness.sim.blink``); replies go
back as TX notifications of at most MTU - 3 bytes.

Like a radio's, the link has an ATT MTU the tower grants (``mtu``, 23..247; a central asks for
247), drops an ATT write longer than MTU - 3, and ends: the tower drops a link idle longer than
``idle_timeout`` seconds (or the ``ble_idle_timeout`` fault's) and, once it has acknowledged
TERMINATE_SESSION, the link itself
(``assumptions.TOWER_DISCONNECTS_AFTER_TERMINATE``); the ``ble_supervision_timeout`` fault silences
a link mid-exchange and then both sides lose it with reason 0x08, as a supervision timeout does.
Scanning centrals get a ``RadioController`` from the link (``RadioLink.central_controller``): it
reports scan responses, which bumble's own virtual controller does not.

The radio runs on its own event loop in its own thread, so it lives as long as the sandbox and
does not care which loop (or how many ``asyncio.run``) a client uses. The link carries that loop
as ``link.loop``: the client's virtual bleak backend runs its bumble central there. The link is
the only thing an in-process client gets from here. ``VirtualRadio.serve`` also serves the link to
other processes as raw HCI over TCP (``_hci.HciServer``): each connection gets its own
``RadioController``, the one ``central_controller`` gives an in-process central, and leaves the link
when its socket closes (``RadioLink.leave``); ``describe`` is what ``GET /_sim/radio`` answers.

``LatencyModel`` gives the link the shape of a real BLE connection: data waits for the next
connection event (``connection_interval``) plus a seeded jitter, in order per direction (link-layer
control, such as a disconnection, never overtakes the data sent before it).
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

from bumble import att, core, gatt, hci, ll
from bumble.controller import Controller
from bumble.device import AdvertisingEventProperties, AdvertisingParameters, Connection, Device
from bumble.host import Host
from bumble.link import LocalLink
from bumble.transport.common import AsyncPipeSink

from harness.ble import protocol as blink
from harness.ble.protocol import assumptions

from ._controller import RadioController
from ._hci import HciServer
from .blink import BlinkConnection, OutcomeKind, TowerBlinkServer
from .firmware import TowerFirmware

if TYPE_CHECKING:
    from ._world import World

__all__ = ["LatencyModel", "LinkSettings", "Person", "RadioLink", "VirtualRadio"]

log = logging.getLogger(__name__)

_T = TypeVar("_T")


class _CrossedTerminations(logging.Filter):
    """Drops bumble's ERROR for a link-layer control PDU that reaches a controller whose end of the link
    is closed already: on the virtual link the tower ending a session and the phone disconnecting cross
    on the air, which a real link layer absorbs. Every other record of bumble's controller passes."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.msg != "Cannot find a connection for %s"


logging.getLogger("bumble.controller").addFilter(_CrossedTerminations())

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
    """bumble's ``LocalLink`` with a loop of its own (``loop``), air time (``latency``), scanning
    centrals that see scan responses (``central_controller``) and links that can be lost (``lose``)."""

    def __init__(self, latency: LatencyModel) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self.latency = latency
        #: The radio thread's loop; set when the radio starts. The client's backend reads it.
        self.loop: asyncio.AbstractEventLoop | None = None
        self._rng = random.Random(latency.seed)
        self._anchor: float | None = None
        self._queues: dict[tuple[int, int], collections.deque[tuple[float, Callable[[], None]]]] = {}
        self._draining: set[tuple[int, int]] = set()
        #: Controller pairs whose link went silent (a supervision timeout under way): nothing crosses.
        self._silent: set[frozenset[int]] = set()

    def set_latency(self, latency: LatencyModel) -> None:
        self.latency = latency
        self._rng = random.Random(latency.seed)

    def central_controller(self, name: str, address: str) -> Controller:
        """A controller for a central (a phone's adapter) on this link: one that reports scan responses.

        In-process centrals get one (the client's virtual backend asks), and so does every HCI client of
        another process (``HciServer``): one radio model whichever way a central reaches it."""
        return RadioController(name, link=self, public_address=address)

    def leave(self, controller: Controller) -> None:
        """A central's adapter gone (its host closed the socket, or its process died): it stops
        scanning, connecting and advertising, every link it had is lost at once (both ends report
        0x08, as after a supervision timeout), and it leaves the link. Radio loop only."""
        controller.host = None  # nobody reads its events any more
        controller.le_scan_enable = False
        controller.pending_le_connection = None
        controller.le_legacy_advertiser.stop()
        for advertising_set in controller.advertising_sets.values():
            advertising_set.stop()
        for peer_address in list(controller.le_connections):
            self.lose(controller, peer_address, after=0.0)
        if controller in self.controllers:
            self.remove_controller(controller)

    def send_acl_data(
        self,
        sender_controller: Controller,
        destination_address: hci.Address,
        transport: core.PhysicalTransport,
        data: bytes,
    ) -> None:
        if transport != core.PhysicalTransport.LE:
            super().send_acl_data(sender_controller, destination_address, transport, data)
            return
        destination = self.find_le_controller(destination_address)
        if destination is None or frozenset((id(sender_controller), id(destination))) in self._silent:
            return
        source_address = sender_controller.random_address

        def deliver() -> None:
            destination.on_link_acl_data(source_address, transport, data)

        self._send(sender_controller, destination, deliver)

    def send_ll_control_pdu(
        self, sender_address: hci.Address, receiver_address: hci.Address, packet: ll.ControlPdu
    ) -> None:
        sender = self.find_le_controller(sender_address)
        receiver = self.find_le_controller(receiver_address)
        if sender is None or receiver is None:
            super().send_ll_control_pdu(sender_address, receiver_address, packet)
            return

        def deliver() -> None:
            receiver.on_ll_control_pdu(sender_address, packet)

        # Behind the data already sent: a link layer terminates after what it queued before.
        self._send(sender, receiver, deliver)

    def _send(self, sender: Controller, destination: Controller, deliver: Callable[[], None]) -> None:
        loop = asyncio.get_running_loop()
        if not self.latency.enabled:
            loop.call_soon(deliver)
            return
        now = loop.time()
        if self._anchor is None:
            self._anchor = now
        interval = self.latency.connection_interval
        wait = interval - ((now - self._anchor) % interval) + self._rng.uniform(0.0, self.latency.jitter)
        key = (id(sender), id(destination))
        queue = self._queues.setdefault(key, collections.deque())
        due = max(now + wait, queue[-1][0] if queue else 0.0)  # never overtake: ACL data is ordered
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

    def lose(self, controller: Controller, peer_address: hci.Address, *, after: float) -> None:
        """A supervision timeout: the link between ``controller`` and the device at ``peer_address``
        carries nothing from now on, and ``after`` seconds later both ends report it lost (0x08)."""
        here = controller.le_connections.get(peer_address)
        peer = self.find_le_controller(peer_address)
        if here is None or peer is None:
            return
        pair = frozenset((id(controller), id(peer)))
        self._silent.add(pair)

        def timed_out() -> None:
            self._silent.discard(pair)
            for side, address in ((controller, peer_address), (peer, here.self_address)):
                connection = side.le_connections.get(address)
                if connection is not None:
                    side.on_le_disconnected(connection, hci.HCI_CONNECTION_TIMEOUT_ERROR)

        asyncio.get_running_loop().call_later(after, timed_out)


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


class _TowerDevice(Device):
    """A tower's bumble device that notes each ATT PDU a central sends it: the idle timeout counts from
    the last one (GATT discovery and reads are activity, as they are to a real link layer)."""

    heard: Callable[[int, int], None] = staticmethod(lambda _handle, _opcode: None)

    def on_gatt_pdu(self, connection_handle: int, pdu: bytes) -> None:
        # bumble registers this bound method for the ATT channel; its decorator maps the handle.
        self.heard(connection_handle, pdu[0] if pdu else 0)
        super().on_gatt_pdu(connection_handle, pdu)


@dataclass(frozen=True, slots=True)
class LinkSettings:
    """What the towers grant a connection: the ATT MTU (23..247) and how long an idle link lives (s)."""

    mtu: int = assumptions.ATT_MTU_MAX
    idle_timeout: float = assumptions.TOWER_IDLE_TIMEOUT

    def __post_init__(self) -> None:
        if not assumptions.ATT_MTU_MIN <= self.mtu <= assumptions.ATT_MTU_MAX:
            raise ValueError(f"mtu must be {assumptions.ATT_MTU_MIN}..{assumptions.ATT_MTU_MAX}, not {self.mtu}")
        if self.idle_timeout <= 0:
            raise ValueError(f"idle_timeout must be positive, not {self.idle_timeout}")


@dataclass(slots=True)
class _Link:
    """One central's connection to a tower: its Blink session and what the radio keeps about it."""

    session: BlinkConnection
    reassembler: blink.Reassembler
    last_write: float  # when the central last sent anything (an ATT PDU), on the radio loop's clock
    idle_check: asyncio.TimerHandle | None = None
    lost: bool = False  # a supervision timeout is under way: nothing more is served
    last_opcode: int = 0  # the ATT opcode of the central's last PDU (a command, a request)


class TowerPeripheral:
    """One virtual tower on the air: a bumble device with the Nordic UART service."""

    def __init__(
        self, link: RadioLink, server: TowerBlinkServer, address: str, settings: Callable[[], LinkSettings]
    ) -> None:
        firmware = server.firmware
        self.server = server
        self.link = link
        self.settings = settings
        self.identity = blink.TowerIdentity(firmware.tower_id, firmware.name, firmware.firmware_version)
        self.controller = Controller(f"tower-{firmware.tower_id}", link=link, public_address=address)
        self.device = _TowerDevice(
            name=firmware.name, address=hci.Address(address), host=Host(self.controller, AsyncPipeSink(self.controller))
        )
        self.device.heard = self._heard
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
        self._links: dict[int, _Link] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    def advertising_data(self) -> tuple[bytes, bytes]:
        """The legacy advertisement and its scan response, as reference 9.1 lays them out."""
        return blink.tower_advertisement(self.identity)

    async def start(self) -> None:
        await self.device.power_on()
        advert, scan_response = self.advertising_data()
        await self.device.create_advertising_set(
            advertising_parameters=AdvertisingParameters(
                advertising_event_properties=AdvertisingEventProperties(
                    is_connectable=True, is_scannable=True, is_legacy=True
                ),
                primary_advertising_interval_min=ADVERTISING_INTERVAL_MS,
                primary_advertising_interval_max=ADVERTISING_INTERVAL_MS,
            ),
            advertising_data=advert,
            scan_response_data=scan_response,
            auto_restart=True,
        )

    async def stop(self) -> None:
        for connection in list(self.device.connections.values()):
            with contextlib.suppress(core.BaseBumbleError):
                await connection.disconnect()
        await self.device.power_off()

    def _on_connection(self, connection: Connection) -> None:
        # The MTU this tower grants from this connection on (a central asks; the smaller one wins).
        self.device.gatt_server.max_mtu = self.settings().mtu
        loop = asyncio.get_running_loop()
        link = _Link(self.server.connection(), blink.Reassembler(), last_write=loop.time())
        self._links[connection.handle] = link
        self._watch_idle(connection, link)
        connection.on(connection.EVENT_DISCONNECTION, lambda _reason: self._forget(connection.handle))

    def _heard(self, handle: int, opcode: int) -> None:
        link = self._links.get(handle)
        if link is not None:
            link.last_write = asyncio.get_running_loop().time()
            link.last_opcode = opcode

    def _forget(self, handle: int) -> None:
        link = self._links.pop(handle, None)
        if link is not None and link.idle_check is not None:
            link.idle_check.cancel()

    def _watch_idle(self, connection: Connection, link: _Link) -> None:
        """Drop the link once the central sent nothing on it for the idle timeout (the
        ``ble_idle_timeout`` fault's while it is on, else ``idle_timeout``); a fault's changed timeout
        applies within a second, a configured one at once (``rewatch_idle``)."""
        loop = asyncio.get_running_loop()
        timeout = self.server.faults.idle_timeout() or self.settings().idle_timeout
        idle = loop.time() - link.last_write
        if idle >= timeout:
            log.info("tower %s: dropping a link idle for %.3f s", self.identity.tower_id, idle)
            self._spawn(self._drop(connection))
            return
        link.idle_check = loop.call_later(min(timeout - idle, 1.0), self._watch_idle, connection, link)

    def rewatch_idle(self) -> None:
        """Measure every live link against the idle timeout now in force (a changed one applies at
        once, not at the next scheduled check). On the radio's loop."""
        for handle, link in list(self._links.items()):
            connection = self.device.lookup_connection(handle)
            if connection is None:
                continue
            if link.idle_check is not None:
                link.idle_check.cancel()
            self._watch_idle(connection, link)

    def _on_write(self, connection: Connection, value: bytes) -> None:
        link = self._links.get(connection.handle)
        if link is None or link.lost:
            return
        link.last_write = asyncio.get_running_loop().time()
        limit = connection.att_mtu - assumptions.ATT_WRITE_OVERHEAD
        if len(value) > limit:
            log.warning("tower %s: %d-byte write over MTU %d dropped", self.identity.tower_id, len(value), limit + 3)
            if link.last_opcode == att.Opcode.ATT_WRITE_COMMAND:
                return  # an ATT server drops a command longer than the MTU; the phone hears nothing back
            # A write request, or a long write (prepare + execute): the UART's RX takes MTU - 3 bytes at
            # most, and the phone hears an error answer.
            raise att.ATT_Error(att.ATT_INVALID_ATTRIBUTE_LENGTH_ERROR, message=f"over MTU - 3 ({limit} bytes)")
        session = link.session
        try:
            packets = link.reassembler.feed(bytes(value))
        except blink.DecodeError as exc:
            error = blink.error_packet(exc.firmware_code, exc.message, session_level=True)
            self._spawn(self._notify(connection, (blink.encode_packet(error),)))
            return
        for raw in packets:
            outcome = session.handle(raw)
            if outcome.kind is OutcomeKind.REPLY:
                self._spawn(self._notify(connection, outcome.packets, hang_up=outcome.hang_up))
            elif outcome.kind is OutcomeKind.DISCONNECT:
                self._spawn(self._drop(connection))
                return
            elif outcome.kind is OutcomeKind.LINK_LOST:
                link.lost = True
                self.link.lose(self.controller, connection.peer_address, after=outcome.after)
                return

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)  # keep a reference until done, or the task may be collected
        task.add_done_callback(self._tasks.discard)

    async def _notify(self, connection: Connection, packets: tuple[bytes, ...], *, hang_up: bool = False) -> None:
        size = connection.att_mtu - assumptions.ATT_WRITE_OVERHEAD
        try:
            for raw in packets:
                for start in range(0, len(raw), size):
                    await self.device.notify_subscriber(connection, self.tx, raw[start : start + size])
        except core.BaseBumbleError as exc:
            log.debug("tower %s: notification not sent: %s", self.identity.tower_id, exc)
        if hang_up:
            await self._drop(connection)  # the link keeps the order: the reply arrives first

    async def _drop(self, connection: Connection) -> None:
        if connection.handle not in self._links:
            return  # the central left first: bumble would wait for a gone handle's disconnection for ever
        try:
            await connection.disconnect()
        except core.BaseBumbleError as exc:
            log.debug("tower %s: disconnect failed: %s", self.identity.tower_id, exc)


class VirtualRadio:
    """Every virtual tower of a sandbox's world on one link, served from the radio thread.

    ``start()`` brings the towers on the air (idempotent); ``link`` is what a client's virtual bleak
    backend needs; ``stop()`` powers everything off and ends the thread. ``configure`` sets the
    MTU the towers grant new connections and their idle timeout.
    """

    def __init__(
        self,
        world: World,
        *,
        latency: LatencyModel | None = None,
        dwell: float | None = 0.05,
        link: LinkSettings | None = None,
    ) -> None:
        self.world = world
        self._link = RadioLink(latency if latency is not None else LatencyModel(seed=world.seed))
        self.person = Person(dwell)
        #: What the towers grant each new connection (read on the radio's loop at connection time).
        self.link_settings = link if link is not None else LinkSettings()
        self.servers: dict[str, TowerBlinkServer] = {}
        self._peripherals: list[TowerPeripheral] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._hci: HciServer | None = None

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

    @property
    def transport(self) -> str | None:
        """The address other processes reach the radio at (``serve``), e.g. ``tcp-client:127.0.0.1:PORT``."""
        return self._hci.address if self._hci is not None and self._hci.port else None

    def serve(self, host: str = "127.0.0.1", port: int = 0, timeout: float = 10.0) -> str:
        """Serve the towers' radio to other processes as raw HCI over TCP on ``host:port`` (0: a free
        port), one fresh controller per connection (``harness.sim._hci``); puts the radio on the air.
        Returns the transport address a bumble host opens (``tcp-client:HOST:PORT``); ``OSError`` if it
        cannot bind. Whether ``host`` may be other than loopback is the caller's rule. Idempotent."""
        self.start(timeout)
        if self._hci is None:
            self._hci = HciServer(self._link)
        if not self._hci.port:
            try:
                self.call(self._hci.start(host, port), timeout=timeout)
            except OSError:
                self._hci = None
                raise
        return self._hci.address

    def describe(self) -> dict[str, Any]:
        """What ``GET /_sim/radio`` answers: where the radio is served, its towers, what a link gets."""
        latency = self._link.latency
        return {
            "transport": self.transport,
            "clients": self._hci.clients if self._hci is not None else 0,
            "towers": [
                {
                    "tower_id": str(peripheral.identity.tower_id),
                    "name": peripheral.identity.name,
                    "address": peripheral.controller.public_address.to_string(False),
                }
                for peripheral in self._peripherals
            ],
            "mtu": self.link_settings.mtu,
            "idle_timeout": self.link_settings.idle_timeout,
            "connection_interval": latency.connection_interval,
            "jitter": latency.jitter,
        }

    def reconfigure(
        self,
        *,
        mtu: int | None = None,
        idle_timeout: float | None = None,
        connection_interval: float | None = None,
        jitter: float | None = None,
    ) -> dict[str, Any]:
        """``configure`` and the latency model at once (``POST /_sim/radio``): what is not given stays.
        ``ValueError`` names a value out of range, and then nothing changes. Returns ``describe()``."""
        current = self._link.latency
        latency = LatencyModel(
            connection_interval=current.connection_interval if connection_interval is None else connection_interval,
            jitter=current.jitter if jitter is None else jitter,
            seed=current.seed,
        )
        if latency.connection_interval < 0 or latency.jitter < 0:
            raise ValueError("connection_interval and jitter must not be negative")
        self.configure(mtu=mtu, idle_timeout=idle_timeout)  # checks its own values
        if latency != current:
            self.set_latency(latency)
        return self.describe()

    def configure(self, *, mtu: int | None = None, idle_timeout: float | None = None) -> LinkSettings:
        """The MTU the towers grant (23..247), from the next connection on, and the idle time after
        which they drop a link, on live links too; what is not given stays. Returns the settings now
        in force."""
        current = self.link_settings
        self.link_settings = LinkSettings(
            mtu=current.mtu if mtu is None else mtu,
            idle_timeout=current.idle_timeout if idle_timeout is None else idle_timeout,
        )
        loop = self._loop
        if idle_timeout is not None and loop is not None and not loop.is_closed():
            for peripheral in list(self._peripherals):
                loop.call_soon_threadsafe(peripheral.rewatch_idle)
        return self.link_settings

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
            peripheral = TowerPeripheral(self._link, server, f"D0:00:00:00:00:{number:02X}", lambda: self.link_settings)
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
        if self._hci is not None:
            await self._hci.close()
            self._hci = None
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
