"""Child process of ``test_load_stop_points.py``: one load user stopped at every point of its flows.

gevent must not enter the pytest process, and the load users import it, so this script runs them
in a process of its own against the sandbox URL it is given, and prints one JSON line per case.

A case is a flow (a delivery with doors, one without, a contention round), a request number ``n``
of that flow, and how the stop meets it:

- ``stop``: the run's stop is requested while request ``n`` is on the wire (its answer arrives
  after the stop): the flow must send nothing more of its own, give back and end;
- ``kill``: the user is killed while request ``n`` is on the wire and the request landed (the
  answer is lost): ``on_stop`` must give back from what the target now shows;
- ``kill-unsent``: the user is killed as request ``n`` was about to be sent (it never landed).

The stop is planted by a scripted client at an exact request, so no case depends on timing.
After each case the sandbox's own state is read: nothing may be held by the identity and no door
may be open; the ledger may have no open row; the oracles may have seen nothing.

    python stop_points.py URL     # credentials in HARBOR_CLIENT_ID / HARBOR_CLIENT_SECRET
"""

from __future__ import annotations

import contextlib
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "loadtests"))

import gevent
from load_flows import Conversation  # found through the path above
from load_process import LoadOptions, LoadProcess

from harness.sim import SimControl

TOWER: Final = "0100000000000014"
MODES: Final = ("stop", "kill", "kill-unsent")
_FREE: Final = frozenset({"available", "out_of_service"})


class Answer:
    """What Locust's ``catch_response`` context gives the flow: status, body, success/failure."""

    def __init__(self, status_code: int, content: bytes | None) -> None:
        self.status_code = status_code
        self.content = content

    def success(self) -> None:
        pass

    def failure(self, exc: Any) -> None:
        pass

    def __enter__(self) -> Answer:
        return self

    def __exit__(self, *exc: object) -> None:
        return None


class ScriptedClient:
    """An ``HttpClient`` over httpx that meets the run's stop at request ``at`` (1-based), as ``mode`` says."""

    def __init__(self, http: httpx.Client, process: LoadProcess, mode: str | None = None, at: int = 0) -> None:
        self.http = http
        self.process = process
        self.mode = mode
        self.at = at
        self.sent: list[str] = []  # step names, in order
        self.stopped_after = 0  # requests sent when the stop came

    def request(self, method: str, url: str, **kwargs: Any) -> Answer:
        step = str(kwargs.get("name"))
        planted = self.mode is not None and len(self.sent) + 1 == self.at
        if planted and self.mode == "kill-unsent":
            self.mode = None
            self.stopped_after = len(self.sent)
            raise gevent.GreenletExit
        self.sent.append(step)
        body = kwargs.get("json")
        response = self.http.request(method, url, json=body, content=kwargs.get("data"), headers=kwargs.get("headers"))
        if planted:
            mode, self.mode = self.mode, None
            self.stopped_after = len(self.sent)
            if mode == "kill":
                raise gevent.GreenletExit  # it landed; the user never reads the answer
            self.process.stopping.set()  # the stop arrives while this answer is on its way back
        return Answer(response.status_code, response.content)


def _flows(conversation: Conversation) -> dict[str, Callable[[], None]]:
    return {
        "delivery": conversation.deliver,
        "delivery-no-doors": conversation.deliver,
        "contention": lambda: conversation.contend(hold_s=0.0),
    }


def load_options(doors: bool) -> LoadOptions:
    """One closed-model delivery user against the sandbox's first tower, unpaced (the cases' plan)."""
    return LoadOptions(
        tower_id=TOWER,
        mode="closed",
        rate=1.0,
        duration_s=1.0,
        weights={"delivery": 1},
        think_s=(0.0, 0.0),
        doors=doors,
        contention_lockers=2,
        max_rps=0.0,
        timeout_s=5.0,
        result_path="",
        workers=1,
        worker_index=0,
    )


def run_case(url: str, control: SimControl, http: httpx.Client, flow: str, mode: str | None, at: int) -> dict[str, Any]:
    """One flow, stopped as planned (or not at all: ``mode`` None), then what the target shows."""
    control.reset()
    process = LoadProcess.start(load_options(doors=flow != "delivery-no-doors"), url)
    client = ScriptedClient(http, process, mode, at)
    conversation = Conversation(client, process, user_id=1)
    with contextlib.suppress(gevent.GreenletExit):  # killed: Locust would now run on_stop
        _flows(conversation)[flow]()
    conversation.stop()  # on_stop: after a cooperative stop there is nothing left to give back
    held = [
        f"{locker['id']} {locker['status']}{' door open' if locker['door_open'] else ''}"
        for locker in control.state()["lockers"]
        if locker["holder"] == process.actor and (locker["status"] not in _FREE or locker["door_open"])
    ]
    assert conversation.ledger is not None
    ledger = conversation.ledger
    open_rows = [
        f"{entry.kind} {entry.locker_id} {entry.state}"
        for entry in ledger.ledger.entries(open_only=True, run_id=ledger.run_id)
        if entry.owner == ledger.owner
    ]
    after_stop = client.sent[client.stopped_after :] if mode == "stop" else []
    record = process.record
    return {
        "flow": flow,
        "mode": mode,
        "at": at,
        "steps": client.sent,
        "held": held,
        "open_rows": open_rows,
        "flow_requests_after_stop": [step for step in after_stop if not step.startswith("cleanup_")],
        "violations": record.violation_count,
        "cleanup_failures": list(record.cleanup_failures),
        "flows": dict(record.flows),
    }


def main(url: str) -> None:
    with SimControl(url) as control, httpx.Client(base_url=url, timeout=10.0) as http:
        for flow in ("delivery", "delivery-no-doors", "contention"):
            whole = run_case(url, control, http, flow, None, 0)
            print(json.dumps(whole), flush=True)
            for at in range(1, len(whole["steps"]) + 1):
                for mode in MODES:
                    print(json.dumps(run_case(url, control, http, flow, mode, at)), flush=True)


if __name__ == "__main__":
    main(sys.argv[1])
