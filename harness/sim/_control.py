"""The control plane under ``/_sim`` (docs/design.md, "Control plane"): not in the API document,
no auth, loopback only (the middleware enforces it).

Door routes call the tower's firmware exactly as the BLE server does, so the control plane is
"the firmware logic without the radio". A refusal answers ``{detail, code, name}`` with the Blink
error code. ``/_sim/radio`` says where the virtual radio is served to other processes (its HCI
transport address) and sets what a link gets (MTU, idle timeout, latency). ``/_sim/events`` is a
ring (``Retention.webhook_events``): a ``since`` older than its oldest event answers 410
``{detail, oldest, next}``, never a silent gap.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, Literal, Protocol

from fastapi import Body, FastAPI, Path, Query
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from harness.model import LockerStatus

from ._switchboard import Switchboard
from ._webhooks import Webhook
from ._world import EventsGone, World, WorldError
from .firmware import FirmwareRefusal, TowerFirmware

__all__ = ["ServedRadio", "add_control_routes"]

TowerId = Annotated[str, Path(pattern=r"^[0-9a-fA-F]{16}$")]
LockerId = Annotated[int, Path(ge=1)]


class ResetRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    seed: int | None = None


class AdvanceRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    seconds: Annotated[float, Field(ge=0, le=10 * 365 * 86_400, allow_inf_nan=False)]


class PresentedToken(BaseModel):
    model_config = ConfigDict(extra="forbid")
    payload: Annotated[str, Field(pattern=r"^([0-9a-fA-F]{2})*$")]
    payload_auth: Annotated[str, Field(pattern=r"^([0-9a-fA-F]{2})*$")]


class WebhookRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    url: Annotated[str, Field(min_length=1, max_length=2000)]
    secret: Annotated[str | None, Field(min_length=1, max_length=500)] = None


class ForceRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    status: Literal["available", "out_of_service"]


class RadioRequest(BaseModel):
    """What ``POST /_sim/radio`` may change, from the next connection (MTU, idle) or packet (latency) on."""

    model_config = ConfigDict(extra="forbid")
    mtu: Annotated[int, Field(ge=23, le=247)] | None = None
    idle_timeout: Annotated[float, Field(gt=0, le=86_400, allow_inf_nan=False)] | None = None
    connection_interval: Annotated[float, Field(ge=0, le=4, allow_inf_nan=False)] | None = None
    jitter: Annotated[float, Field(ge=0, le=4, allow_inf_nan=False)] | None = None


class ServedRadio(Protocol):
    """The sandbox's virtual radio as the control plane sees it (``harness.sim.radio.VirtualRadio``)."""

    def describe(self) -> dict[str, Any]: ...

    def reconfigure(
        self,
        *,
        mtu: int | None = None,
        idle_timeout: float | None = None,
        connection_interval: float | None = None,
        jitter: float | None = None,
    ) -> dict[str, Any]: ...


def _refusal(refusal: FirmwareRefusal) -> JSONResponse:
    return JSONResponse(
        {"detail": refusal.detail, "code": int(refusal.code), "name": refusal.name}, status_code=refusal.http_status
    )


def add_control_routes(app: FastAPI, world: World, radio: Callable[[], ServedRadio | None] = lambda: None) -> None:
    """The ``/_sim`` routes, bound to ``world`` and to the virtual radio ``radio()`` gives (if any)."""

    def the_radio() -> ServedRadio:
        served = radio()
        if served is None:
            raise WorldError(404, "this sandbox has no virtual radio on the air")
        return served

    def firmware(tower_id: str, locker_id: int) -> TowerFirmware:
        spec = world.locker_spec(tower_id, locker_id)  # 404 for an unknown tower or locker
        return world.firmwares[spec.tower_id]

    @app.post("/_sim/reset")
    async def reset(body: Annotated[ResetRequest | None, Body()] = None) -> JSONResponse:
        world.reset(None if body is None else body.seed)
        return JSONResponse({"seed": world.seed, "now": world.now()})

    @app.get("/_sim/state")
    async def state() -> JSONResponse:
        return JSONResponse(world.snapshot())

    @app.post("/_sim/clock/advance")
    async def advance_clock(body: AdvanceRequest) -> JSONResponse:
        with world.lock:
            return JSONResponse({"now": world.clock.advance(body.seconds)})

    def switchboard_routes(path: str, board: Switchboard) -> None:
        """``GET`` and ``POST`` of ``path`` for ``board``'s switches (an unknown name: 422, nothing changed)."""

        async def get_switches() -> JSONResponse:
            return JSONResponse(board.as_dict())

        async def set_switches(flags: Annotated[dict[str, bool], Body()]) -> JSONResponse:
            with world.lock:
                try:
                    board.update(flags)
                except KeyError as exc:
                    raise WorldError(422, str(exc.args[0])) from None
                return JSONResponse(board.as_dict())

        app.get(path)(get_switches)
        app.post(path)(set_switches)

    switchboard_routes("/_sim/bugs", world.bugs)
    switchboard_routes("/_sim/dialects", world.dialects)

    @app.get("/_sim/webhooks")
    async def get_webhooks() -> JSONResponse:
        return JSONResponse({"receivers": world.webhooks.receivers()})

    @app.post("/_sim/webhooks")
    async def add_webhook(body: WebhookRequest) -> JSONResponse:
        try:
            world.webhooks.add(Webhook(body.url, body.secret))
        except ValueError as exc:
            raise WorldError(422, str(exc)) from None
        return JSONResponse({"receivers": world.webhooks.receivers()})

    @app.delete("/_sim/webhooks")
    async def remove_webhooks(url: Annotated[str | None, Query(max_length=2000)] = None) -> JSONResponse:
        if not world.webhooks.remove(url) and url is not None:
            raise WorldError(404, f"no webhook receiver at {url}")
        return JSONResponse({"receivers": world.webhooks.receivers()})

    @app.get("/_sim/faults")
    async def get_faults() -> JSONResponse:
        return JSONResponse(world.faults.as_dict())

    @app.post("/_sim/faults")
    async def set_faults(body: Annotated[dict[str, Any], Body()]) -> JSONResponse:
        params = dict(body)
        name = params.pop("profile", None)
        if not isinstance(name, str):
            raise WorldError(422, "name the fault profile in 'profile' (or 'none' to clear them all)")
        try:
            world.faults.set(name, params)
        except ValueError as exc:
            raise WorldError(422, str(exc)) from None
        return JSONResponse(world.faults.as_dict())

    @app.post("/_sim/towers/{tower_id}/lockers/{locker_id}/open")
    async def open_door(tower_id: TowerId, locker_id: LockerId, token: PresentedToken) -> JSONResponse:
        tower = firmware(tower_id, locker_id)
        try:
            opened = tower.open_with_token(
                bytes.fromhex(token.payload), bytes.fromhex(token.payload_auth), at_locker=locker_id
            )
        except FirmwareRefusal as refusal:
            return _refusal(refusal)
        with world.lock:
            view = world.locker_view(opened, world.current(opened, world.now()))
        return JSONResponse({"locker_id": opened, "door_open": True, "locker": view})

    @app.post("/_sim/towers/{tower_id}/lockers/{locker_id}/close")
    async def close_door(tower_id: TowerId, locker_id: LockerId) -> JSONResponse:
        tower = firmware(tower_id, locker_id)
        with world.lock:
            tower.close_door(locker_id)
            view = world.locker_view(locker_id, world.current(locker_id, world.now()))
        return JSONResponse({"locker": view})

    @app.get("/_sim/towers/{tower_id}/lockers/{locker_id}/door")
    async def door_state(tower_id: TowerId, locker_id: LockerId) -> JSONResponse:
        return JSONResponse({"door_open": firmware(tower_id, locker_id).door_open(locker_id)})

    @app.post("/_sim/towers/{tower_id}/lockers/{locker_id}/force")
    async def force(tower_id: TowerId, locker_id: LockerId, body: ForceRequest) -> JSONResponse:
        return JSONResponse({"locker": world.force(tower_id, locker_id, LockerStatus[body.status.upper()])})

    @app.get("/_sim/radio")
    def radio_state() -> JSONResponse:
        # Plain ``def``: FastAPI runs it on a worker thread, off the event loop (the radio has its own).
        return JSONResponse(the_radio().describe())

    @app.post("/_sim/radio")
    def configure_radio(body: RadioRequest) -> JSONResponse:
        try:
            described = the_radio().reconfigure(**body.model_dump(exclude_none=True))
        except ValueError as exc:
            raise WorldError(422, str(exc)) from None
        return JSONResponse(described)

    @app.get("/_sim/events")
    async def events(since: Annotated[int, Query(ge=0)] = 0) -> JSONResponse:
        try:
            found, following = world.events_since(since)
        except EventsGone as gone:  # fell behind the ring: say from where it can read again
            return JSONResponse({"detail": gone.detail, "oldest": gone.oldest, "next": gone.next}, status_code=410)
        return JSONResponse({"events": found, "next": following})
