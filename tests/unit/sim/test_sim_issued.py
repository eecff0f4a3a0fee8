"""The canary's debug hook logs what the sandbox issues, never what a client sent and got echoed back."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import httpx
from starlette.types import Receive, Scope, Send

from harness.sim._issued import IssuedSecretsLog

ISSUED = "9f" * 32


def _answering(status: int, body: object) -> IssuedSecretsLog:
    """The hook around an app that answers every request with ``status`` and ``body``."""

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await send(
            {"type": "http.response.start", "status": status, "headers": [(b"content-type", b"application/json")]}
        )
        await send({"type": "http.response.body", "body": json.dumps(body).encode()})

    return IssuedSecretsLog(app, "")


def _logged(hook: IssuedSecretsLog, path: Path) -> str:
    hook.path = str(path)

    async def call() -> None:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=hook), base_url="http://sim") as client:
            await client.post("/api/v1/towers/x/lockers/1/dropoff-locker-tokens", json={})

    asyncio.run(call())
    return path.read_text() if path.exists() else ""


def test_an_issued_payload_auth_is_logged(tmp_path: Path) -> None:
    """A 201 carrying a token's ``payload_auth`` puts it in the log."""
    assert _logged(_answering(201, {"payload": "00", "payload_auth": ISSUED}), tmp_path / "log") == (
        f"payload_auth\t{ISSUED}\n"
    )


def test_a_refusal_echoing_the_clients_input_is_not_logged(tmp_path: Path) -> None:
    """A 422 whose detail echoes a client's ``payload_auth`` is the client's value, not an issued secret."""
    echoed = {"detail": [{"loc": ["body"], "msg": "bad", "input": {"payload_auth": ISSUED}}]}
    assert _logged(_answering(422, echoed), tmp_path / "log") == ""


def test_a_short_value_is_not_taken_for_a_secret(tmp_path: Path) -> None:
    """A value shorter than any secret the sandbox issues is left out (the canary would find "0" everywhere)."""
    assert _logged(_answering(200, {"access_token": "0"}), tmp_path / "log") == ""
