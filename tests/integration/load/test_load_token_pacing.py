"""Token requests keep to the sandbox's pacing, and a failing token endpoint is backed off, not hammered.

A loopback stand-in for the token host answers every request 503 and notes when each came; the
load users run in a child process (``token_pacing.py``: gevent stays out of pytest) with the pacer
forced on, as on the ``sandbox`` target.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

CHILD = Path(__file__).with_name("token_pacing.py")
#: The child's pacer (requests a second) and how long its users run.
MAX_RPS = 2.0
DURATION_S = 3.0


class _Failing(BaseHTTPRequestHandler):
    """Every request answers 503; its arrival time is noted."""

    arrivals: list[float]

    def do_POST(self) -> None:
        self.arrivals.append(time.monotonic())
        self.rfile.read(int(self.headers.get("content-length") or 0))
        self.send_response(503)
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def token_host() -> Iterator[tuple[str, list[float]]]:
    arrivals: list[float] = []
    handler = type("Handler", (_Failing,), {"arrivals": arrivals})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", arrivals
    finally:
        server.shutdown()
        server.server_close()


def test_a_failing_token_endpoint_gets_at_most_the_paced_rate(token_host: tuple[str, list[float]]) -> None:
    """Twenty users whose token endpoint answers 503 send no more token requests than the pacer
    allows in any second (it was 13 a second), and fewer still as the endpoint keeps failing."""
    url, arrivals = token_host
    done = subprocess.run([sys.executable, str(CHILD), url], capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    steps = json.loads(done.stdout.strip().splitlines()[-1])
    assert steps["no_token"] >= 1 and steps["readied"] == 0, steps
    assert arrivals, "the child sent no token request"
    busiest = max(sum(1 for other in arrivals if start <= other < start + 1.0) for start in arrivals)
    assert busiest <= MAX_RPS, f"{busiest} token requests within one second: {len(arrivals)} in all"
    # Paced alone, the run would send about MAX_RPS * DURATION_S; the backoff (0.5, 1, 2 s) sends fewer.
    assert len(arrivals) <= MAX_RPS * DURATION_S, f"{len(arrivals)} token requests in {DURATION_S} s"
