"""The probe's exchanges: kept as they pass (``RecordingTransport``), written as a redacted HAR 1.2 file.

HAR (HTTP Archive 1.2) opens in browsers' network panels and HAR libraries, so whoever reads the
probe's evidence sees each request and answer as it went. Nothing secret is written: headers
by name (``Authorization``), JSON and form bodies by key (``access_token``, ``client_secret``,
``payload_auth``, ...), and every secret the run has learnt by value; bodies are redacted as data
and written back as text, so the file stays valid HAR.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.parse
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

import httpx

from harness._version import __version__
from harness.api import tls_context
from harness.redaction import Redactor

__all__ = ["Exchange", "RecordingTransport", "har_document"]

#: A body longer than this is cut in the HAR file (Harbor's answers are a few KiB).
_MAX_BODY_CHARS: Final = 200_000


@dataclass(frozen=True, slots=True)
class Exchange:
    """One request and its answer (or the error instead), as sent and received."""

    started: datetime
    elapsed_ms: float
    request: httpx.Request
    response: httpx.Response | None
    error: str | None = None


class RecordingTransport(httpx.BaseTransport, httpx.AsyncBaseTransport):
    """Passes every request on to ``inner`` (an async client's to ``inner_async``) and keeps the
    exchange, in the order they ended: one record for a sync and an async client alike. Thread-safe."""

    def __init__(
        self, inner: httpx.BaseTransport | None = None, inner_async: httpx.AsyncBaseTransport | None = None
    ) -> None:
        self._inner = inner if inner is not None else httpx.HTTPTransport(verify=tls_context())
        self._inner_async = inner_async
        self._lock = threading.Lock()
        self._exchanges: list[Exchange] = []

    @property
    def exchanges(self) -> list[Exchange]:
        with self._lock:
            return list(self._exchanges)

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        started, clock = datetime.now(UTC), time.perf_counter()
        try:
            response = self._inner.handle_request(request)
            response.read()
        except BaseException as error:
            self._keep(Exchange(started, _ms(clock), request, None, f"{type(error).__name__}: {error}"))
            raise
        self._keep(Exchange(started, _ms(clock), request, response))
        return response

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if self._inner_async is None:  # made on first use: a sync-only probe never builds its TLS context twice
            self._inner_async = httpx.AsyncHTTPTransport(verify=tls_context())
        started, clock = datetime.now(UTC), time.perf_counter()
        try:
            response = await self._inner_async.handle_async_request(request)
            await response.aread()
        except BaseException as error:
            self._keep(Exchange(started, _ms(clock), request, None, f"{type(error).__name__}: {error}"))
            raise
        self._keep(Exchange(started, _ms(clock), request, response))
        return response

    def _keep(self, exchange: Exchange) -> None:
        with self._lock:
            self._exchanges.append(exchange)

    def close(self) -> None:
        self._inner.close()

    async def aclose(self) -> None:
        if self._inner_async is not None:
            await self._inner_async.aclose()


def _ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 3)


def _headers(headers: httpx.Headers, redactor: Redactor) -> list[dict[str, str]]:
    return [{"name": name, "value": value} for name, value in redactor.headers(headers.multi_items()).items()]


def _body(content_type: str, content: bytes, redactor: Redactor) -> str:
    """A body as redacted text of its own kind: JSON stays JSON, a form stays a form."""
    text = content.decode("utf-8", errors="replace")[:_MAX_BODY_CHARS]
    if "json" in content_type:
        try:
            return json.dumps(redactor.value(json.loads(text)), ensure_ascii=False)
        except ValueError:
            pass
    if "x-www-form-urlencoded" in content_type:
        pairs = urllib.parse.parse_qsl(text, keep_blank_values=True)
        masked = redactor.value(dict(pairs))
        return urllib.parse.urlencode(list(masked.items()))
    return redactor.text(text)


def _entry(exchange: Exchange, redactor: Redactor) -> dict[str, Any]:
    request, response = exchange.request, exchange.response
    url = httpx.URL(redactor.text(str(request.url)))
    har_request: dict[str, Any] = {
        "method": request.method,
        "url": str(url),
        "httpVersion": "HTTP/1.1",
        "cookies": [],
        "headers": _headers(request.headers, redactor),
        "queryString": [{"name": k, "value": redactor.text(v)} for k, v in url.params.multi_items()],
        "headersSize": -1,
        "bodySize": len(request.content),
    }
    if request.content:
        mime = request.headers.get("content-type", "application/octet-stream")
        har_request["postData"] = {"mimeType": mime, "text": _body(mime, request.content, redactor)}
    if response is not None:
        mime = response.headers.get("content-type", "")
        text = _body(mime, response.content, redactor) if response.content else ""
        har_response: dict[str, Any] = {
            "status": response.status_code,
            "statusText": response.reason_phrase,
            "httpVersion": response.http_version or "HTTP/1.1",
            "cookies": [],
            "headers": _headers(response.headers, redactor),
            "content": {"size": len(response.content), "mimeType": mime, "text": text},
            "redirectURL": response.headers.get("location", ""),
            "headersSize": -1,
            "bodySize": len(response.content),
        }
    else:  # no answer: HAR's convention for a request that failed (status 0, the error as comment)
        har_response = {
            "status": 0,
            "statusText": "",
            "httpVersion": "HTTP/1.1",
            "cookies": [],
            "headers": [],
            "content": {"size": 0, "mimeType": "x-unknown"},
            "redirectURL": "",
            "headersSize": -1,
            "bodySize": -1,
            "_error": redactor.text(exchange.error or ""),
        }
    return {
        "startedDateTime": exchange.started.isoformat(timespec="milliseconds"),
        "time": exchange.elapsed_ms,
        "request": har_request,
        "response": har_response,
        "cache": {},
        "timings": {"send": 0, "wait": exchange.elapsed_ms, "receive": 0},
    }


def har_document(exchanges: list[Exchange], redactor: Redactor, *, comment: str = "") -> dict[str, Any]:
    """The exchanges as a HAR 1.2 document, every secret masked."""
    log: dict[str, Any] = {
        "version": "1.2",
        "creator": {"name": "locker-harness", "version": __version__},
        "pages": [],
        "entries": [_entry(exchange, redactor) for exchange in exchanges],
    }
    if comment:
        log["comment"] = redactor.text(comment)
    return {"log": log}
