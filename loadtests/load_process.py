"""What one Locust process shares between its users: options, the record, the lockers it knows
are held, the bearer token, the arrival schedule of the open model and the request pacer.

gevent runs every user of a process on one thread, so nothing here needs a lock except where a
greenlet yields between a check and a change (the token fetch).
"""

from __future__ import annotations

import argparse
import json
import math
import time
import urllib.parse
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Protocol

import gevent
import gevent.event
import gevent.lock

from harness.config import Credentials, Settings, load_settings, parse_target
from harness.hosts import WirePolicy
from harness.load import LoadRecord
from harness.model import TowerId

__all__ = [
    "Arrivals",
    "Bearer",
    "ChangesInFlight",
    "GuardedClient",
    "LoadOptions",
    "LoadProcess",
    "Pacer",
    "StopSignal",
    "TokenRefused",
    "TokenUnavailable",
]

#: Seconds before a bearer token's expiry at which it is renewed (or half its life, if sooner).
_REFRESH_MARGIN_S: Final = 30.0
#: An open-model run starts its schedule this long after the first user asks, so the first
#: arrivals do not count the users' own start-up as latency.
_SCHEDULE_LEAD_NS: Final = 50_000_000
#: At most this many unserved arrivals are recorded one by one when a run ends.
_MAX_UNSERVED: Final = 1_000_000
#: Seconds the token endpoint is left alone after a failed token request, doubled at each failure
#: in a row up to the last: a token endpoint in trouble is not hammered by every user's every step.
_TOKEN_BACKOFF_S: Final = (0.5, 8.0)


@dataclass(frozen=True, slots=True)
class LoadOptions:
    """The ``--harness-*`` options, as every process sees them (workers get them from the master)."""

    tower_id: TowerId
    mode: str  # "closed" (users) or "open" (arrivals per second)
    rate: float  # deliveries per second in all, open model
    duration_s: float
    weights: Mapping[str, int]
    think_s: tuple[float, float]
    doors: bool  # open doors through the sandbox's control plane, else stop at the token
    contention_lockers: int
    max_rps: float  # 0: no cap
    timeout_s: float
    result_path: str
    workers: int  # processes that run users: 1 without a master
    worker_index: int
    #: The harness's run: each process's cleanup-ledger rows go under it ("": the parent's, if any).
    run_id: str = ""

    @classmethod
    def parse(cls, options: argparse.Namespace, *, workers: int, worker_index: int) -> LoadOptions:
        think = [float(part) for part in str(options.harness_think).split(",") if part.strip()] or [0.0]
        return cls(
            tower_id=TowerId(options.harness_tower),  # parsed where it enters this process
            mode=options.harness_mode,
            rate=float(options.harness_rate),
            duration_s=float(options.harness_duration),
            weights=parse_weights(options.harness_weights),
            think_s=(think[0], think[-1]),
            doors=options.harness_doors == "control-plane",
            contention_lockers=int(options.harness_contention_lockers),
            max_rps=float(options.harness_max_rps),
            timeout_s=float(options.harness_timeout),
            result_path=str(options.harness_result),
            run_id=str(getattr(options, "harness_run_id", "") or ""),
            workers=max(workers, 1),
            worker_index=worker_index,
        )


def parse_weights(text: str) -> dict[str, int]:
    """``delivery=3,browsing=1,contention=1`` as a dict; raises ``ValueError`` on anything else."""
    weights: dict[str, int] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        name, sep, value = item.partition("=")
        if not sep or not value.strip().isdigit():
            raise ValueError(f"weights must look like delivery=3,browsing=1, not {text!r}")
        weights[name.strip()] = int(value)
    return weights


class TokenRefused(Exception):
    """The token endpoint refused the client: no user of this run can do anything."""


class TokenUnavailable(ConnectionError):
    """The token endpoint gave no token (a 5xx, no answer, not JSON): the request that needed one
    cannot be sent, but the next may; already counted against ``authenticate``."""


class Response(Protocol):
    """The part of Locust's response context manager this module uses."""

    status_code: int
    content: bytes | None

    def success(self) -> None: ...

    def failure(self, exc: Any) -> None: ...

    def __enter__(self) -> Response: ...

    def __exit__(self, *exc: object) -> bool | None: ...


class HttpClient(Protocol):
    """The part of FastHttpUser's client this module uses (``request`` with Locust's keywords)."""

    def request(self, method: str, url: str, **kwargs: Any) -> Any: ...


class GuardedClient:
    """A user's HTTP client behind the guard at the wire: each request, with its absolute URL, is
    checked by the run's ``WirePolicy`` before Locust sends it (``RequestRefused`` if not)."""

    def __init__(self, client: HttpClient, base_url: str, policy: WirePolicy) -> None:
        self._client = client
        self._base_url = base_url.rstrip("/")
        self._policy = policy

    def request(self, method: str, url: str, **kwargs: Any) -> Any:
        absolute = url if "://" in url else self._base_url + url
        self._policy.check(method, absolute)
        return self._client.request(method, url, **kwargs)


class Bearer:
    """One service-provider bearer token per process, fetched once and renewed before it expires.

    A token request is a request to the target like any other: it takes the pacer's slot (Harbor's
    sandbox counts it against the same budget). After a failed one the endpoint is left alone for a
    while (``_TOKEN_BACKOFF_S``, doubled at each failure in a row): the users that need a token wait
    for the next try, each for its own step, instead of sending one request each.
    """

    def __init__(
        self, token_url: str, credentials: Credentials, record: LoadRecord, stopping: StopSignal | None = None
    ) -> None:
        self._token_url = token_url
        self._form = urllib.parse.urlencode(
            {
                "grant_type": "client_credentials",
                "client_id": credentials.client_id,
                "client_secret": credentials.client_secret.reveal(),
                "scope": "service_provider",
            }
        )
        self._record = record
        self._headers: dict[str, str] | None = None
        self._refresh_at = 0.0
        self._lock = gevent.lock.Semaphore()
        self._stopping = stopping if stopping is not None else StopSignal()  # falsy until set
        #: The process's pacer, if it has one: token requests keep to its budget too.
        self.pacer: Pacer | None = None
        self._retry_at = 0.0  # time.monotonic() before which no token request is sent
        self._failures = 0  # failed token requests in a row

    def headers(self, client: HttpClient) -> dict[str, str]:
        """``Authorization`` (and ``Accept``) for the next request; fetches a token if needed."""
        headers = self._headers
        if headers is not None and time.monotonic() < self._refresh_at:
            return headers
        with self._lock:  # one greenlet fetches; the others wait and reuse its token
            if self._headers is None or time.monotonic() >= self._refresh_at:
                self._wait_for_retry()
                if self.pacer is not None:
                    self.pacer.wait_through_stop()
                try:
                    self._fetch(client)
                except TokenUnavailable:
                    first, cap = _TOKEN_BACKOFF_S
                    self._retry_at = time.monotonic() + min(cap, first * 2**self._failures)
                    self._failures += 1
                    raise
                self._failures = 0
        assert self._headers is not None
        return self._headers

    def _wait_for_retry(self) -> None:
        """Wait out the backoff after a failed token request (no longer than the stop's deadline);
        ``TokenUnavailable``, with nothing sent, if the stop's deadline comes first."""
        while (wait := self._retry_at - time.monotonic()) > 0:
            if self._stopping.pause(wait):
                rest = min(self._retry_at, self._stopping.deadline) - time.monotonic()
                if rest > 0:
                    gevent.sleep(rest)
                if time.monotonic() < self._retry_at:
                    raise TokenUnavailable("authenticate: the token endpoint failed just before; the run is stopping")
                return

    def forget(self) -> None:
        """Drop the token (a 401 said it is no longer good)."""
        self._headers = None

    def _fetch(self, client: HttpClient) -> None:
        """One token request; a 5xx or no answer is a lost answer of ``authenticate``, counted once."""
        sent = time.monotonic()
        started = time.perf_counter_ns()
        with client.request(
            "POST",
            self._token_url,
            name="authenticate",
            data=self._form,
            headers={"Content-Type": "application/x-www-form-urlencoded", "Accept": "application/json"},
            catch_response=True,
        ) as response:
            counts = self._record.request("authenticate", time.perf_counter_ns() - started)
            status = response.status_code
            if status in (400, 401, 403):
                response.failure(f"the token endpoint refused the client ({status})")
                self._record.error(counts, f"authenticate: {status} (credentials refused)")
                raise TokenRefused(f"the token endpoint refused the client ({status}): check HARBOR_CLIENT_ID/SECRET")
            if status >= 500 or status == 0:
                # The token endpoint is a host of the target: its 5xx is a server error like any other.
                reason = f"authenticate: {status or 'no answer'}"
                response.failure(reason)
                self._record.lost_answer(counts, "server_error" if status else "answer_lost", reason)
                raise TokenUnavailable(reason)
            try:
                body = json.loads(response.content or b"")
                token, lifetime = str(body["access_token"]), float(body["expires_in"])
            except (ValueError, KeyError, TypeError):
                reason = f"authenticate: {status}, no token in the answer"
                response.failure(reason)
                self._record.error(counts, reason)
                raise TokenUnavailable(reason) from None
            response.success()
        self._headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
        self._refresh_at = sent + lifetime - min(_REFRESH_MARGIN_S, lifetime / 2)


class StopSignal:
    """The run is stopping: set once, seen by every user of the process at its next step.

    Users are never killed mid-request by a normal stop (the locustfile gives Locust a stop
    timeout): each notices this between two requests, gives back what it holds and ends, so no
    request whose answer it never read can land on the target after its cleanup looked.
    """

    def __init__(self) -> None:
        self._event = gevent.event.Event()
        self._deadline = math.inf

    def __bool__(self) -> bool:
        return bool(self._event.is_set())

    def set(self, grace_s: float = 0.0) -> None:
        """Stop the run; the users' cleanups may keep to the pacer's budget for ``grace_s`` more."""
        if not self._event.is_set():
            self._deadline = time.monotonic() + max(grace_s, 0.0)
        self._event.set()

    @property
    def deadline(self) -> float:
        """When (``time.monotonic``) a cleanup stops waiting for its pacer slot; infinite until the stop."""
        return self._deadline

    def pause(self, seconds: float) -> bool:
        """Sleep ``seconds``, or less if the stop comes first; whether it came."""
        if seconds > 0:
            self._event.wait(seconds)
        return bool(self._event.is_set())


class Pacer:
    """Caps this process's requests per second (the budget against Harbor's sandbox).

    Each request takes the next free slot, ``1 / per_second`` after the one before. A flow's
    request gives its slot up when the run stops while it waits (it is never sent); the cleanup's
    requests, which give lockers back as the run stops, keep to the budget then too.
    """

    def __init__(self, per_second: float, stop: StopSignal) -> None:
        self._interval = 1.0 / per_second
        self._next = 0.0
        #: The end of the last slot whose request was, or will be, sent.
        self._used = 0.0
        self._stop = stop

    def wait(self) -> None:
        """Wait for this request's slot; returns early when the run stops (the caller checks, and
        then sends nothing)."""
        slot = self._take()
        if not self._stop.pause(slot - time.monotonic()):
            self._used = max(self._used, slot + self._interval)

    def wait_through_stop(self) -> None:
        """Wait for a cleanup request's slot. The stop does not cut it short, so giving back keeps
        to the budget (Harbor's sandbox counts these requests too); but no wait goes past the
        stop's deadline, so a stopping user still ends within Locust's stop timeout."""
        slot = self._take()
        self._used = max(self._used, slot + self._interval)
        if self._stop.pause(slot - time.monotonic()):
            rest = min(slot, self._stop.deadline) - time.monotonic()
            if rest > 0:
                gevent.sleep(rest)

    def _take(self) -> float:
        """The next free slot (``time.monotonic``), now taken."""
        if self._stop:
            # The flows' requests that were waiting when the stop came were never sent: only
            # the slots of requests that went, or will go, still count against the budget.
            self._next = self._used
        slot = max(time.monotonic(), self._next)
        self._next = slot + self._interval
        return slot


class Arrivals:
    """The open model's schedule: flow ``k`` of this process is meant to start at ``t0 + k / rate``.

    The total rate is split evenly over the processes that run users, each offset by its index,
    so together they arrive evenly. A user claims the next arrival when it is free; if every user
    is busy, arrivals wait, and their latency still counts from when they were meant to start.
    """

    def __init__(self, rate: float, workers: int, index: int) -> None:
        self._interval_ns = round(1e9 * workers / rate)
        self._phase_ns = round(1e9 * index / rate)
        self._t0: int | None = None
        self._next = 0
        self.closed = False

    def claim(self) -> int:
        """The intended start (``perf_counter_ns``) of the next arrival."""
        if self._t0 is None:
            self._t0 = time.perf_counter_ns() + _SCHEDULE_LEAD_NS + self._phase_ns
        intended = self._t0 + self._next * self._interval_ns
        self._next += 1
        return intended

    def close(self, now_ns: int) -> list[int]:
        """Stop the schedule; the intended starts before ``now_ns`` that no user claimed."""
        self.closed = True
        if self._t0 is None:
            return []
        missed: list[int] = []
        while len(missed) < _MAX_UNSERVED:
            intended = self._t0 + self._next * self._interval_ns
            if intended >= now_ns:
                break
            missed.append(intended)
            self._next += 1
        return missed


class ChangesInFlight:
    """The requests that may change a locker (every one but a look) this process's users have
    sent and not yet seen end, by locker and user; and how many were ever sent, by locker.

    Contention users race for the same lockers, so a locker can have several at once; each has its
    own event, set when its answer comes (or is lost), so whoever waits for a locker's requests is
    woken as the last of them ends, never left waiting a whole request timeout for one whose answer
    already came. The count lets a cleanup tell that its look is still the last word on the locker:
    nothing was in flight when it looked, and nothing was sent since (``started`` is unchanged).
    """

    def __init__(self) -> None:
        self._events: dict[int, dict[int, gevent.event.Event]] = {}
        self._started: dict[int, int] = {}

    def begin(self, locker_id: int, user_id: int) -> None:
        """``user_id`` sends a request that may change ``locker_id``; ``end`` must follow, whatever happens."""
        self._events.setdefault(locker_id, {})[user_id] = gevent.event.Event()
        self._started[locker_id] = self._started.get(locker_id, 0) + 1

    def end(self, locker_id: int, user_id: int) -> None:
        """The request ``user_id`` sent is over (answered, refused or lost)."""
        in_flight = self._events.get(locker_id, {})
        event = in_flight.pop(user_id, None)
        if not in_flight:
            self._events.pop(locker_id, None)
        if event is not None:
            event.set()

    def started(self, locker_id: int) -> int:
        """How many requests that may change ``locker_id`` were sent so far, by every user."""
        return self._started.get(locker_id, 0)

    def others(self, locker_id: int, user_id: int) -> set[int]:
        """The users other than ``user_id`` with a request that may change ``locker_id`` in flight."""
        return set(self._events.get(locker_id, ())) - {user_id}

    def wait_for_others(self, locker_id: int, user_id: int, timeout_s: float) -> bool:
        """Wait (at most ``timeout_s`` in all) for the other users' requests on ``locker_id`` to
        end; whether one is still in flight after that."""
        deadline = time.monotonic() + timeout_s
        while others := self.others(locker_id, user_id):
            rest = deadline - time.monotonic()
            if rest <= 0:
                return True
            self._events[locker_id][min(others)].wait(rest)
        return False


@dataclass
class LoadProcess:
    """Everything the users of one Locust process share."""

    options: LoadOptions
    actor: str  # the client id: the holder the sandbox records
    bearer: Bearer
    record: LoadRecord
    pacer: Pacer | None = None
    arrivals: Arrivals | None = None
    #: Lockers a user of this process holds, and which user: the double-booking oracle's knowledge.
    held: dict[int, int] = field(default_factory=dict)
    #: Requests in flight that may change a locker (a cleanup must not act on a look another
    #: user's reserve, release or door may have made stale: it may be taking a locker from them).
    pending: ChangesInFlight = field(default_factory=ChangesInFlight)
    #: Lost answers (a 5xx, no answer) about each locker so far: a request that may or may not have
    #: landed puts what every user knows of that locker in doubt. An oracle judges a locker only if
    #: no answer about it was lost since the hold it judges began (``Hold.doubt``).
    doubt: dict[int, int] = field(default_factory=dict)
    #: ``doubt`` of each held locker when its holder asked for it: the baseline of its hold.
    held_doubt: dict[int, int] = field(default_factory=dict)
    #: The lockers contention users fight for (chosen once per process, from a listing).
    hot_lockers: list[int] = field(default_factory=list)
    #: Set when the run cannot go on (credentials refused); the harness reports it.
    fatal: str | None = None
    #: Set when the run stops: each flow ends at its next step and gives back what it holds.
    stopping: StopSignal = field(default_factory=StopSignal)
    #: The resolved settings: where the cleanup ledger lives (``state_dir``) and whom it records.
    settings: Settings | None = None

    def share(self, listed: Iterable[int]) -> frozenset[int]:
        """Which lockers of a whole listing of the tower this process's users may reserve.

        One process: all of them. Several (``--processes``, a distributed run's workers): every
        ``workers``-th of the listing's ids in order, from the process's own index. The shares are
        disjoint and every process computes the same ones from its own listing, so no two processes
        act on one locker: what this process knows (its holds, its requests in flight, its lost
        answers) is all there is to know of the lockers it touches. Without that, one process's
        cleanup after a lost answer could give back another process's hold, which no record of its
        own can show (the identity is the same), and the other's next step would be a false defect.
        """
        workers = self.options.workers
        if workers == 1:
            return frozenset(listed)
        return frozenset(sorted(set(listed))[self.options.worker_index % workers :: workers])

    @classmethod
    def start(cls, options: LoadOptions, host: str) -> LoadProcess:
        """The process's state for a run against ``host``; credentials come from the environment."""
        target = parse_target(host)
        if target.is_production:
            raise ValueError("load against production is refused")
        settings = load_settings({"target": host})
        token_url = settings.target.token_url or target.token_url
        assert token_url is not None
        record = LoadRecord()
        stopping = StopSignal()
        bearer = Bearer(token_url, settings.credentials(), record, stopping)
        process = cls(options, settings.credentials().client_id, bearer, record, stopping=stopping)
        if options.max_rps > 0:
            process.pacer = bearer.pacer = Pacer(options.max_rps / options.workers, process.stopping)
        if options.mode == "open":
            process.arrivals = Arrivals(options.rate, options.workers, options.worker_index)
        process.settings = settings
        return process
