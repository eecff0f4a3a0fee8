"""Deliveries as the commands make them, whatever the caller.

``smoke_delivery``: one delivery end to end as ``locker-harness smoke`` makes it; the run's smoke
stage makes the same one, so ``locker-harness smoke`` and ``locker-harness run --only smoke`` test
the same path. ``ble_deliveries``: deliveries back to back over Bluetooth LE with every BLE phase
timed, as ``locker-harness hw`` makes them. ``watched_delivery``: one delivery on a virtual
sandbox's doors with its webhooks received, as ``locker-harness probe --write`` makes it.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import httpx

from harness.api import AsyncHarborClient
from harness.config import Settings
from harness.flow import Delivery, FlowEvent, Listener, Step, StepFinished, run_delivery
from harness.ledger import ledger_holds
from harness.metrics import Latencies
from harness.redaction import Redactor
from harness.targets._doors import ble_door_opener, door_opener, radio
from harness.targets._sandbox import RadioLink
from harness.targets._webhooks import WebhooksNotDelivered, subscribed_webhooks
from harness.webhooks import WebhookReceiver, check_dropoff

if TYPE_CHECKING:
    from harness.ble import TowerSeen

__all__ = ["BleDeliveries", "DeliveryChoice", "ble_deliveries", "smoke_delivery", "watched_delivery"]


@dataclass(frozen=True, slots=True)
class BleDeliveries:
    """What deliveries over Bluetooth LE measured: each phase's latency, and each tower as seen."""

    latencies: Latencies
    towers: list[TowerSeen]


@dataclass(frozen=True, slots=True)
class DeliveryChoice:
    """Which locker the delivery uses and what its tokens carry (``--locker-type``, ``--locker``, ``--client-info``)."""

    locker_type: int | None = None
    locker_id: int | None = None
    client_info: str = ""


async def smoke_delivery(
    settings: Settings,
    *,
    radio_link: RadioLink | None = None,
    listeners: Sequence[Listener] = (),
    choice: DeliveryChoice | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
    redactor: Redactor | None = None,
    run_id: str | None = None,
    firmware: dict[str, str] | None = None,
) -> Delivery:
    """One delivery on ``settings.tower()`` as ``locker-harness smoke`` makes it; raises on the first failure.

    Every reservation and token goes to the cleanup ledger before the call (rows under ``run_id``,
    else the parent's or a new run id), so ``locker-harness cleanup`` finds them after a crash.
    Doors open as ``door_opener`` chooses: on ``local``, Bluetooth LE through the embedded
    sandbox's virtual radio (``radio_link``, from ``embedded_sandbox``); a sandbox URL through its
    control plane; Harbor's targets, a bench tower over the OS's Bluetooth. ``listeners`` hear
    the flow's events (the ledger's own listener is added); ``transport`` carries every HTTP
    request (a run's evidence capture) and ``redactor`` hides what the client learns. A
    ``firmware`` dict receives the version each tower advertised over BLE, failed delivery or not.
    """
    chosen = choice or DeliveryChoice()
    holds = ledger_holds(settings, run_id=run_id)
    async with (
        AsyncHarborClient(settings, holds=holds, transport=transport, redactor=redactor) as client,
        door_opener(settings, client=client, radio_link=radio_link, transport=transport) as opener,
    ):
        try:
            return await run_delivery(
                client,
                opener,
                tower_id=settings.tower(),
                locker_type=chosen.locker_type,
                locker_id=chosen.locker_id,
                client_info=chosen.client_info,
                listeners=[*listeners, holds.listener],
            )
        finally:
            if firmware is not None:
                firmware.update(getattr(opener, "firmware", {}))  # only a BLE opener meets towers


async def ble_deliveries(
    settings: Settings,
    count: int,
    *,
    radio_link: RadioLink | None = None,
    delivered: Callable[[int, Delivery], None] | None = None,
    listeners: Sequence[Listener] = (),
) -> BleDeliveries:
    """``count`` deliveries on ``settings.tower()`` with doors opened over Bluetooth LE: every BLE
    phase's latency, and what each tower showed (advertisement layout, MTU, GET_DEVICE_INFO). The
    radio is the settings' (``radio_link``: the embedded sandbox's virtual one; on a sandbox URL, the
    one it serves to other processes); ``delivered`` hears each delivery as it ends, ``listeners`` the
    flow's events (what a failed delivery gave back among them). Holds go to the
    cleanup ledger: a bench tower's lockers are Harbor's sandbox's, and ``locker-harness cleanup``
    gives them back after a crash."""
    from harness.ble import PhaseTimer  # bleak only when deliveries are made

    tower_id = settings.tower()
    timer = PhaseTimer()
    holds = ledger_holds(settings)
    backend = await asyncio.to_thread(radio, settings, radio_link)  # may ask a sandbox URL where its radio is
    async with (
        AsyncHarborClient(settings, holds=holds) as client,
        ble_door_opener(client, backend, timer=timer, device_info=True) as opener,
    ):

        def status_seen(event: FlowEvent) -> None:
            shown = isinstance(event, StepFinished) and event.ok and event.step in (Step.OCCUPIED, Step.AVAILABLE)
            if shown and event.locker_id is not None:
                opener.status_visible(event.locker_id)

        for number in range(1, count + 1):
            delivery = await run_delivery(
                client, opener, tower_id=tower_id, listeners=[*listeners, status_seen, holds.listener]
            )
            if delivered is not None:
                delivered(number, delivery)
        towers = list(opener.towers.values())
    return BleDeliveries(timer.latencies, towers)


async def watched_delivery(
    settings: Settings,
    *,
    transport: httpx.AsyncBaseTransport | None = None,
    redactor: Redactor | None = None,
    run_id: str | None = None,
) -> str:
    """One delivery on a virtual sandbox (``local`` or a sandbox URL) whose doors open through its
    control plane, with a loopback receiver registered for its webhooks (signed): what it showed, in
    a line. Every HTTP exchange of the delivery goes through ``transport``; the webhook secret is
    registered with ``redactor``.

    The harness is the person at a control-plane door, so the status read while the drop-off door is
    open says when the target turns a locker occupied (``occupied_on``); the webhooks say how they are
    signed (``webhook_signature_header``). The flow's own failures raise as in ``smoke_delivery``; a
    sandbox that delivers no webhooks, or webhooks that differ, are said in the line.
    """
    secret = secrets.token_hex(16)
    if redactor is not None:
        redactor.register(secret)
    url = settings.target.api_url
    assert url is not None, "a virtual sandbox has a URL"
    with WebhookReceiver(secret=secret, assumed=settings.assume) as receiver, contextlib.ExitStack() as subscribed:
        try:
            subscribed.enter_context(
                subscribed_webhooks(url, receiver.url, secret=secret, policy=settings.wire_policy())
            )
        except WebhooksNotDelivered as error:
            said = f"no webhooks: {error}"
        else:
            said = ""
        delivery = await smoke_delivery(settings, transport=transport, redactor=redactor, run_id=run_id)
        if not said:
            problems = await asyncio.to_thread(
                check_dropoff, receiver, locker_id=delivery.locker.id, tower_id=delivery.tower_id, signed=True
            )
            said = "webhooks: " + (
                "; ".join(problems) if problems else "LOCKER_TOKEN_CREATED then LOCKER_TOKEN_USED arrived, signed"
            )
    return f"locker {delivery.locker.id} delivered and available again; {said}"
