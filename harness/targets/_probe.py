"""Whether a URL is a virtual sandbox: the one question whose answer decides how doors open.

A virtual sandbox serves a control plane (``/_sim``) and Harbor does not; the probe asks its
cheapest call. It passes the run's guard at the wire like every request the harness makes. The
rule and its error live here once; the async face runs the same probe on a worker thread.
"""

from __future__ import annotations

import asyncio
from typing import Final

import httpx

from harness.api import guard_hooks
from harness.errors import TargetUnreachable
from harness.hosts import WirePolicy

__all__ = ["serves_control_plane", "serves_control_plane_async"]

#: Seconds the probe waits for an answer.
_PROBE_TIMEOUT: Final = 3.0
#: The control plane's cheapest read: a virtual sandbox answers it 200.
_PROBE_PATH: Final = "/_sim/bugs"
_STRICT: Final = WirePolicy()


def serves_control_plane(url: str, *, policy: WirePolicy = _STRICT) -> bool:
    """Whether ``url`` is a virtual sandbox (its ``/_sim`` answers); ``TargetUnreachable`` if nothing answers."""
    try:
        with httpx.Client(timeout=_PROBE_TIMEOUT, event_hooks=guard_hooks(policy)) as http:
            response = http.get(f"{url.rstrip('/')}{_PROBE_PATH}")
    except httpx.RequestError as exc:
        reason = f"{type(exc).__name__}: {exc or 'no detail'}"
        raise TargetUnreachable(f"{url} does not answer ({reason})", url=url) from None
    return response.status_code == 200


async def serves_control_plane_async(url: str, *, policy: WirePolicy = _STRICT) -> bool:
    """``serves_control_plane`` for a coroutine: the same probe, on a worker thread."""
    return await asyncio.to_thread(serves_control_plane, url, policy=policy)
