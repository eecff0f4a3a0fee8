"""The phases of a BLE door opening, each timed on its own with ``perf_counter_ns``."""

from __future__ import annotations

import enum
import time
from collections.abc import Iterator
from contextlib import contextmanager

from harness.metrics import Latencies

__all__ = ["Phase", "PhaseTimer"]


class Phase(enum.StrEnum):
    """Histogram names, in the order a door opening passes through them."""

    SCAN = "ble.scan"  # scanner started -> the tower's advertisement seen
    CONNECT = "ble.connect"  # link up, the OS's GATT discovery included (bleak does both in connect)
    DISCOVERY = "ble.discovery"  # UART characteristics found, TX notifications on, device info read
    SESSION_TOKEN = "ble.session_token"  # the SDK API's session-token call
    SESSION = "ble.session"  # REQUEST_SESSION -> GRANT_SESSION opened
    DEVICE_INFO = "ble.device_info"  # GET_DEVICE_INFO -> DEVICE_INFO
    FIND = "ble.find"  # FIND_AVAILABLE_LOCKERS -> FOUND_LOCKERS
    OPEN = "ble.open"  # OPEN_LOCKER_WITH_TOKEN written -> LOCKER_OPENED read
    DOOR = "ble.door"  # LOCKER_OPENED -> CHECK_LOCKER_DOOR reports the door closed
    SYNC = "ble.sync"  # REQUEST_SYNC_STATUS ... SYNC_MARK_SEEN_EVENTS, uploads included
    API_STATUS = "ble.api_status"  # door closed -> the API shows the locker's new status
    TERMINATE = "ble.terminate"  # TERMINATE_SESSION -> ACK

    @property
    def short(self) -> str:
        return self.value.removeprefix("ble.")


class PhaseTimer:
    """Records each phase's duration into ``latencies`` (one HdrHistogram per phase)."""

    def __init__(self, latencies: Latencies | None = None) -> None:
        self.latencies = latencies if latencies is not None else Latencies()
        #: The last duration of each phase, in ns (for one-off reports and tests).
        self.last: dict[Phase, int] = {}

    def record(self, phase: Phase, duration_ns: int) -> None:
        self.last[phase] = duration_ns
        self.latencies.record(phase.value, duration_ns)

    @contextmanager
    def time(self, phase: Phase) -> Iterator[None]:
        """Time the block; a block that raises is not recorded (a failure is not a latency)."""
        start = time.perf_counter_ns()
        yield
        self.record(phase, time.perf_counter_ns() - start)
