"""A debug hook for the redaction canary: every secret this sandbox hands out, written to a file.

Off unless ``HARBOR_SIM_ISSUED_LOG`` names a file (``SimSettings.issued_log``). Then each answer
of the REST side is read for the values a client must never show (bearer and SDK tokens, a
token's ``payload_auth``, a session's seed, a link token) and each is appended as
``key<TAB>value``. A test runs the harness against such a sandbox and searches everything the
harness wrote for those values. These are a throwaway local sandbox's values, dead with it; the
hook exists so that a test can prove they never reach a report, a log or a terminal.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from typing import Any, Final

from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["ISSUED_LOG_ENV", "IssuedSecretsLog"]

ISSUED_LOG_ENV: Final = "HARBOR_SIM_ISSUED_LOG"
_SECRET_KEYS: Final = frozenset({"access_token", "payload_auth", "payloadAuth", "session_seed", "linkToken"})
#: Answers larger than this are lists of lockers or locations: no secret is issued in them.
_MAX_BODY: Final = 64_000
#: Every secret the sandbox issues is longer; a shorter value is a client's input echoed back (a
#: generated ``"0"`` would make the canary find "secrets" in every file).
_MIN_SECRET_LEN: Final = 16


def _secrets(value: Any) -> Iterator[tuple[str, str]]:
    if isinstance(value, dict):
        for key, item in value.items():
            if key in _SECRET_KEYS and isinstance(item, str) and len(item) >= _MIN_SECRET_LEN:
                yield key, item
            else:
                yield from _secrets(item)
    elif isinstance(value, list):
        for item in value:
            yield from _secrets(item)


class IssuedSecretsLog:
    """ASGI middleware appending the secrets in every JSON answer to ``path``."""

    def __init__(self, app: ASGIApp, path: str) -> None:
        self.app = app
        self.path = path
        self._lock = threading.Lock()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith("/_sim"):
            await self.app(scope, receive, send)
            return
        chunks: list[bytes] = []
        issued = False

        async def keep(message: Message) -> None:
            nonlocal issued
            if message["type"] == "http.response.start":
                # only a success issues anything; a refusal may echo what the client sent
                issued = 200 <= message["status"] < 300
            elif message["type"] == "http.response.body" and issued and sum(map(len, chunks)) < _MAX_BODY:
                chunks.append(message.get("body", b""))
            await send(message)

        await self.app(scope, receive, keep)
        try:
            body = json.loads(b"".join(chunks) or b"null")
        except ValueError:
            return
        found = list(_secrets(body))
        if found:
            with self._lock, open(self.path, "a", encoding="utf-8") as log:
                log.writelines(f"{key}\t{value}\n" for key, value in found)
