"""The smoke stage's HTTP evidence: every request and response a step made, redacted, for Allure."""

from __future__ import annotations

import json
import time
import urllib.parse
from typing import Any, Final

import httpx

from harness.redaction import Redactor
from harness.report import AllureAttachment

__all__ = ["CapturingTransport"]

#: Evidence keeps at most this much of a body that is neither JSON nor a form.
_MAX_BODY_CHARS: Final = 20_000


class CapturingTransport(httpx.AsyncBaseTransport):
    """Keeps each request and response (redacted) until the step that made them collects them."""

    def __init__(self, inner: httpx.AsyncBaseTransport, redactor: Redactor) -> None:
        self._inner = inner
        self._redactor = redactor
        self._exchanges: list[AllureAttachment] = []

    def drain(self) -> list[AllureAttachment]:
        exchanges, self._exchanges = self._exchanges, []
        return exchanges

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        started = time.perf_counter_ns()
        try:
            response = await self._inner.handle_async_request(request)
            await response.aread()
        except BaseException as error:
            self._keep(request, None, time.perf_counter_ns() - started, error)
            raise
        self._keep(request, response, time.perf_counter_ns() - started, None)
        return response

    def _keep(
        self, request: httpx.Request, response: httpx.Response | None, elapsed_ns: int, error: BaseException | None
    ) -> None:
        redactor = self._redactor
        outcome = f"{response.status_code}" if response is not None else type(error).__name__
        evidence: dict[str, Any] = {
            "request": {
                "method": request.method,
                "url": redactor.text(str(request.url)),
                "headers": redactor.headers(request.headers.multi_items()),
                "body": _body(request.headers.get("content-type", ""), request.content, redactor),
            },
            "elapsed_ms": round(elapsed_ns / 1e6, 3),
        }
        if response is not None:
            evidence["response"] = {
                "status": response.status_code,
                "headers": redactor.headers(response.headers.multi_items()),
                "body": _body(response.headers.get("content-type", ""), response.content, redactor),
            }
        else:
            evidence["error"] = redactor.text(f"{type(error).__name__}: {error}")
        name = f"{request.method} {request.url.path} -> {outcome}"
        self._exchanges.append(AllureAttachment.json(name, evidence))

    async def aclose(self) -> None:
        await self._inner.aclose()


def _body(content_type: str, content: bytes, redactor: Redactor) -> Any:
    """A body as evidence: JSON and form bodies by key, anything else as (redacted) text."""
    if not content:
        return None
    text = content.decode("utf-8", errors="replace")
    if "json" in content_type:
        try:
            return redactor.value(json.loads(text))
        except ValueError:
            pass
    if "x-www-form-urlencoded" in content_type:
        return redactor.value(dict(urllib.parse.parse_qsl(text, keep_blank_values=True)))
    return redactor.text(text[:_MAX_BODY_CHARS])
