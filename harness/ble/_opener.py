"""``BleDoorOpener``: the flow's door opener over Bluetooth LE (structurally a ``flow.DoorOpener``).

``open`` scans for the locker's tower, connects, opens a session and sends the token;
``wait_closed`` polls the door until the person shut it, carries the tower's events to Harbor
(so the API learns of the door), ends the session and drops the link. Each phase lands in the
opener's ``PhaseTimer``.

A link failure raises ``BleLinkError`` (infrastructure, exit 4, naming the phase) unless
``retries`` allows another go, as a person with a phone would: a failed ``open`` starts over from
the scan with a new session (the token is presented again); a link lost while waiting for the door
reconnects, opens a new session and resumes, watching the door with CHECK_ALL_LOCKER_DOORS (a new
session has no "last opened locker" for CHECK_LOCKER_DOOR), then syncs and ends the session.

On each tower's first connection the opener keeps what a run's report shows of it (``towers``): the
advertisement layout the OS presented and the negotiated ATT MTU, and with ``device_info`` the
firmware's GET_DEVICE_INFO (one more command on that connection; a tower that refuses it is noted,
not failed: the command may need a technician's session there).

``BleDoorOpener.for_api(api, radio)`` is the seam ``smoke``, ``hw`` and the hardware rig open doors
through: session tokens and event uploads go through any client shaped like ``HarborSdk``
(``harness.api.AsyncHarborClient`` is one), which this package never imports.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from harness.ble._backend import Radio
from harness.ble._client import (
    DEFAULT_RESPONSE_TIMEOUT,
    EventUpload,
    SessionTokenSource,
    TowerClient,
    find_tower,
)
from harness.ble._errors import BleLinkError, TowerRefused
from harness.ble._timing import Phase, PhaseTimer
from harness.ble.protocol import AdvertLayout, DeviceInfo
from harness.errors import HarnessError
from harness.model import TowerEventBatch, TowerId

__all__ = ["BleDoorOpener", "HarborSdk", "TowerSeen"]

log = logging.getLogger(__name__)


class _Locker(Protocol):
    @property
    def id(self) -> int: ...

    @property
    def tower_id(self) -> TowerId: ...


@dataclass(frozen=True, slots=True)
class TowerSeen:
    """What the opener learnt of a tower on its first connection (evidence for a run's report)."""

    tower_id: str
    layout: AdvertLayout | None
    mtu: int
    device_info: DeviceInfo | None = None
    #: Why GET_DEVICE_INFO gave nothing (the tower's refusal), if it did not.
    device_info_error: str | None = None


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
        device_info: bool = False,
    ) -> None:
        self.backend = backend
        self.device_info = device_info
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
        #: What each tower showed on its first connection: layout, MTU, device info.
        self.towers: dict[str, TowerSeen] = {}
        self._layouts: dict[str, AdvertLayout | None] = {}

    @classmethod
    def for_api(
        cls,
        api: HarborSdk,
        backend: Radio,
        *,
        timer: PhaseTimer | None = None,
        response_timeout: float | None = None,
        retries: int = 0,
        device_info: bool = False,
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
            device_info=device_info,
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
        self._layouts[tower_id] = found.layout
        await client.connect()
        return client

    async def _session(self, client: TowerClient, tower_id: str) -> None:
        await client.start_session(self._session_token)
        if tower_id in self.towers:
            return
        info, error = None, None
        if self.device_info:
            try:
                info = await client.device_info()
            except TowerRefused as refused:
                error = str(refused)
        self.towers[tower_id] = TowerSeen(tower_id, self._layouts.get(tower_id), client.mtu, info, error)

    async def _drop(self, client: TowerClient) -> None:
        try:
            await client.disconnect()
        except HarnessError as exc:
            log.debug("disconnect after a failure failed too: %s", exc)

    async def open(self, locker: _Locker, token: _Token) -> int:
        """Present ``token`` at ``locker``'s tower over BLE; the id of the locker that opened.

        A retry after an OPEN whose answer was lost first asks the tower whether the locker's door
        stands open (CHECK_ALL_LOCKER_DOORS): if it does, the earlier attempt opened it and the
        opening resumes from there; presenting the token again would be refused at an open door.
        """
        await self._close_left_open(locker.id)
        door = _door_label(locker)
        maybe_opened = False  # an earlier attempt's OPEN may have reached the tower
        for attempt in range(self.retries + 1):
            client: TowerClient | None = None
            try:
                client = await self._connect(locker.tower_id)
                await self._session(client, locker.tower_id)
                if maybe_opened and door is not None and door in await client.doors_open():
                    log.info("locker %s's door stands open: the earlier attempt opened it", locker.id)
                    self._open[locker.id] = client
                    return locker.id
                opened = await client.open_with_token(token.payload, token.payload_auth)
            except BleLinkError as exc:
                if client is not None:
                    await self._drop(client)
                if attempt == self.retries:
                    raise
                maybe_opened = maybe_opened or exc.phase == Phase.OPEN.short
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
        """Poll the door until it is shut, sync the tower's events, end the session; a lost link is
        reconnected and the wait resumed while ``retries`` allow (bounded by ``timeout`` in all).

        Where no session of this opener holds the locker open (a give-back after the link was lost),
        the door is watched over a new link and session by its label, as a resumed wait is: what the
        door is, and the tower's events, are learned, not guessed."""
        client: TowerClient | None = self._open.pop(locker.id, None)
        door = _door_label(locker)
        if client is None and door is None:
            raise BleLinkError(
                f"no BLE session holds locker {locker.id} open, and CHECK_ALL_LOCKER_DOORS knows no door "
                f"of its name {getattr(locker, 'name', '')!r}: whether its door is shut is not known",
                code=0,
                phase="door",
                locker_id=locker.id,
            )
        deadline = time.monotonic() + timeout
        opened_at_ns = client.opened_at_ns if client is not None else None
        for attempt in range(self.retries + 1):
            try:
                if client is None:  # resuming: a new link and session, watching the door by its label
                    client = await self._connect(locker.tower_id)
                    await self._session(client, locker.tower_id)
                if client.last_opened != locker.id:  # a session that did not open the door itself
                    await client.wait_door_closed(
                        timeout=max(0.0, deadline - time.monotonic()),
                        poll_interval=self.door_poll_interval,
                        door=door,
                        opened_at_ns=opened_at_ns,
                    )
                else:
                    await client.wait_door_closed(
                        timeout=max(0.0, deadline - time.monotonic()), poll_interval=self.door_poll_interval
                    )
                self.closed_at_ns[locker.id] = time.perf_counter_ns()
                if self._upload_events is not None:
                    await client.sync_events(self._upload_events, busy_delay=self.busy_delay)
                await client.terminate()
                return
            except BleLinkError as exc:
                if attempt == self.retries or door is None:
                    raise
                self.link_failures.append(exc)
                log.warning("BLE link lost while locker %s's door was open (%s); reconnecting", locker.id, exc)
            finally:
                if client is not None:
                    await self._drop(client)
                    client = None
        raise AssertionError("unreachable")

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


def _door_label(locker: _Locker) -> int | None:
    """The locker's door label (its ``name``) as CHECK_ALL_LOCKER_DOORS numbers it, if it is a number
    (``assumptions.DOOR_BITFIELD_BY_LABEL``); ``None`` when the locker says none."""
    name = getattr(locker, "name", "")
    return int(name) if isinstance(name, str) and name.isdigit() else None
