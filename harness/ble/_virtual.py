"""A bleak backend (client and scanner) over bumble: the virtual radio, in this process or another.

Plain bleak code reaches a virtual tower through bumble's real ATT/GATT stack::

    BleakScanner(..., backend=VirtualBleakScanner, link=radio_link)
    BleakClient(device, backend=VirtualBleakClient, link=radio_link)

``link`` is either

- a ``bumble.link.LocalLink`` the virtual sandbox made in this process (an opaque object to the
  client). If it has a ``loop`` attribute, the radio runs on that event loop (in its own thread)
  and every bumble call is made there; without it, the radio shares the caller's loop. Its
  controller comes from the link when the link offers one (``link.central_controller(name,
  address)``: the virtual radio's, which reports scan responses); or
- the address of a virtual radio served by another process, ``tcp-client:HOST:PORT`` (what a
  sandbox's ``GET /_sim/radio`` announces): the adapter speaks raw HCI to a controller of its own
  there, from a thread and event loop of its own, with a random static address as a phone has.
  The controller on the far side is the same as an in-process central's, so the two behave alike.
  If the socket closes (the sandbox stopped), every link reports lost (0x08) and the next scanner
  or client opens a new connection.

Either way bleak's callbacks are brought back to the caller's loop, and one virtual "adapter" (a
bumble central device) serves every scanner and client on a radio, as a phone's one Bluetooth
adapter does. This is the only client-side module that imports bumble. Errors leave it as
``BleakError``, exactly as a real backend's would, so the layer above translates one kind of error
whatever the radio.

It behaves as an OS stack does where a client can tell:

- it scans actively and reports each advertising report as it arrives, with what it learnt of the
  device so far: one manufacturer value per company id, the latest replacing the earlier (BlueZ
  and WinRT do so). A tower's advertisement and scan response share a company id, so the client
  sees the firmware alone first and then the tower id and name (``AdvertLayout.SCAN_RESPONSE_LATE``).
  Each report's ``platform_data`` is a ``VirtualReport`` with the raw scan record (advertisement
  bytes, then the scan response's), as Android's ``ScanRecord.getBytes()`` has it;
- it refuses a write without response longer than the link's MTU - 3 with ``BleakError``, before
  anything reaches the air, as BlueZ and WinRT refuse it.
"""

from __future__ import annotations

import asyncio
import itertools
import re
import threading
import uuid
import weakref
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

from bleak.args import SizedBuffer
from bleak.assigned_numbers import CHARACTERISTIC_PROPERTIES, CharacteristicPropertyName
from bleak.backends.characteristic import BleakGATTCharacteristic
from bleak.backends.client import BaseBleakClient, NotifyCallback
from bleak.backends.descriptor import BleakGATTDescriptor
from bleak.backends.device import BLEDevice
from bleak.backends.scanner import AdvertisementData, AdvertisementDataCallback, BaseBleakScanner
from bleak.backends.service import BleakGATTService, BleakGATTServiceCollection
from bleak.exc import BleakError
from bumble import core, hci
from bumble.controller import Controller
from bumble.core import AdvertisingData
from bumble.device import Connection, Device, Peer
from bumble.gatt_client import CharacteristicProxy, ServiceProxy
from bumble.hci import Address
from bumble.host import Host
from bumble.link import LocalLink
from bumble.transport import open_transport
from bumble.transport.common import AsyncPipeSink

from harness.ble.protocol import assumptions

__all__ = ["TRANSPORT_PATTERN", "VirtualBleakClient", "VirtualBleakScanner", "VirtualReport"]

_T = TypeVar("_T")

#: The MTU the virtual central asks for; bumble peripherals grant up to 247 (as iOS/Android do).
REQUESTED_MTU = 247

_ADDRESSES = itertools.count(1)
_NOTIFY_OR_INDICATE = 0x10 | 0x20
_ExtendedReport = hci.HCI_LE_Extended_Advertising_Report_Event
_LegacyReport = hci.HCI_LE_Advertising_Report_Event
_ScanReport = _ExtendedReport.Report | _LegacyReport.Report
#: A virtual radio of another process: bumble's TCP client transport (host unbracketed, as bumble parses it).
TRANSPORT_PATTERN = re.compile(r"tcp-client:(?P<host>[^\s]+):(?P<port>\d{1,5})")
#: Seconds the adapter waits for its thread's loop, and for a connection to the radio to open.
_START_TIMEOUT = 10.0


@dataclass(frozen=True, slots=True)
class VirtualReport:
    """What the virtual adapter saw in one advertising report (``BLEDevice.details``, ``platform_data``)."""

    address: Address
    scan_response: bool
    #: The raw scan record so far: the advertisement's AD bytes, then the scan response's.
    record: bytes
    rssi: int


@dataclass(slots=True)
class _Known:
    """What the adapter learnt of one advertiser since the scan started (an OS keeps this per device)."""

    name: str | None = None
    manufacturer: dict[int, bytes] = field(default_factory=dict)
    service_uuids: list[str] = field(default_factory=list)
    advert: bytes = b""
    tx_power: int | None = None


def _is_scan_response(report: _ScanReport) -> bool:
    if isinstance(report, _ExtendedReport.Report):
        return bool(report.event_type & _ExtendedReport.EventType.SCAN_RESPONSE)
    return bool(report.event_type == _LegacyReport.EventType.SCAN_RSP)


def _uuid_str(value: core.UUID) -> str:
    """bleak's form of a UUID: lower-case, 128-bit, dashed."""
    return str(uuid.UUID(bytes=bytes(reversed(value.to_bytes(force_128=True)))))


def _properties(flags: int) -> list[CharacteristicPropertyName]:
    return [name for bit, name in CHARACTERISTIC_PROPERTIES.items() if flags & bit]


class _Adapter:
    """The virtual phone's Bluetooth adapter on one radio: a bumble central, powered on first use.

    Subclasses make the central's device: on an in-process link, or over HCI to another process.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop | None) -> None:
        self.loop = loop
        self._device: Device | None = None
        self._power_lock = asyncio.Lock()  # binds to the radio's loop on first use
        self._connect_lock: asyncio.Lock | None = None
        self._scan_listeners: set[Callable[[VirtualReport, AdvertisementData], None]] = set()
        self._known: dict[Address, _Known] = {}

    async def run(self, coro: Coroutine[Any, Any, _T]) -> _T:
        """Run ``coro`` on the radio's loop and wait for it from the caller's loop."""
        if self.loop is None or self.loop is asyncio.get_running_loop():
            return await coro
        if self.loop.is_closed() or not self.loop.is_running():
            coro.close()
            raise BleakError("the virtual radio is not running")
        try:
            return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(coro, self.loop))
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if task is not None and task.cancelling():
                raise  # the caller was cancelled: the radio-side call went with it
            # Cancelled on the radio's side (bumble drops what waits on a lost link): a failure, as an
            # OS stack reports it, never a cancellation of the caller.
            raise BleakError("the virtual radio abandoned the operation: the link went down") from None

    async def device(self) -> Device:
        """The central device (radio loop only)."""
        async with self._power_lock:
            return await self._power_on()

    async def _power_on(self) -> Device:
        if self._device is None:
            device = await self._new_device()
            device.host.on("advertising_report", self._on_report)
            await device.power_on()
            self._device = device
            self._connect_lock = asyncio.Lock()
        return self._device

    async def _new_device(self) -> Device:
        """The central's bumble device, not yet powered on (radio loop only)."""
        raise NotImplementedError

    def _on_report(self, report: _ScanReport) -> None:
        """One advertising report (radio loop): update what is known of the device, tell the scanners."""
        if not self._scan_listeners:
            return
        known = self._known.setdefault(report.address, _Known())
        data = bytes(report.data)
        scan_response = _is_scan_response(report)
        record = known.advert + data if scan_response else data
        if not scan_response:
            known.advert = data
        _learn(known, AdvertisingData.from_bytes(data))
        if (
            isinstance(report, _ExtendedReport.Report)
            and report.tx_power != _ExtendedReport.TX_POWER_INFORMATION_NOT_AVAILABLE
        ):
            known.tx_power = report.tx_power
        sighting = VirtualReport(report.address, scan_response, record, report.rssi)
        advertisement = AdvertisementData(
            local_name=known.name,
            manufacturer_data=dict(known.manufacturer),
            service_data={},
            service_uuids=list(known.service_uuids),
            tx_power=known.tx_power,
            rssi=report.rssi,
            platform_data=(sighting,),
        )
        for listener in list(self._scan_listeners):
            listener(sighting, advertisement)

    async def start_scan(self, listener: Callable[[VirtualReport, AdvertisementData], None]) -> None:
        device = await self.device()
        first = not self._scan_listeners
        self._scan_listeners.add(listener)
        if first:
            self._known.clear()  # a new scan learns the devices afresh
            # Active, as phones scan: scannable towers answer with their scan response.
            await device.start_scanning(active=True, filter_duplicates=False)

    async def stop_scan(self, listener: Callable[[VirtualReport, AdvertisementData], None]) -> None:
        self._scan_listeners.discard(listener)
        if not self._scan_listeners and self._device is not None and self._device.is_scanning:
            await self._device.stop_scanning()

    async def connect(self, address: Address, timeout: float) -> Connection:
        device = await self.device()
        assert self._connect_lock is not None
        async with self._connect_lock:  # bumble allows one pending LE connection at a time
            return await device.connect(address, timeout=timeout)


class _LinkAdapter(_Adapter):
    """The adapter on an in-process link: its controller joins the link, its events stay in memory."""

    def __init__(self, link: LocalLink) -> None:
        super().__init__(getattr(link, "loop", None))
        self.link = link

    async def _new_device(self) -> Device:
        number = next(_ADDRESSES)
        address = f"C0:00:00:00:{number >> 8 & 0xFF:02X}:{number & 0xFF:02X}"
        name = f"harness-central-{number}"
        make = getattr(self.link, "central_controller", None)
        controller = make(name, address) if callable(make) else Controller(name, link=self.link, public_address=address)
        return Device(name="locker-harness", address=Address(address), host=Host(controller, AsyncPipeSink(controller)))


class _HciAdapter(_Adapter):
    """The adapter on a virtual radio of another process, reached as raw HCI over TCP (``address``).

    It runs on a thread and event loop of its own, so its connection outlives the caller's
    ``asyncio.run`` as a phone's adapter outlives an app's screen. When the socket closes, every
    connection reports lost and the thread ends; ``alive`` then says a new adapter is needed.
    """

    def __init__(self, address: str) -> None:
        self.address = address
        self.lost = False
        loop = asyncio.new_event_loop()
        ready = threading.Event()

        def run() -> None:
            asyncio.set_event_loop(loop)
            loop.call_soon(ready.set)
            loop.run_forever()
            # What still waits on the radio ends now (its callers see "abandoned"), then the loop closes.
            pending = asyncio.all_tasks(loop)
            for task in pending:
                task.cancel()
            loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

        self._thread = threading.Thread(target=run, name="virtual-adapter", daemon=True)
        self._thread.start()
        if not ready.wait(_START_TIMEOUT):
            raise BleakError("the virtual adapter's thread did not start")
        super().__init__(loop)

    @property
    def alive(self) -> bool:
        return not self.lost and self._thread.is_alive()

    async def _power_on(self) -> Device:
        try:
            return await super()._power_on()
        except core.BaseBumbleError as exc:  # the socket went away during the HCI reset
            raise BleakError(f"the virtual radio at {self.address} failed: {exc}") from None

    async def _new_device(self) -> Device:
        try:
            transport = await asyncio.wait_for(open_transport(self.address), _START_TIMEOUT)
        except (OSError, TimeoutError, core.BaseBumbleError) as exc:
            raise BleakError(
                f"the virtual radio at {self.address} does not answer: {exc or type(exc).__name__}"
            ) from None
        device = Device.with_hci("locker-harness", Address.generate_static_address(), transport.source, transport.sink)
        terminated: asyncio.Future[None] = getattr(transport.source, "terminated")  # noqa: B009  # not in bumble's Protocol
        terminated.add_done_callback(lambda _: self._on_lost(device))
        return device

    def _on_lost(self, device: Device) -> None:
        """The socket closed (radio loop): every link is lost, as when an adapter vanishes; then stop."""
        self.lost = True
        for handle in list(device.connections):
            device.on_disconnection(handle, hci.HCI_CONNECTION_TIMEOUT_ERROR)
        assert self.loop is not None
        self.loop.call_soon(self.loop.stop)


_adapters: weakref.WeakKeyDictionary[LocalLink, _Adapter] = weakref.WeakKeyDictionary()
_hci_adapters: dict[str, _HciAdapter] = {}
_hci_lock = threading.Lock()


def _adapter(link: object) -> _Adapter:
    if isinstance(link, str):
        return _hci_adapter(link)
    if not isinstance(link, LocalLink):
        raise BleakError(
            "the virtual backend needs link=<the virtual radio's LocalLink> or its transport 'tcp-client:HOST:PORT'"
        )
    adapter = _adapters.get(link)
    if adapter is None or adapter.loop is not getattr(link, "loop", None):  # a radio restarted: new adapter
        adapter = _adapters[link] = _LinkAdapter(link)
    return adapter


def _hci_adapter(address: str) -> _HciAdapter:
    """The adapter for the virtual radio at ``address``: the one already connected, or a new one."""
    if TRANSPORT_PATTERN.fullmatch(address) is None:
        raise BleakError(
            f"the virtual backend reaches another process's radio at 'tcp-client:HOST:PORT', not {address!r}"
        )
    with _hci_lock:
        adapter = _hci_adapters.get(address)
        if adapter is None or not adapter.alive:  # that radio stopped (or never answered): start afresh
            adapter = _hci_adapters[address] = _HciAdapter(address)
        return adapter


async def _while_up(connection: Connection, operation: Awaitable[_T]) -> _T:
    """``operation``, or a ``BleakError`` as soon as the link goes down under it (radio loop only).

    bumble leaves a GATT request waiting for its 30 s ATT timeout when the link is lost; an OS stack
    fails it at once, and so does this.
    """
    task: asyncio.Future[_T] = asyncio.ensure_future(operation)
    lost: asyncio.Future[Any] = asyncio.get_running_loop().create_future()

    def on_lost(reason: int) -> None:
        if not lost.done():
            lost.set_result(reason)

    connection.on(connection.EVENT_DISCONNECTION, on_lost)
    try:
        await asyncio.wait((task, lost), return_when=asyncio.FIRST_COMPLETED)
    except asyncio.CancelledError:
        task.cancel()
        raise
    finally:
        connection.remove_listener(connection.EVENT_DISCONNECTION, on_lost)
    if task.done() and not task.cancelled():
        return task.result()
    task.cancel()
    reason = f"HCI reason 0x{lost.result():02X}" if lost.done() else "cancelled by the stack"
    raise BleakError(f"the link was lost during the operation ({reason})")


def _learn(known: _Known, data: AdvertisingData) -> None:
    """Fold one report's AD structures into what is known of the device (latest value per key)."""
    name = data.get(AdvertisingData.COMPLETE_LOCAL_NAME) or data.get(AdvertisingData.SHORTENED_LOCAL_NAME)
    if isinstance(name, str):
        known.name = name
    for company, payload in data.get_all(AdvertisingData.MANUFACTURER_SPECIFIC_DATA):
        known.manufacturer[int(company)] = bytes(payload)
    for kind in (
        AdvertisingData.COMPLETE_LIST_OF_16_BIT_SERVICE_CLASS_UUIDS,
        AdvertisingData.INCOMPLETE_LIST_OF_16_BIT_SERVICE_CLASS_UUIDS,
        AdvertisingData.COMPLETE_LIST_OF_128_BIT_SERVICE_CLASS_UUIDS,
        AdvertisingData.INCOMPLETE_LIST_OF_128_BIT_SERVICE_CLASS_UUIDS,
    ):
        for uuids in data.get_all(kind):
            for value in uuids:
                text = _uuid_str(value)
                if text not in known.service_uuids:
                    known.service_uuids.append(text)


class VirtualBleakScanner(BaseBleakScanner):
    """bleak scanner backend: reports the virtual towers' advertisements as they repeat."""

    def __init__(
        self,
        detection_callback: AdvertisementDataCallback | None,
        service_uuids: list[str] | None,
        scanning_mode: Literal["active", "passive"] = "active",
        *,
        link: object = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(detection_callback, service_uuids)
        self._adapter = _adapter(link)
        self._caller_loop: asyncio.AbstractEventLoop | None = None

    def _on_advertisement(self, report: VirtualReport, data: AdvertisementData) -> None:
        # Called on the radio's loop: hand the report to the caller's loop.
        if self._caller_loop is None or self._caller_loop.is_closed():
            return
        if self._caller_loop is self._adapter.loop or self._adapter.loop is None:
            self._report(report, data)
        else:
            self._caller_loop.call_soon_threadsafe(self._report, report, data)

    def _report(self, report: VirtualReport, data: AdvertisementData) -> None:
        if not self.is_allowed_uuid(data.service_uuids):
            return
        address = str(report.address)
        device = self.create_or_update_device(address, address, data.local_name, report, data)
        self.call_detection_callbacks(device, data)

    async def start(self) -> None:
        self._caller_loop = asyncio.get_running_loop()
        self.seen_devices = {}
        await self._adapter.run(self._adapter.start_scan(self._on_advertisement))

    async def stop(self) -> None:
        await self._adapter.run(self._adapter.stop_scan(self._on_advertisement))
        self._caller_loop = None


class VirtualBleakClient(BaseBleakClient):
    """bleak client backend: connects through the virtual central and speaks real ATT/GATT."""

    def __init__(
        self,
        address_or_ble_device: BLEDevice | str,
        *,
        link: object = None,
        services: set[str] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            address_or_ble_device,
            disconnected_callback=kwargs.pop("disconnected_callback", None),
            timeout=kwargs.pop("timeout", 10.0),
        )
        self._adapter = _adapter(link)
        details = address_or_ble_device.details if isinstance(address_or_ble_device, BLEDevice) else None
        self._address = details.address if isinstance(details, VirtualReport) else Address(self.address)
        self._connection: Connection | None = None
        self._peer: Peer | None = None
        self._caller_loop: asyncio.AbstractEventLoop | None = None
        self._subscribers: dict[int, Callable[[bytes], None]] = {}
        #: Services to resolve (bleak's ``services=``, honoured as CoreBluetooth and WinRT do); all if None.
        self._wanted = None if services is None else [core.UUID(u) for u in services]

    # -- connection -------------------------------------------------------------------------------

    @property
    def mtu_size(self) -> int:
        return self._connection.att_mtu if self._connection is not None else 23

    @property
    def is_connected(self) -> bool:
        return self._connection is not None

    @property
    def name(self) -> str:
        return str(self._address)

    async def connect(self, pair: bool, **kwargs: Any) -> None:
        self._caller_loop = asyncio.get_running_loop()
        try:
            self.services = await asyncio.wait_for(self._adapter.run(self._connect()), self._timeout)
        except TimeoutError as exc:
            raise BleakError(f"virtual connect to {self._address} timed out after {self._timeout} s") from exc
        except core.BaseBumbleError as exc:
            raise BleakError(f"virtual connect to {self._address} failed: {exc}") from exc

    async def _connect(self) -> BleakGATTServiceCollection:
        connection = await self._adapter.connect(self._address, timeout=self._timeout)
        connection.on(connection.EVENT_DISCONNECTION, self._on_disconnection)
        self._connection = connection
        peer = self._peer = Peer(connection)
        return await _while_up(connection, self._set_up(peer))

    async def _set_up(self, peer: Peer) -> BleakGATTServiceCollection:
        await peer.request_mtu(REQUESTED_MTU)
        collection = BleakGATTServiceCollection()
        for service in await self._discover_services(peer):
            bleak_service = BleakGATTService(service, service.handle, _uuid_str(service.uuid))
            collection.add_service(bleak_service)
            for characteristic in await peer.discover_characteristics(service=service):
                bleak_characteristic = BleakGATTCharacteristic(
                    characteristic,
                    characteristic.handle,
                    _uuid_str(characteristic.uuid),
                    _properties(int(characteristic.properties)),
                    lambda: self.mtu_size - 3,
                    bleak_service,
                )
                collection.add_characteristic(bleak_characteristic)
                if not characteristic.properties & _NOTIFY_OR_INDICATE:
                    continue  # only the CCCD matters to a client; skipping the rest saves round trips
                for descriptor in await peer.discover_descriptors(characteristic=characteristic):
                    collection.add_descriptor(
                        BleakGATTDescriptor(
                            descriptor, descriptor.handle, _uuid_str(descriptor.type), bleak_characteristic
                        )
                    )
        return collection

    async def _discover_services(self, peer: Peer) -> list[ServiceProxy]:
        """The wanted services by UUID (Find By Type Value), as CoreBluetooth does with a filter:
        walking every primary service would cost round trips a phone does not make."""
        if self._wanted is None:
            return list(await peer.discover_services())
        found: list[ServiceProxy] = []
        for wanted in self._wanted:
            found.extend(await peer.discover_service(wanted))
        return found

    def _on_disconnection(self, reason: int) -> None:
        # Radio loop: forget the link, then tell bleak's caller on its own loop.
        self._connection = None
        self._peer = None
        callback = self._disconnected_callback
        loop = self._caller_loop
        if callback is not None and loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(callback)

    async def disconnect(self) -> None:
        connection = self._connection
        if connection is None:
            return
        self._disconnected_callback = None  # bleak calls it only for unsolicited disconnections

        async def leave() -> None:
            # On the radio's loop: the tower may have dropped the link already (then bumble's
            # controller would leave an HCI Disconnect for a gone handle pending for ever).
            if self._connection is connection:
                await connection.disconnect()

        try:
            await asyncio.wait_for(self._adapter.run(leave()), self._timeout)
        except core.BaseBumbleError:
            pass  # already gone: the promise holds either way
        except TimeoutError as exc:
            raise BleakError(f"virtual disconnect from {self._address} timed out after {self._timeout} s") from exc
        finally:
            # Forgotten whatever happened: a link that would not say goodbye is not used again.
            self._connection = None
            self._peer = None

    async def pair(self, *args: Any, **kwargs: Any) -> None:
        """The virtual radio has no security manager to pair with; towers do not ask for pairing [S]."""

    async def unpair(self) -> None:
        """Nothing to forget: see ``pair``."""

    # -- GATT -------------------------------------------------------------------------------------

    def _require_peer(self) -> Peer:
        if self._peer is None:
            raise BleakError("Not connected")
        return self._peer

    async def _gatt(self, action: Callable[[Peer], Awaitable[_T]]) -> _T:
        peer = self._require_peer()

        async def call() -> _T:
            return await _while_up(peer.connection, action(peer))

        try:
            return await self._adapter.run(call())
        except (core.BaseBumbleError, ConnectionError) as exc:
            raise BleakError(f"virtual GATT operation failed: {exc}") from exc

    async def read_gatt_char(
        self, characteristic: BleakGATTCharacteristic, *, use_cached: bool = False, **kwargs: Any
    ) -> bytearray:
        return bytearray(await self._gatt(lambda peer: peer.read_value(characteristic.obj)))

    async def read_gatt_descriptor(
        self, descriptor: BleakGATTDescriptor, *, use_cached: bool = False, **kwargs: Any
    ) -> bytearray:
        return bytearray(await self._gatt(lambda peer: peer.read_value(descriptor.obj)))

    async def write_gatt_char(self, characteristic: BleakGATTCharacteristic, data: SizedBuffer, response: bool) -> None:
        value = bytes(data)
        limit = self.mtu_size - assumptions.ATT_WRITE_OVERHEAD
        if not response and len(value) > limit:
            # What BlueZ and WinRT answer: a write command must fit one ATT PDU (no long writes).
            raise BleakError(
                f"write without response of {len(value)} bytes refused: the link carries at most {limit} "
                f"(ATT MTU {self.mtu_size} - 3)"
            )
        await self._gatt(lambda peer: peer.write_value(characteristic.obj, value, with_response=response))

    async def write_gatt_descriptor(self, descriptor: BleakGATTDescriptor, data: SizedBuffer) -> None:
        value = bytes(data)
        await self._gatt(lambda peer: peer.write_value(descriptor.obj, value, with_response=True))

    async def start_notify(
        self, characteristic: BleakGATTCharacteristic, callback: NotifyCallback, **kwargs: Any
    ) -> None:
        caller = asyncio.get_running_loop()
        radio = self._adapter.loop

        def deliver(value: bytes) -> None:
            # Radio loop -> caller's loop, in order (call_soon_threadsafe keeps FIFO order).
            if radio is None or radio is caller:
                callback(bytearray(value))
            elif not caller.is_closed():
                caller.call_soon_threadsafe(callback, bytearray(value))

        proxy: CharacteristicProxy[bytes] = characteristic.obj
        self._subscribers[characteristic.handle] = deliver
        await self._gatt(lambda peer: peer.subscribe(proxy, deliver))

    async def stop_notify(self, characteristic: BleakGATTCharacteristic) -> None:
        deliver = self._subscribers.pop(characteristic.handle, None)
        proxy: CharacteristicProxy[bytes] = characteristic.obj
        await self._gatt(lambda peer: peer.unsubscribe(proxy, deliver))
