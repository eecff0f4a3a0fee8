"""Child process of ``test_load_token_pacing.py``: load users whose token endpoint fails, paced.

gevent must not enter the pytest process, so the users run here, against the URL they are given:
``USERS`` greenlets each ready a step as the flows do (the bearer token, then the pacer's slot) for
``DURATION_S``, with the process's pacer at ``MAX_RPS``. It prints one JSON line: what it did.

    python token_pacing.py URL     # the token endpoint is URL/token
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, Final

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "loadtests"))

import gevent
from load_process import Bearer, Pacer, StopSignal, TokenUnavailable  # found through the path above
from stop_points import Answer  # this script's sibling, on the path as its folder

from harness.config import Credentials
from harness.load import LoadRecord
from harness.redaction import Secret

USERS: Final = 20
DURATION_S: Final = 3.0
MAX_RPS: Final = 2.0


class Client:
    """An ``HttpClient`` over httpx; no answer reads as Locust's status 0."""

    def __init__(self, http: httpx.Client) -> None:
        self.http = http

    def request(self, method: str, url: str, **kwargs: Any) -> Answer:
        try:
            response = self.http.request(method, url, content=kwargs.get("data"), headers=kwargs.get("headers"))
        except httpx.TransportError:
            return Answer(0, None)
        return Answer(response.status_code, response.content)


def main(url: str) -> None:
    stop = StopSignal()
    bearer = Bearer(f"{url}/token", Credentials("demo-provider", Secret("demo-secret")), LoadRecord(), stop)
    pacer = Pacer(MAX_RPS, stop)
    bearer.pacer = pacer  # as LoadProcess.start wires it when the run is paced
    steps = {"readied": 0, "no_token": 0}
    with httpx.Client(timeout=5.0) as http:
        client = Client(http)

        def user() -> None:
            while not stop:
                try:
                    bearer.headers(client)
                except TokenUnavailable:
                    steps["no_token"] += 1
                    gevent.sleep(0)  # a failed step: the flow gives back, then starts again
                    continue
                pacer.wait()
                steps["readied"] += 1

        users = [gevent.spawn(user) for _ in range(USERS)]
        gevent.sleep(DURATION_S)
        stop.set(grace_s=0.0)
        gevent.joinall(users, timeout=DURATION_S + 10)
    print(json.dumps(steps))


if __name__ == "__main__":
    main(sys.argv[1])
