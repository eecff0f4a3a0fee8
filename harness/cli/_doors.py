"""Which ``DoorOpener`` a run uses: the sandbox's control plane, or (coming) Bluetooth LE.

A virtual sandbox (``local``, or a URL that serves ``/_sim``) opens doors through its control
plane: the same firmware checks as over the radio, without the radio. Harbor's sandbox and
production need a bench tower reached over Bluetooth; that path is not wired into the commands
yet, and saying so beats pretending.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx

from harness.config import Settings, TargetKind
from harness.errors import TargetUnreachable, UsageError
from harness.flow import ControlPlaneOpener, DoorOpener

__all__ = ["door_opener"]

_PROBE_TIMEOUT = 3.0


async def _serves_control_plane(url: str) -> bool:
    """Whether ``url`` is a virtual sandbox; ``TargetUnreachable`` if nothing answers at all."""
    try:
        async with httpx.AsyncClient(timeout=_PROBE_TIMEOUT) as http:
            response = await http.get(f"{url}/_sim/bugs")
    except httpx.RequestError as exc:
        reason = f"{type(exc).__name__}: {exc or 'no detail'}"
        raise TargetUnreachable(f"{url} does not answer ({reason})", url=url) from None
    return response.status_code == 200


@asynccontextmanager
async def door_opener(settings: Settings) -> AsyncIterator[DoorOpener]:
    """The door opener for this target, closed when the run ends."""
    url = settings.target.api_url
    kind = settings.target.kind
    if url is not None and (kind is TargetKind.LOCAL or (kind is TargetKind.URL and await _serves_control_plane(url))):
        async with ControlPlaneOpener(url) as opener:
            yield opener
        return
    raise UsageError(
        f"target {settings.target.name} has no virtual doors: opening a bench tower's lockers over Bluetooth "
        "is coming to this command; until then use --target local or the URL of a running `locker-harness sim`"
    )
