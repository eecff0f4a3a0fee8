"""Which radio the BLE client uses: chosen by name, as bleak chooses its OS backend.

``virtual`` (the default) reaches the virtual sandbox's towers through bumble; it needs the
sandbox's link (or the transport address of a sandbox that serves its radio to other processes)
and imports bumble only when chosen. ``bleak`` is bleak's own backend for this OS
(BlueZ, CoreBluetooth, WinRT): a real radio and a bench tower. ``HARBOR_BLE`` picks one.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from bleak import BleakClient, BleakScanner
from bleak.backends.client import BaseBleakClient
from bleak.backends.device import BLEDevice
from bleak.backends.scanner import AdvertisementDataCallback, BaseBleakScanner

from harness.errors import UsageError

__all__ = ["BACKENDS", "BACKEND_ENV", "Radio", "choose_backend"]

BACKEND_ENV = "HARBOR_BLE"
BACKENDS = ("virtual", "bleak")


@dataclass(frozen=True, slots=True)
class Radio:
    """A radio: how to make bleak scanners and clients on it (``harness.config.BleBackend`` is the
    setting that names one; ``choose_backend`` makes it)."""

    name: str
    scanner_backend: type[BaseBleakScanner] | None = None
    client_backend: type[BaseBleakClient] | None = None
    #: Extra keyword arguments bleak hands to the backends' constructors (the virtual link).
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def is_virtual(self) -> bool:
        return self.name == "virtual"

    def scanner(self, callback: AdvertisementDataCallback | None, service_uuids: list[str]) -> BleakScanner:
        return BleakScanner(callback, service_uuids, backend=self.scanner_backend, **self.extra)

    def client(
        self,
        device: BLEDevice | str,
        *,
        timeout: float,
        disconnected_callback: Callable[[BleakClient], None] | None = None,
        services: list[str] | None = None,
    ) -> BleakClient:
        """A bleak client; ``services`` limits GATT discovery where the backend allows (not BlueZ)."""
        return BleakClient(
            device,
            disconnected_callback,
            services,
            timeout=timeout,
            backend=self.client_backend,
            **self.extra,
        )


def choose_backend(name: str | None = None, *, link: object | None = None) -> Radio:
    """The backend called ``name`` (default: ``$HARBOR_BLE``, else ``virtual``).

    ``link``, required by ``virtual``, is the virtual radio: its link in this process
    (``VirtualSandbox.radio.link``), or the transport address another process serves it at
    (``tcp-client:HOST:PORT``, as a sandbox's ``GET /_sim/radio`` announces it).
    """
    chosen = (name or os.environ.get(BACKEND_ENV) or "virtual").strip().lower()
    if chosen == "bleak":
        return Radio("bleak")
    if chosen != "virtual":
        raise UsageError(f"{BACKEND_ENV}={chosen!r} is not a BLE backend; choose one of: {', '.join(BACKENDS)}")
    if link is None:
        raise UsageError(
            "the virtual BLE radio exists only with the local target; "
            f"for a bench tower set {BACKEND_ENV}=bleak and give its tower id"
        )
    from harness.ble._virtual import TRANSPORT_PATTERN, VirtualBleakClient, VirtualBleakScanner  # bumble only here

    if isinstance(link, str) and TRANSPORT_PATTERN.fullmatch(link) is None:
        raise UsageError(f"the virtual radio's transport must be tcp-client:HOST:PORT, not {link!r}")
    return Radio("virtual", VirtualBleakScanner, VirtualBleakClient, {"link": link})
