"""Child process of ``test_load_cleanup_races.py``: a cleanup and another user of the same identity
racing for one locker, each interleaving staged request by request, in gevent.

gevent must not enter the pytest process, and the load users import it, so this script runs them
in a process of its own against the sandbox URL it is given, and prints one JSON line per case.

User A (3) lost an answer about the locker, so it gives it back from a look; user B (4) is a
contention user taking and releasing the same locker. Every request goes through a scripted client
that can hold it before it is sent (on a cue another request gives), lose its answer, or drop it
unsent; httpx blocks the process, so between cues nothing runs but what the case stages. A cue not
given within ``CUE_TIMEOUT_S`` is passed over (the users did not run into it), so a case ends
whichever way the users go.

- ``wait-then-look``: A's first cleanup release lands while B's reserve is on the wire; A's next
  look waits for that reserve, which makes B the holder, and B starts its release meanwhile;
- ``hold-during-look``: A's look is on the wire while B reserves and starts its release;
- ``let-go-then-slot``: B lets go of the locker and then waits for its pacer slot before its
  release goes; A looks meanwhile.

In each, A's release, if it is sent from a look of B's hold, is served after B's release and B's
next reserve (the target serves connections in no promised order): it takes B's new hold from
under it, and B's next release is refused. Nothing about the locker was lost since B's hold began,
so that refusal would be a (false) product defect.

    python cleanup_races.py URL     # credentials in HARBOR_CLIENT_ID / HARBOR_CLIENT_SECRET
"""

from __future__ import annotations

import json
import sys
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "loadtests"))

import gevent
import gevent.event
from load_flows import Conversation  # found through the path above
from load_process import LoadProcess, Pacer
from stop_points import Answer, load_options  # this script's sibling, on the path as its folder

from harness.sim import SimControl

A: Final = 3
B: Final = 4
#: How long a request held for a cue waits before it goes anyway.
CUE_TIMEOUT_S: Final = 1.0
#: The bound on a case's two users together.
CASE_TIMEOUT_S: Final = 60.0


class Stage:
    """The cues of one case: named events, and the ones a request gave up waiting for."""

    def __init__(self) -> None:
        self._events: defaultdict[str, gevent.event.Event] = defaultdict(gevent.event.Event)
        self.missed: list[str] = []

    def give(self, name: str) -> None:
        self._events[name].set()

    def wait(self, name: str) -> None:
        if not self._events[name].wait(CUE_TIMEOUT_S):
            self.missed.append(name)

    def cue(self, gives: str | None, *waits: str) -> Callable[[], None]:
        """Give the cue ``gives`` (if any), then wait for each of ``waits`` in turn."""

        def play() -> None:
            if gives is not None:
                self.give(gives)
            for name in waits:
                self.wait(name)

        return play


@dataclass(frozen=True)
class Cue:
    """What a scripted client does with one request: run ``before`` it is sent, drop it unsent,
    run ``after`` its answer is in, lose that answer."""

    before: Callable[[], None] | None = None
    dropped: bool = False
    after: Callable[[], None] | None = None
    lost: bool = False


#: A user's cues, by step name and the request's number among that step's.
_Cues = dict[tuple[str, int], Cue]


class StagedPacer(Pacer):
    """A pacer fast enough never to wait, but whose next wait can be made to run a cue first."""

    def __init__(self, process: LoadProcess) -> None:
        super().__init__(1_000_000.0, process.stopping)
        self.next_wait: Callable[[], None] | None = None

    def wait(self) -> None:
        cue, self.next_wait = self.next_wait, None
        if cue is not None:
            cue()
        super().wait()

    def wait_through_stop(self) -> None:
        cue, self.next_wait = self.next_wait, None
        if cue is not None:
            cue()
        super().wait_through_stop()


class ScriptedClient:
    """An ``HttpClient`` over httpx that plays its cues at the ``n``-th request of a step."""

    def __init__(self, http: httpx.Client, user: str, log: list[str], cues: _Cues) -> None:
        self.http = http
        self.user = user
        self.log = log  # "user step status" of every request of the case, in the order answered
        self.cues = cues
        self._counts: Counter[str] = Counter()

    def request(self, method: str, url: str, **kwargs: Any) -> Answer:
        step = str(kwargs.get("name"))
        self._counts[step] += 1
        cue = self.cues.get((step, self._counts[step]), Cue())
        if cue.before is not None:
            cue.before()
        if cue.dropped:
            self.log.append(f"{self.user} {step} dropped")
            return Answer(0, b"")
        response = self.http.request(
            method, url, json=kwargs.get("json"), content=kwargs.get("data"), headers=kwargs.get("headers")
        )
        self.log.append(f"{self.user} {step} {response.status_code}{' lost' if cue.lost else ''}")
        if cue.after is not None:
            cue.after()
        return Answer(0, b"") if cue.lost else Answer(response.status_code, response.content)


def _cues(case: str, stage: Stage, process: LoadProcess) -> tuple[_Cues, _Cues]:
    """A's and B's cues for ``case``."""
    cue = stage.cue
    if case == "wait-then-look":
        a = {
            ("contend_reserve", 1): Cue(lost=True),  # it landed: A's cleanup finds the locker reserved
            ("cleanup_release", 1): Cue(before=cue("b-go", "b-reserve-sent"), after=cue("a-released")),
            ("cleanup_door", 2): Cue(before=cue("a-looked")),
            ("cleanup_release", 2): Cue(before=cue("a-release-sent", "b-again"), after=cue("a-again")),
        }
        b = {
            ("contend_reserve", 1): Cue(before=cue("b-reserve-sent", "a-released")),
            ("contend_release", 1): Cue(before=cue(None, "a-looked", "a-release-sent")),
            ("contend_release", 2): Cue(before=cue("b-again", "a-again")),
        }
        return a, b
    if case == "hold-during-look":
        a = {
            ("contend_reserve", 1): Cue(dropped=True),  # never landed: the locker is free for B
            ("cleanup_status", 1): Cue(before=cue("b-go", "b-release-on-wire")),
            ("cleanup_release", 1): Cue(before=cue("a-release-sent", "b-again"), after=cue("a-again")),
        }
        b = {
            ("contend_release", 1): Cue(before=cue("b-release-on-wire", "a-release-sent")),
            ("contend_release", 2): Cue(before=cue("b-again", "a-again")),
        }
        return a, b
    if case == "let-go-then-slot":
        pacer = process.pacer
        assert isinstance(pacer, StagedPacer)

        def slow_slot() -> None:  # B's next request waits for its slot until A is done
            pacer.next_wait = cue("b-waiting", "a-done")

        a = {
            ("contend_reserve", 1): Cue(dropped=True),
            ("cleanup_status", 1): Cue(before=cue("b-go", "b-waiting")),
        }
        b = {("contend_reserve", 1): Cue(after=slow_slot)}
        return a, b
    raise ValueError(case)


#: Each case's contention rounds for B (a round: reserve, release).
ROUNDS: Final = {"wait-then-look": 2, "hold-during-look": 2, "let-go-then-slot": 1}


def run_case(url: str, control: SimControl, http: httpx.Client, case: str) -> dict[str, Any]:
    control.reset()
    process = LoadProcess.start(load_options(doors=True), url)
    process.pacer = process.bearer.pacer = StagedPacer(process)
    locker_id = next(locker["id"] for locker in control.state()["lockers"] if locker["status"] == "available")
    process.hot_lockers = [locker_id]
    stage = Stage()
    log: list[str] = []
    a_cues, b_cues = _cues(case, stage, process)
    a = Conversation(ScriptedClient(http, "A", log, a_cues), process, user_id=A)
    b = Conversation(ScriptedClient(http, "B", log, b_cues), process, user_id=B)
    process.bearer.headers(ScriptedClient(http, "-", [], {}))  # the first token, before the case

    def user_a() -> None:
        a.contend(hold_s=0.0)
        stage.give("a-done")

    def user_b() -> None:
        stage.wait("b-go")
        for _ in range(ROUNDS[case]):
            b.contend(hold_s=0.0)

    users = [gevent.spawn(user_a), gevent.spawn(user_b)]
    gevent.joinall(users, timeout=CASE_TIMEOUT_S, raise_error=True)
    a.stop()
    b.stop()
    locker = control.locker(locker_id)
    record = process.record
    return {
        "case": case,
        "requests": log,
        "missed_cues": stage.missed,
        "finished": all(user.dead for user in users),
        "locker": f"{locker['status']}{' door open' if locker['door_open'] else ''}",
        "held": {str(key): value for key, value in process.held.items()},
        "violations": [f"{v.kind}: {v.step} {v.detail}" for v in record.examples],
        "errors": dict(record.errors),
        "cleanup_failures": list(record.cleanup_failures),
    }


def main(url: str) -> None:
    with SimControl(url) as control, httpx.Client(base_url=url, timeout=10.0) as http:
        for case in ROUNDS:
            print(json.dumps(run_case(url, control, http, case)), flush=True)


if __name__ == "__main__":
    main(sys.argv[1])
