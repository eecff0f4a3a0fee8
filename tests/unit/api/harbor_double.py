"""A scripted Harbor for the client's unit tests: ``httpx.MockTransport`` with a token endpoint."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

import httpx

BASE = "https://harbor.test"
TOKEN_PATH = "/realms/harbor/protocol/openid-connect/token"
TOWER = "0100000000000014"

Responder = Callable[[httpx.Request], httpx.Response | Exception]


def locker_json(locker_id: int = 1401, status: str = "available", status_id: int = 1) -> dict[str, Any]:
    return {
        "id": locker_id,
        "name": str(locker_id - 1400),
        "isLowLocker": False,
        "towerId": TOWER,
        "status": {"name": status, "id": status_id},
        "type": {"name": "small", "description": None, "id": 1},
        "accessMode": "public",
    }


@dataclass
class FakeHarbor:
    """Answers the token endpoint itself and each API call from a queue of scripted responses."""

    script: list[Responder] = field(default_factory=list)
    default: Responder | None = None
    token_lifetime: int = 300
    requests: list[httpx.Request] = field(default_factory=list)
    token_requests: list[dict[str, list[str]]] = field(default_factory=list)
    issued: int = 0
    #: ``token_type`` of the token endpoint's answer; ``None`` leaves the key out.
    token_type: str | None = "Bearer"
    #: Keycloak's refusal of the client (status, ``error``), instead of a token.
    refuse: tuple[int, str] | None = None

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if request.url.path == TOKEN_PATH:
            self.token_requests.append(parse_qs(request.content.decode()))
            if self.refuse is not None:
                status, error = self.refuse
                return httpx.Response(status, json={"error": error, "error_description": "Invalid client credentials"})
            self.issued += 1
            body = {
                "access_token": f"bearer-token-{self.issued:04d}",
                "expires_in": self.token_lifetime,
                "refresh_expires_in": 0,
                "refresh_token": None,
            }
            if self.token_type is not None:
                body["token_type"] = self.token_type
            return httpx.Response(200, json=body)
        self.requests.append(request)
        responder = self.script.pop(0) if self.script else self.default
        if responder is None:
            raise AssertionError(f"unexpected request {request.method} {request.url}")
        outcome = responder(request)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    def then(self, *responders: Responder) -> FakeHarbor:
        self.script.extend(responders)
        return self

    def bearer(self, index: int = -1) -> str:
        return self.requests[index].headers["authorization"]

    def body(self, index: int = -1) -> Any:
        return json.loads(self.requests[index].content)


def answer(status: int, body: Any = None, headers: dict[str, str] | None = None) -> Responder:
    return lambda request: httpx.Response(status, json=body, headers=headers)


def fail(error: type[httpx.RequestError] = httpx.ConnectError) -> Responder:
    return lambda request: error("connection refused", request=request)


@dataclass
class Sleeps:
    """An injected sleep that records instead of waiting."""

    seconds: list[float] = field(default_factory=list)

    def __call__(self, seconds: float) -> None:
        self.seconds.append(seconds)

    async def sleep_async(self, seconds: float) -> None:
        self.seconds.append(seconds)
