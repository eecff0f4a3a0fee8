"""The guard at the wire for httpx: every request of a client built here passes ``WirePolicy.check``.

It is an httpx request hook, not a transport: a hook sees the final URL of every request (a
redirect's too) and leaves httpx's own transport choice alone (proxies from the environment, a
test's ``MockTransport``). A refused request raises ``RequestRefused`` (a ``UsageError``) before
anything is sent.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import httpx

from harness.hosts import WirePolicy

__all__ = ["async_guard_hooks", "guard_hooks"]


def guard_hooks(policy: WirePolicy) -> Mapping[str, list[Callable[[httpx.Request], Any]]]:
    """``event_hooks=`` for an ``httpx.Client`` that asks ``policy`` before each request."""

    def check(request: httpx.Request) -> None:
        policy.check(request.method, str(request.url))

    return {"request": [check]}


def async_guard_hooks(policy: WirePolicy) -> Mapping[str, list[Callable[[httpx.Request], Awaitable[Any]]]]:
    """``event_hooks=`` for an ``httpx.AsyncClient`` that asks ``policy`` before each request."""

    async def check(request: httpx.Request) -> None:
        policy.check(request.method, str(request.url))

    return {"request": [check]}
