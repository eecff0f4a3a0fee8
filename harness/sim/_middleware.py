"""The outermost ASGI layer: the ``Date`` header, injected faults, and the bearer check.

Pure ASGI (no ``BaseHTTPMiddleware``) so it costs a few microseconds per request: the sandbox
is also a throughput baseline. Order per request: ``Date`` on every response; ``/_sim`` is
loopback-only and never faulted; other paths get the fault profile's decision; ``/api/v1`` and
``/sdk/v1`` need a valid bearer token (401) with the right scope (403) before anything else runs.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any
from urllib.parse import parse_qsl

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ._auth import SERVICE_PROVIDER, TOWER_ACCESS, BearerAuthority
from ._clock import VirtualClock, http_date
from ._faults import Faults

__all__ = ["LOGIN_PATHS", "PRINCIPAL_KEY", "SandboxMiddleware"]

#: Where the middleware leaves the caller's ``Principal`` in the ASGI scope.
PRINCIPAL_KEY = "harbor.principal"
_LOOPBACK = frozenset({"127.0.0.1", "::1", "localhost", "testclient"})
_TEST_TOKEN_PATH = "/api/v1/login/test-token"
#: The password logins: they make a bearer token, so they cannot need one.
LOGIN_PATHS = frozenset({"/api/v1/login/access-token", "/sdk/v1/login/access-token"})


class _DateCache:
    """``Date`` for the current virtual second, formatted once per second, not per request."""

    def __init__(self, clock: VirtualClock) -> None:
        self._clock = clock
        self._second = -1
        self._value = b""

    def value(self) -> bytes:
        second = int(self._clock.now())
        if second != self._second:
            self._value = http_date(second).encode()
            self._second = second
        return self._value


async def _answer(send: Send, status: int, body: dict[str, Any], headers: list[tuple[bytes, bytes]]) -> None:
    content = json.dumps(body, separators=(",", ":")).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(content)).encode()),
                *headers,
            ],
        }
    )
    await send({"type": "http.response.body", "body": content})


def _drop(send: Send) -> None:
    """Close the client's connection without any response (the ``drop_connection`` fault)."""
    cycle = getattr(send, "__self__", None)  # uvicorn's RequestResponseCycle
    transport = getattr(cycle, "transport", None)
    if transport is None:
        # In process (httpx's ASGITransport) there is no connection: fail the request instead.
        raise ConnectionAbortedError("the sandbox dropped the connection (drop_connection fault)")
    transport.close()
    cycle.disconnected = True  # type: ignore[union-attr]  # tell uvicorn not to answer 500


class SandboxMiddleware:
    def __init__(self, app: ASGIApp, *, clock: VirtualClock, faults: Faults, authority: BearerAuthority) -> None:
        self.app = app
        self._date = _DateCache(clock)
        self._faults = faults
        self._authority = authority

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        date = self._date.value()

        async def send_with_date(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", ()), (b"date", date)]
            await send(message)

        path: str = scope["path"]
        if path.startswith("/_sim"):
            client = scope.get("client")
            if client is not None and client[0] not in _LOOPBACK:
                await _answer(send_with_date, 403, {"detail": "the control plane answers loopback only"}, [])
                return
            await self.app(scope, receive, send_with_date)
            return

        if self._faults.http_active:
            action = self._faults.for_request(path)
            if action.delay:
                await asyncio.sleep(action.delay)
            if action.drop:
                _drop(send)
                return
            if action.status is not None:
                headers = []
                if action.retry_after is not None:
                    headers.append((b"retry-after", str(round(action.retry_after)).encode()))
                detail = "Too Many Requests" if action.status == 429 else "injected fault"
                await _answer(send_with_date, action.status, {"detail": detail}, headers)
                return

        if path.startswith(("/api/v1/", "/sdk/v1/")) and path not in LOGIN_PATHS:
            principal = None
            for name, value in scope["headers"]:
                if name == b"authorization":
                    text = value.decode("latin-1")
                    if text[:7].lower() == "bearer ":
                        principal = self._authority.verify(text[7:].strip())
                    break
            if principal is None:
                await _answer(
                    send_with_date,
                    401,
                    {"detail": "Could not validate credentials"},
                    [(b"www-authenticate", b"Bearer")],
                )
                return
            if path != _TEST_TOKEN_PATH:
                needed = SERVICE_PROVIDER if path.startswith("/api/") else TOWER_ACCESS
                if needed not in principal.scopes or (needed == SERVICE_PROVIDER and principal.is_sdk_token):
                    await _answer(send_with_date, 403, {"detail": f"The token lacks the {needed} scope"}, [])
                    return
            scope[PRINCIPAL_KEY] = principal
            repeated = _repeated_query_parameter(scope.get("query_string", b""))
            if repeated is not None:
                # FastAPI keeps the last of repeated values, so ?skip=[..]&skip=0 would pass; no
                # operation of the document takes a list in its query, so a repeat is invalid input.
                await _answer(send_with_date, 422, _single_value_error(repeated), [])
                return
        await self.app(scope, receive, send_with_date)


def _repeated_query_parameter(query: bytes) -> str | None:
    """The first query parameter given more than once, if any."""
    if not query:
        return None
    seen: set[str] = set()
    for name, _ in parse_qsl(query.decode("latin-1"), keep_blank_values=True):
        if name in seen:
            return name
        seen.add(name)
    return None


def _single_value_error(name: str) -> dict[str, Any]:
    """FastAPI's validation shape for a query parameter given several values."""
    return {"detail": [{"loc": ["query", name], "msg": "Expected a single value", "type": "single_value"}]}
