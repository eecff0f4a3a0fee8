"""``BleDoorOpener``: the flow's door opener over Bluetooth LE (structurally a ``flow.DoorOpener``).

``open`` scans for the locker's tower, connects, opens a session and sends the token;
``wait_closed`` polls the door until the person shut it, carries the tower's events to Harbor
(so the API learns of the door), ends the session and drops the link. Each phase lands in the
opener's ``PhaseTimer``.

A link failure raises ``BleLinkError`` (infrastructure, exit 4) unless ``retries`` allows another
go: the opener then starts over from the scan with a new session, as a person with a phone would.

``BleDoorOpener.for_api(api, radio)`` is the seam ``smoke``, ``hw`` and the hardware rig open doors
through: session tokens and event uploads go through any client shaped like ``HarborSdk``
(``harness.api.AsyncHarborClient`` is one), which this package never imports.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Sequence
from typing import Any, Protocol

from harness.ble._backend import Radio
from harness.ble._client import (
    DEFAULT_RESPONSE_TIMEOUT,
    EventUpload,
    SessionTokenSource,
    TowerClient,
    find_tower,
)
from harness.ble._errors import BleLinkError
from harness.ble._timing import Phase, PhaseTimer
from harness.errors import HarnessError
from harness.model import TowerEventBatch, TowerId

__all__ = ["BleDoorOpener", "HarborSdk"]

log = logging.getLogger(__name__)


class _Locker(Protocol):
    @property
    def id(self) -> int: ...

    @property
    def tower_id(self) -> TowerId: ...


class _Token(Protocol):
    @property
    def payload(self) -> str: ...

    @property
    def payload_auth(self) -> str: ...


class HarborSdk(Protocol):
    """What the opener asks of Harbor's SDK API: ``harness.api.AsyncHarborClient`` fits.

    ``upload_tower_events`` gets ``harness.model.TowerEventBatch``es, the type the API client's
    own method takes.
    """

    def create_session_token(self, tower_id: TowerId, version: str, /) -> Awaitable[Any]: ...

    def upload_tower_events(self, tower_id: TowerId, batches: Sequence[TowerEventBatch], /) -> Awaitable[Any]: ...


class BleDoorOpener:
    """Opens lockers the way Harbor's phone SDK does; one tower connection per open door."""

    def __init__(
        self,
        backend: Radio,
        *,
        session_token: SessionTokenSource,
        upload_events: EventUpload | None = None,
        timer: PhaseTimer | None = None,
        response_timeout: float = DEFAULT_RESPONSE_TIMEOUT,
        scan_timeout: float = 20.0,
        connect_timeout: float = 20.0,
        door_poll_interval: float = 0.05,
        busy_delay: float = 2.0,
        retries: int = 0,
    ) -> None:
        self.backend = backend
        self._session_token = session_token
        self._upload_events = upload_events
        self.timer = timer if timer is not None else PhaseTimer()
        self.response_timeout = response_timeout
        self.scan_timeout = scan_timeout
        self.connect_timeout = connect_timeout
        self.door_poll_interval = door_poll_interval
        self.busy_delay = busy_delay
        self.retries = retries
        self._open: dict[int, TowerClient] = {}
        #: Link failures survived thanks to ``retries`` (evidence for the report, not hidden).
        self.link_failures: list[BleLinkError] = []
        #: ``perf_counter_ns()`` when each locker's door was last seen shut: the start of
        #: "door closed -> status visible in the API" (``Phase.API_STATUS``), which the caller ends.
        self.closed_at_ns: dict[int, int] = {}
        #: The firmware version each tower advertised (tower id -> version), for the run's evidence.
        self.firmware: dict[str, str] = {}

    @classmethod
    def for_api(
        cls,
        api: HarborSdk,
        backend: Radio,
        *,
        timer: PhaseTimer | None = None,
        response_timeout: float | None = None,
        retries: int = 0,
    ) -> BleDoorOpener:
        """An opener over ``backend`` that gets its session tokens from ``api`` and uploads the
        tower's events through it (so the API learns of the doors, as Harbor's phones make it)."""
        return cls(
            backend,
            session_token=api.create_session_token,
            upload_events=api.upload_tower_events,
            timer=timer,
            response_timeout=DEFAULT_RESPONSE_TIMEOUT if response_timeout is None else response_timeout,
            retries=retries,
        )

    async def _connect(self, tower_id: TowerId) -> TowerClient:
        found = await find_tower(self.backend, tower_id, timeout=self.scan_timeout, timer=self.timer)
        if found.identity.firmware_version:
            self.firmware[tower_id] = found.identity.firmware_version
        client = TowerClient.over(
            self.backend,
            found.device,
            connect_timeout=self.connect_timeout,
            tower_id=tower_id,
            response_timeout=self.response_timeout,
            timer=self.timer,
        )
        await client.connect()
        return client

    async def _drop(self, client: TowerClient) -> None:
        try:
            await client.disconnect()
        except HarnessError as exc:
            log.debug("disconnect after a failure failed too: %s", exc)

    async def open(self, locker: _Locker, token: _Token) -> int:
        """Present ``token`` at ``locker``'s tower over BLE; the id of the locker that opened."""
        await self._close_left_open(locker.id)
        for attempt in range(self.retries + 1):
            client: TowerClient | None = None
            try:
                client = await self._connect(locker.tower_id)
                await client.start_session(self._session_token)
                opened = await client.open_with_token(token.payload, token.payload_auth)
            except BleLinkError as exc:
                if client is not None:
                    await self._drop(client)
                if attempt == self.retries:
                    raise
                self.link_failures.append(exc)
                log.warning("BLE open of locker %s failed (%s); starting over", locker.id, exc)
                continue
            except BaseException:
                if client is not None:
                    await self._drop(client)
                raise
            self._open[locker.id] = client
            return opened
        raise AssertionError("unreachable")

    async def wait_closed(self, locker: _Locker, *, timeout: float) -> None:
        """Poll the door until it is shut, sync the tower's events, end the session."""
        client = self._open.pop(locker.id, None)
        if client is None:
            raise BleLinkError(
                f"no BLE session holds locker {locker.id} open", code=0, phase="door", locker_id=locker.id
            )
        try:
            await client.wait_door_closed(timeout=timeout, poll_interval=self.door_poll_interval)
            self.closed_at_ns[locker.id] = time.perf_counter_ns()
            if self._upload_events is not None:
                await client.sync_events(self._upload_events, busy_delay=self.busy_delay)
            await client.terminate()
        finally:
            await self._drop(client)

    def status_visible(self, locker_id: int) -> int | None:
        """Record "door closed -> the API shows the new status" now (call it when the API does)."""
        closed = self.closed_at_ns.pop(locker_id, None)
        if closed is None:
            return None
        duration = time.perf_counter_ns() - closed
        self.timer.record(Phase.API_STATUS, duration)
        return duration

    async def _close_left_open(self, locker_id: int) -> None:
        client = self._open.pop(locker_id, None)
        if client is not None:
            await self._drop(client)

    async def aclose(self) -> None:
        """Drop every link still open (after a failed flow)."""
        for locker_id in list(self._open):
            await self._close_left_open(locker_id)

    async def __aenter__(self) -> BleDoorOpener:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()
