"""Child process of ``test_load_give_back.py``: load users meeting a failed token refresh, a stop
while they wait for a pacer slot, and a stop whose cleanup the pacer budgets.

gevent must not enter the pytest process, and the load users import it, so this script runs them
in a process of its own against the sandbox URL it is given, and prints one JSON line per case.

Cases (each planted by a scripted client or pacer at an exact request, so none depends on timing
luck, except the two pacing cases, which measure the pacer itself):

- ``token``: the bearer token is dropped after flow request ``at - 1`` is answered and its refresh,
  made before request ``at``, answers ``status`` (503: no token; 401: the client refused), once;
- ``slot``: the run's stop arrives while flow request ``at`` waits for its pacer slot;
- ``guard``: a second reserve while the user still holds a locker;
- ``paced-cleanup``: the stop arrives with other requests queued on the pacer; the cleanup's
  requests keep to its rate, in the slots those abandoned;
- ``cleanup-deadline``: the pacer's next slots lie past the stop's grace; the cleanup waits only
  until the grace ends.

    python give_back_points.py URL     # credentials in HARBOR_CLIENT_ID / HARBOR_CLIENT_SECRET
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "loadtests"))

import gevent
from load_flows import Conversation  # found through the path above
from load_process import LoadProcess, Pacer, TokenRefused
from stop_points import Answer, load_options  # this script's sibling, on the path as its folder

from harness.ledger import OPEN_STATES
from harness.sim import SimControl

TOWER: Final = "0100000000000014"
FLOWS: Final = ("delivery", "delivery-no-doors", "contention")
_FREE: Final = frozenset({"available", "out_of_service"})
_CREATES: Final = frozenset({"reserve", "contend_reserve", "dropoff_token", "pickup_token"})
#: Pacing cases: the pacer's interval and the stop's grace.
PACED_INTERVAL_S: Final = 0.2
DEADLINE_INTERVAL_S: Final = 5.0
DEADLINE_GRACE_S: Final = 0.3
#: Flow requests queued on the pacer when the stop comes (their slots reach this many intervals on).
QUEUED: Final = 30


class ScriptedClient:
    """An ``HttpClient`` over httpx; ``after(client, step)`` runs once each answer is in."""

    def __init__(
        self, http: httpx.Client, process: LoadProcess, after: Callable[[ScriptedClient, str], None] | None = None
    ) -> None:
        self.http = http
        self.process = process
        self.after = after
        self.sent: list[tuple[str, float]] = []  # step names and when they were sent (monotonic)
        self.token_fault: int | None = None  # the status the next token request answers, once

    @property
    def steps(self) -> list[str]:
        return [step for step, _ in self.sent]

    def request(self, method: str, url: str, **kwargs: Any) -> Answer:
        step = str(kwargs.get("name"))
        self.sent.append((step, time.monotonic()))
        if step == "authenticate" and self.token_fault is not None:
            status, self.token_fault = self.token_fault, None
            return Answer(status, b"")
        body = kwargs.get("json")
        response = self.http.request(method, url, json=body, content=kwargs.get("data"), headers=kwargs.get("headers"))
        if self.after is not None:
            self.after(self, step)
        return Answer(response.status_code, response.content)


class StopAtSlot(Pacer):
    """A pacer (fast enough never to wait) that lets the run's stop arrive while wait ``at`` waits."""

    def __init__(self, process: LoadProcess, at: int) -> None:
        super().__init__(1_000_000.0, process.stopping)
        self.process = process
        self.at = at
        self.waits = 0

    def wait(self) -> None:
        self.waits += 1
        if self.waits == self.at:
            self.process.stopping.set(grace_s=5.0)
        super().wait()


def _flow(conversation: Conversation, flow: str) -> Callable[[], None]:
    if flow == "contention":
        return lambda: conversation.contend(hold_s=0.0)
    return conversation.deliver


def _outcome(
    control: SimControl, process: LoadProcess, client: ScriptedClient, conversation: Conversation
) -> dict[str, Any]:
    """What the target, the ledger and the record show once the user has stopped."""
    conversation.stop()  # on_stop: normally nothing is left to give back by now
    held = [
        f"{locker['id']} {locker['status']}{' door open' if locker['door_open'] else ''}"
        for locker in control.state()["lockers"]
        if locker["holder"] == process.actor and (locker["status"] not in _FREE or locker["door_open"])
    ]
    assert conversation.ledger is not None
    ledger = conversation.ledger
    entries = [entry for entry in ledger.ledger.entries(run_id=ledger.run_id) if entry.owner == ledger.owner]
    rows = [f"{entry.kind} {entry.locker_id} {entry.state}" for entry in entries]
    record = process.record
    return {
        "steps": client.steps,
        "held": held,
        "rows": rows,
        "open_rows": [row for row, entry in zip(rows, entries, strict=True) if entry.state in OPEN_STATES],
        "creates_sent": sum(step in _CREATES for step in client.steps),
        "hold_left": conversation.hold is not None,
        "violations": record.violation_count,
        "errors": dict(record.errors),
        "cleanup": dict(record.cleanup),
        "cleanup_failures": list(record.cleanup_failures),
        "flows": dict(record.flows),
    }


def whole_flow(url: str, control: SimControl, http: httpx.Client, flow: str) -> list[str]:
    """The flow's requests after the token, when nothing gets in its way."""
    control.reset()
    process = LoadProcess.start(load_options(doors=flow != "delivery-no-doors"), url)
    client = ScriptedClient(http, process)
    conversation = Conversation(client, process, user_id=1)
    _flow(conversation, flow)()
    conversation.stop()
    return [step for step in client.steps if step != "authenticate"]


def token_case(url: str, control: SimControl, http: httpx.Client, flow: str, at: int, status: int) -> dict[str, Any]:
    """The token is refreshed before flow request ``at`` and the refresh answers ``status``."""
    control.reset()
    process = LoadProcess.start(load_options(doors=flow != "delivery-no-doors"), url)
    answered = 0

    def after(client: ScriptedClient, step: str) -> None:
        nonlocal answered
        if step == "authenticate" or step.startswith("cleanup_"):
            return
        answered += 1
        if answered == at - 1:
            process.bearer.forget()  # as a token near its expiry: the next request fetches one
            client.token_fault = status

    client = ScriptedClient(http, process, after)
    if at == 1:
        client.token_fault = status  # the very first token request
    conversation = Conversation(client, process, user_id=1)
    raised = None
    try:
        _flow(conversation, flow)()
    except TokenRefused:
        raised = "TokenRefused"
    except Exception as error:  # reported, so the test names what escaped the flow
        raised = type(error).__name__
    return {"case": "token", "flow": flow, "at": at, "status": status, "raised": raised} | _outcome(
        control, process, client, conversation
    )


def slot_case(url: str, control: SimControl, http: httpx.Client, flow: str, at: int) -> dict[str, Any]:
    """The run's stop arrives while flow request ``at`` waits for its pacer slot."""
    control.reset()
    process = LoadProcess.start(load_options(doors=flow != "delivery-no-doors"), url)
    process.pacer = StopAtSlot(process, at)
    client = ScriptedClient(http, process)
    conversation = Conversation(client, process, user_id=1)
    _flow(conversation, flow)()
    return {"case": "slot", "flow": flow, "at": at} | _outcome(control, process, client, conversation)


def guard_case(url: str, control: SimControl, http: httpx.Client) -> dict[str, Any]:
    """A reserve while the user still holds a locker gives that one back first."""
    control.reset()
    process = LoadProcess.start(load_options(doors=False), url)
    client = ScriptedClient(http, process)
    conversation = Conversation(client, process, user_id=1)
    first, second = [locker["id"] for locker in control.state()["lockers"] if locker["status"] == "available"][:2]
    reserved = [conversation.reserve("reserve", first), conversation.reserve("reserve", second)]
    statuses = {str(locker_id): control.locker(locker_id)["status"] for locker_id in (first, second)}
    holding = conversation.hold.locker_id if conversation.hold is not None else None
    return {
        "case": "guard",
        "first": first,
        "second": second,
        "reserved": reserved,
        "statuses_between": statuses,
        "holding": holding,
        "held_map": {str(key): value for key, value in process.held.items()},
    } | _outcome(control, process, client, conversation)


def paced_case(url: str, control: SimControl, http: httpx.Client, interval_s: float, grace_s: float) -> dict[str, Any]:
    """A delivery stopped after its reserve, with ``QUEUED`` flow requests waiting on a pacer of
    ``interval_s``; when its cleanup's requests were sent, in seconds after the stop."""
    control.reset()
    process = LoadProcess.start(load_options(doors=False), url)
    stop: dict[str, float] = {}
    waiters: list[gevent.Greenlet] = []
    queued = 0

    def queue_one(pacer: Pacer) -> None:
        nonlocal queued
        queued += 1
        pacer.wait()

    def after(client: ScriptedClient, step: str) -> None:
        if step != "reserve":
            return
        # The pacer starts here, so the flow itself never waits; the other users' requests take
        # the next slots and are waiting in them when the stop comes.
        pacer = process.pacer = Pacer(1.0 / interval_s, process.stopping)
        waiters.extend(gevent.spawn(queue_one, pacer) for _ in range(QUEUED))
        gevent.sleep(0)
        stop["at"] = time.monotonic()
        process.stopping.set(grace_s=grace_s)

    client = ScriptedClient(http, process, after)
    conversation = Conversation(client, process, user_id=1)
    conversation.deliver()
    gevent.joinall(waiters, timeout=5.0)
    cleanup = [round(sent - stop["at"], 3) for step, sent in client.sent if step.startswith("cleanup_")]
    return {"case": "paced", "interval_s": interval_s, "grace_s": grace_s, "queued": queued, "cleanup_at": cleanup} | (
        _outcome(control, process, client, conversation)
    )


def main(url: str) -> None:
    with SimControl(url) as control, httpx.Client(base_url=url, timeout=10.0) as http:
        for flow in FLOWS:
            steps = whole_flow(url, control, http, flow)
            print(json.dumps({"case": "whole", "flow": flow, "steps": steps}), flush=True)
            for at in range(1, len(steps) + 1):
                for status in (503, 401):
                    print(json.dumps(token_case(url, control, http, flow, at, status)), flush=True)
                print(json.dumps(slot_case(url, control, http, flow, at)), flush=True)
        print(json.dumps(guard_case(url, control, http)), flush=True)
        print(json.dumps(paced_case(url, control, http, PACED_INTERVAL_S, 30.0)), flush=True)
        print(json.dumps(paced_case(url, control, http, DEADLINE_INTERVAL_S, DEADLINE_GRACE_S)), flush=True)


if __name__ == "__main__":
    main(sys.argv[1])
