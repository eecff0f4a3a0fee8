"""The guard at the wire for httpx: every request of a client built here passes ``WirePolicy.check``.

It is an httpx request hook, not a transport: a hook sees the final URL of every request (a
redirect's too) and leaves httpx's own transport choice alone (proxies from the environment, a
test's ``MockTransport``). A refused request raises ``RequestRefused`` (a ``UsageError``) before
anything is sent.
"""

from __future__ import annotations

import functools
import ssl
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import httpx

from harness.hosts import WirePolicy, trusts_env_proxies

__all__ = ["async_guard_hooks", "guard_hooks", "guarded_client", "tls_context"]


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


@functools.cache
def tls_context() -> ssl.SSLContext:
    """What every HTTP client of the harness verifies servers against, loaded once per process:
    httpx's defaults (certifi's bundle, or ``SSL_CERT_FILE``/``SSL_CERT_DIR``). httpx would load
    them again for each client it makes, about 20 ms each, and a run makes hundreds."""
    return httpx.create_ssl_context()


def guarded_client(policy: WirePolicy, url: str, *, timeout: float) -> httpx.Client:
    """A short-lived ``httpx.Client`` for requests to ``url``: ``policy`` asked before each, no proxy
    from the environment for this machine (``trusts_env_proxies``), the process's one TLS context."""
    return httpx.Client(
        timeout=timeout,
        event_hooks=guard_hooks(policy),
        trust_env=trusts_env_proxies(url),
        verify=tls_context(),
    )
