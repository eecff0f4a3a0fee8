"""A bleak backend (client and scanner) over bumble's in-process radio: the virtual radio.

Plain bleak code reaches a virtual tower through bumble's real ATT/GATT stack::

    BleakScanner(..., backend=VirtualBleakScanner, link=radio_link)
    BleakClient(device, backend=VirtualBleakClient, link=radio_link)

``link`` is a ``bumble.link.LocalLink`` the virtual sandbox made (an opaque object to the
client). If it has a ``loop`` attribute, the radio runs on that event loop (in its own thread)
and every bumble call is made there; bleak's callbacks are brought back to the caller's loop.
Without it, the radio shares the caller's loop.

One virtual "adapter" (a bumble central device) serves every scanner and client on a link, as
a phone's one Bluetooth adapter does. This is the only client-side module that imports bumble.
Errors leave it as ``BleakError``, exactly as a real backend's would, so the layer above
translates one kind of error whatever the radio.
"""

from __future__ import annotations

import asyncio
import itertools
import uuid
import weakref
from collections.abc import Awaitable, Callable, Coroutine
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
from bumble import core
from bumble.controller import Controller
from bumble.core import AdvertisingData
from bumble.device import Advertisement, Connection, Device, Peer
from bumble.gatt_client import CharacteristicProxy, ServiceProxy
from bumble.hci import Address
from bumble.host import Host
from bumble.link import LocalLink
from bumble.transport.common import AsyncPipeSink

__all__ = ["VirtualBleakClient", "VirtualBleakScanner"]

_T = TypeVar("_T")

#: The MTU the virtual central asks for; bumble peripherals grant up to 247 (as iOS/Android do).
REQUESTED_MTU = 247

_ADDRESSES = itertools.count(1)
_NOTIFY_OR_INDICATE = 0x10 | 0x20


def _uuid_str(value: core.UUID) -> str:
    """bleak's form of a UUID: lower-case, 128-bit, dashed."""
    return str(uuid.UUID(bytes=bytes(reversed(value.to_bytes(force_128=True)))))


def _properties(flags: int) -> list[CharacteristicPropertyName]:
    return [name for bit, name in CHARACTERISTIC_PROPERTIES.items() if flags & bit]


class _Adapter:
    """The virtual phone's Bluetooth adapter on one link: a bumble central, powered on first use."""

    def __init__(self, link: LocalLink) -> None:
        self.link = link
        self.loop: asyncio.AbstractEventLoop | None = getattr(link, "loop", None)
        self._device: Device | None = None
        self._power_lock = asyncio.Lock()  # binds to the radio's loop on first use
        self._connect_lock: asyncio.Lock | None = None
        self._scan_listeners: set[Callable[[Advertisement], None]] = set()

    async def run(self, coro: Coroutine[Any, Any, _T]) -> _T:
        """Run ``coro`` on the radio's loop and wait for it from the caller's loop."""
        if self.loop is None or self.loop is asyncio.get_running_loop():
            return await coro
        if self.loop.is_closed() or not self.loop.is_running():
            coro.close()
            raise BleakError("the virtual radio is not running")
        return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(coro, self.loop))

    async def device(self) -> Device:
        """The central device (radio loop only)."""
        async with self._power_lock:
            return await self._power_on()

    async def _power_on(self) -> Device:
        if self._device is None:
            number = next(_ADDRESSES)
            address = f"C0:00:00:00:{number >> 8 & 0xFF:02X}:{number & 0xFF:02X}"
            controller = Controller(f"harness-central-{number}", link=self.link, public_address=address)
            device = Device(
                name="locker-harness", address=Address(address), host=Host(controller, AsyncPipeSink(controller))
            )
            device.on(device.EVENT_ADVERTISEMENT, self._on_advertisement)
            await device.power_on()
            self._device = device
            self._connect_lock = asyncio.Lock()
        return self._device

    def _on_advertisement(self, advertisement: Advertisement) -> None:
        for listener in list(self._scan_listeners):
            listener(advertisement)

    async def start_scan(self, listener: Callable[[Advertisement], None]) -> None:
        device = await self.device()
        first = not self._scan_listeners
        self._scan_listeners.add(listener)
        if first:
            # Towers may advertise with extended PDUs (their identity does not fit 31 bytes).
            await device.start_scanning(legacy=False, filter_duplicates=False)

    async def stop_scan(self, listener: Callable[[Advertisement], None]) -> None:
        self._scan_listeners.discard(listener)
        if not self._scan_listeners and self._device is not None and self._device.is_scanning:
            await self._device.stop_scanning()

    async def connect(self, address: Address, timeout: float) -> Connection:
        device = await self.device()
        assert self._connect_lock is not None
        async with self._connect_lock:  # bumble allows one pending LE connection at a time
            return await device.connect(address, timeout=timeout)


_adapters: weakref.WeakKeyDictionary[LocalLink, _Adapter] = weakref.WeakKeyDictionary()


def _adapter(link: object) -> _Adapter:
    if not isinstance(link, LocalLink):
        raise BleakError("the virtual backend needs link=<the virtual radio's LocalLink>")
    adapter = _adapters.get(link)
    if adapter is None or adapter.loop is not getattr(link, "loop", None):  # a radio restarted: new adapter
        adapter = _adapters[link] = _Adapter(link)
    return adapter


def _advertisement_data(advertisement: Advertisement) -> AdvertisementData:
    data = advertisement.data
    name = data.get(AdvertisingData.COMPLETE_LOCAL_NAME) or data.get(AdvertisingData.SHORTENED_LOCAL_NAME)
    manufacturer: dict[int, bytes] = {}
    for company, payload in data.get_all(AdvertisingData.MANUFACTURER_SPECIFIC_DATA):
        manufacturer[int(company)] = bytes(payload)
    service_uuids: list[str] = []
    for kind in (
        AdvertisingData.COMPLETE_LIST_OF_16_BIT_SERVICE_CLASS_UUIDS,
        AdvertisingData.INCOMPLETE_LIST_OF_16_BIT_SERVICE_CLASS_UUIDS,
        AdvertisingData.COMPLETE_LIST_OF_128_BIT_SERVICE_CLASS_UUIDS,
        AdvertisingData.INCOMPLETE_LIST_OF_128_BIT_SERVICE_CLASS_UUIDS,
    ):
        for uuids in data.get_all(kind):
            service_uuids.extend(_uuid_str(u) for u in uuids)
    tx_power = None if advertisement.tx_power == Advertisement.TX_POWER_NOT_AVAILABLE else advertisement.tx_power
    return AdvertisementData(
        local_name=name if isinstance(name, str) else None,
        manufacturer_data=manufacturer,
        service_data={},
        service_uuids=service_uuids,
        tx_power=tx_power,
        rssi=advertisement.rssi,
        platform_data=(advertisement,),
    )


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

    def _on_advertisement(self, advertisement: Advertisement) -> None:
        # Called on the radio's loop: hand the report to the caller's loop.
        data = _advertisement_data(advertisement)
        if self._caller_loop is None or self._caller_loop.is_closed():
            return
        if self._caller_loop is self._adapter.loop or self._adapter.loop is None:
            self._report(advertisement, data)
        else:
            self._caller_loop.call_soon_threadsafe(self._report, advertisement, data)

    def _report(self, advertisement: Advertisement, data: AdvertisementData) -> None:
        if not self.is_allowed_uuid(data.service_uuids):
            return
        address = str(advertisement.address)
        device = self.create_or_update_device(address, address, data.local_name, advertisement, data)
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
        self._address = details.address if isinstance(details, Advertisement) else Address(self.address)
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
        try:
            await asyncio.wait_for(self._adapter.run(connection.disconnect()), self._timeout)
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
            return await action(peer)

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
