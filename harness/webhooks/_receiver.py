"""A webhook receiver on loopback: what an integrator's endpoint gets from Harbor, kept for checks.

A small HTTP server (``http.server``, 127.0.0.1, port 0) in a thread. Every POST is kept as a
``Delivery``: its JSON body (Harbor's envelope, reference section 6), its headers, and whether
its signature held when a shared secret is set. The signature's header is a guess
(``webhook_signature_header`` [G]: ``X-Harbor-Signature: sha256=<hex HMAC-SHA256 of the body>``):
a signature found under another header is still checked, and the delivery keeps which header
carried it (``check_delivery`` records that as an observation of the guess).

``fail_first`` makes the receiver answer 500 to its first deliveries (a receiver that is down
for a moment), to show that the sender retries.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Final, Self

from harness.assumptions import Assumed

__all__ = ["Delivery", "WebhookReceiver", "canonical_header"]

#: The largest body the receiver reads (Harbor's envelopes are well under a KiB).
_MAX_BODY: Final = 1 << 20
#: Headers a signature might come under when not under the assumed one.
_SIGNATURE_HEADERS: Final = ("x-harbor-signature", "x-signature", "x-hub-signature-256", "x-webhook-signature")


@dataclass(frozen=True, slots=True)
class Delivery:
    """One POST the receiver got."""

    body: Any  # the parsed JSON, or None when it was not JSON
    headers: Mapping[str, str]
    received_at: float  # time.time()
    #: ``None`` without a secret; else whether the body's HMAC matched the signature header.
    signature_ok: bool | None = None
    #: The header the signature came under, if any.
    signature_header: str | None = None
    #: The status the receiver answered (500 while ``fail_first`` lasts).
    answered: int = 200

    @property
    def accepted(self) -> bool:
        return self.answered < 300


@dataclass
class _State:
    deliveries: list[Delivery] = field(default_factory=list)
    failures_left: int = 0
    condition: threading.Condition = field(default_factory=threading.Condition)


class WebhookReceiver:
    """A loopback HTTP endpoint that keeps every webhook delivered to it (a context manager)."""

    def __init__(self, *, secret: str | None = None, fail_first: int = 0, assumed: Assumed | None = None) -> None:
        self.secret = secret
        self.assumed = assumed or Assumed()
        self._state = _State(failures_left=fail_first)
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="webhook-receiver", daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}/webhooks"

    def start(self) -> Self:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    @property
    def deliveries(self) -> list[Delivery]:
        """Every POST so far, failed answers included, in arrival order."""
        with self._state.condition:
            return list(self._state.deliveries)

    @property
    def events(self) -> list[Any]:
        """The bodies the receiver accepted (2xx), in arrival order: what an integrator's handler saw."""
        return [delivery.body for delivery in self.deliveries if delivery.accepted]

    def wait_for(self, done: Callable[[list[Any]], bool], *, timeout: float) -> bool:
        """Wait until ``done(self.events)`` holds, at most ``timeout`` seconds; whether it does."""
        deadline = time.monotonic() + timeout
        with self._state.condition:
            while True:
                events = [d.body for d in self._state.deliveries if d.accepted]
                if done(events):
                    return True
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._state.condition.wait(remaining)  # woken by each delivery, bounded by the deadline

    def _keep(self, raw: bytes, headers: Mapping[str, str]) -> int:
        try:
            body = json.loads(raw)
        except ValueError:
            body = None
        signature_ok, header = self._verify(raw, headers)
        with self._state.condition:
            failing = self._state.failures_left > 0
            if failing:
                self._state.failures_left -= 1
            answered = 500 if failing else 200
            self._state.deliveries.append(Delivery(body, dict(headers), time.time(), signature_ok, header, answered))
            self._state.condition.notify_all()
        return answered

    def _verify(self, raw: bytes, headers: Mapping[str, str]) -> tuple[bool | None, str | None]:
        if self.secret is None:
            return None, None
        assumed = self.assumed.webhook_signature_header
        lowered = {key.lower(): value for key, value in headers.items()}
        for name in (assumed.lower(), *_SIGNATURE_HEADERS):
            if name in lowered:
                expected = hmac.new(self.secret.encode(), raw, hashlib.sha256).hexdigest()
                given = lowered[name].removeprefix("sha256=")
                return hmac.compare_digest(expected, given), name
        return False, None

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = min(int(self.headers.get("content-length") or 0), _MAX_BODY)
                raw = self.rfile.read(length)
                status = receiver._keep(raw, dict(self.headers.items()))
                self.send_response(status)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:  # quiet: deliveries are kept, not logged
                return

        return Handler


def canonical_header(name: str) -> str:
    """A header name in its usual spelling (``x-harbor-signature`` -> ``X-Harbor-Signature``)."""
    return "-".join(part.capitalize() for part in name.split("-"))
