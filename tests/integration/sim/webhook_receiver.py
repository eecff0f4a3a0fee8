"""A tiny loopback HTTP server that records the webhooks it receives: what an integrator runs."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Self

__all__ = ["Received", "Receiver"]


@dataclass(frozen=True)
class Received:
    """One delivery as it arrived: its headers (lower-case names) and its raw body."""

    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        import json

        return json.loads(self.body)


class Receiver:
    """Records every POST; answers ``500`` to the first ``fail_first`` of them, and holds each request
    while ``hold`` is set (until ``release()``), as a slow receiver would."""

    def __init__(self, *, fail_first: int = 0) -> None:
        self.received: list[Received] = []
        self.attempts = 0
        self.fail_first = fail_first
        self.hold = False
        self._released = threading.Event()
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # http.server's name
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                with receiver._lock:
                    receiver.attempts += 1
                    failing = receiver.attempts <= receiver.fail_first
                    if not failing:
                        receiver.received.append(Received({k.lower(): v for k, v in self.headers.items()}, body))
                if receiver.hold:
                    receiver._released.wait(10)  # bounded: a test that forgets to release still ends
                self.send_response(500 if failing else 204)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, name="webhook-receiver", daemon=True
        )

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}/harbor-webhooks"

    def release(self) -> None:
        self.hold = False
        self._released.set()

    def wait_for(self, count: int, timeout: float = 10.0) -> list[Received]:
        """The first ``count`` deliveries, polled for at most ``timeout`` seconds."""
        return self.wait_until(lambda: len(self.received) >= count, timeout)[:count]

    def wait_until(self, done: Callable[[], bool], timeout: float = 10.0) -> list[Received]:
        deadline = time.monotonic() + timeout
        while not done():
            assert time.monotonic() < deadline, f"not within {timeout} s: {len(self.received)} received"
            time.sleep(0.005)  # the poll's pace; the bound is the deadline
        with self._lock:
            return list(self.received)

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None) -> None:
        self.release()
        self._server.shutdown()
        self._server.server_close()
