"""Whether a URL is a virtual sandbox, and where it serves its radio: the questions that decide how doors open.

A virtual sandbox serves a control plane (``/_sim``) and Harbor does not; the probe asks its
cheapest call. A sandbox that serves its towers' radio to other processes says where on
``/_sim/radio`` (``announced_radio``); ``has_virtual_doors`` says whether the harness opens a
target's doors itself. Each passes the run's guard at the wire like every request
the harness makes. The rules and their errors live here once; the async face runs the same probe
on a worker thread.
"""

from __future__ import annotations

import asyncio
import dataclasses
import ipaddress
from dataclasses import dataclass
from typing import Final
from urllib.parse import urlsplit

import httpx

from harness.api import guarded_client
from harness.config import BleBackend, Settings, TargetKind
from harness.errors import TargetUnreachable
from harness.hosts import WirePolicy
from harness.model import TowerId

__all__ = [
    "AnnouncedRadio",
    "announced_radio",
    "has_virtual_doors",
    "serves_control_plane",
    "serves_control_plane_async",
    "with_served_tower",
]

#: Seconds the probe waits for an answer.
_PROBE_TIMEOUT: Final = 3.0
#: The control plane's cheapest read: a virtual sandbox answers it 200.
_PROBE_PATH: Final = "/_sim/bugs"
#: Where a virtual sandbox says how its radio is reached from another process.
_RADIO_PATH: Final = "/_sim/radio"
_STRICT: Final = WirePolicy()


def _get(url: str, path: str, policy: WirePolicy) -> httpx.Response:
    try:
        with guarded_client(policy, url, timeout=_PROBE_TIMEOUT) as http:
            return http.get(f"{url.rstrip('/')}{path}")
    except httpx.RequestError as exc:
        reason = f"{type(exc).__name__}: {exc or 'no detail'}"
        raise TargetUnreachable(f"{url} does not answer ({reason})", url=url) from None


def serves_control_plane(url: str, *, policy: WirePolicy = _STRICT) -> bool:
    """Whether ``url`` is a virtual sandbox (its ``/_sim`` answers); ``TargetUnreachable`` if nothing answers."""
    return _get(url, _PROBE_PATH, policy).status_code == 200


@dataclass(frozen=True, slots=True)
class AnnouncedRadio:
    """A virtual sandbox's radio as its control plane announces it: where other processes reach it
    (``tcp-client:HOST:PORT``) and the towers on it, in the sandbox's order."""

    transport: str
    towers: tuple[TowerId, ...]


def announced_radio(url: str, *, policy: WirePolicy = _STRICT) -> AnnouncedRadio | None:
    """The radio the virtual sandbox at ``url`` serves to other processes, or ``None``: not a virtual
    sandbox, or one that serves no radio (``GET /_sim/radio``).

    A sandbox bound to every address (``0.0.0.0``, ``::``) announces that; the answer names the host
    ``url`` reached it at instead. ``TargetUnreachable`` if nothing answers.
    """
    response = _get(url, _RADIO_PATH, policy)
    try:
        body = response.json() if response.status_code == 200 else {}
        transport, listed = body.get("transport"), body.get("towers") or []
        towers = tuple(TowerId(tower["tower_id"]) for tower in listed)
    except (ValueError, AttributeError, TypeError, KeyError):  # not a sandbox's answer (InvalidTowerId too)
        return None
    if not isinstance(transport, str):
        return None
    kind, _, rest = transport.partition(":")
    host, _, port = rest.rpartition(":")
    try:
        anywhere = ipaddress.ip_address(host).is_unspecified
    except ValueError:
        anywhere = False
    reached = urlsplit(url).hostname
    return AnnouncedRadio(f"{kind}:{reached}:{port}" if anywhere and reached else transport, towers)


async def serves_control_plane_async(url: str, *, policy: WirePolicy = _STRICT) -> bool:
    """``serves_control_plane`` for a coroutine: the same probe, on a worker thread."""
    return await asyncio.to_thread(serves_control_plane, url, policy=policy)


def has_virtual_doors(settings: Settings) -> bool:
    """Whether the harness opens and closes the target's doors itself: ``local``, or a URL that is a
    virtual sandbox (its control plane answers); Harbor's targets have a tower's doors, which a person
    closes. ``TargetUnreachable`` if a URL does not answer."""
    url, kind = settings.target.api_url, settings.target.kind
    if url is None:
        return False
    return kind is TargetKind.LOCAL or (
        kind is TargetKind.URL and serves_control_plane(url, policy=settings.wire_policy())
    )


def with_served_tower(settings: Settings) -> Settings:
    """The settings, with the first tower of a sandbox URL's virtual radio when they name none and
    use the virtual radio (as ``local`` defaults to the embedded sandbox's tower); else as they are,
    a URL that serves no radio or does not answer included (the command says so in its own words)."""
    url = settings.target.api_url
    if settings.tower_id is not None or settings.ble is not BleBackend.VIRTUAL:
        return settings
    if settings.target.kind is not TargetKind.URL or url is None:
        return settings
    try:
        announced = announced_radio(url, policy=settings.wire_policy())
    except TargetUnreachable:
        return settings
    if announced is None or not announced.towers:
        return settings
    return dataclasses.replace(settings, tower_id=announced.towers[0])
