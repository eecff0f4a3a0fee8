"""One Locust user's conversation with Harbor's side: the delivery, browsing and contention flows,
their in-flight oracles, and the cleanup that gives back whatever the user holds.

Every request is named by its step and timed with ``perf_counter_ns`` into the process's
``LoadRecord``. Paths and bodies come from the API client's operation builders (the one place
the REST surface is written down); answers are read by hand, only the fields the flow needs, so
the client side costs little next to Locust's own.

The oracles, each counted as its own kind and never mixed with ordinary errors:

- ``double_booking``: a reserve succeeded on a locker another user of this process holds;
- ``unexpected_status``: after a step the locker's status is not what ``harness.model`` predicts,
  or a request the model allows was refused. Statuses are read by name with the assumptions in
  effect (``harness.assumptions.read_status``); right after a first drop-off's door opens, rented
  and occupied both fit (when a locker turns occupied is a guess, ``occupied_on``), and which one
  the target showed is recorded as an observation, never a violation.

A lost answer (a 5xx from any host of the target, a dropped connection, a timeout) is an error
of its own kind (``server_error``, ``answer_lost``), never an oracle's finding: the request may
have landed or not, so what every user of this process knew of its locker is in doubt
(``LoadProcess.doubt``). An oracle judges a locker only if no answer about it was lost since the
hold it judges began; otherwise the contradiction is counted as an error ("reconciled"), and the
flow gives the locker back from a fresh look, as after any failure. A cleanup never gives back a
locker another user of this identity holds or is being given: it acts only on a look during which
no other user held the locker or had a request that may change it in flight, and only if none was
sent since (``LoadProcess.pending``, judged again once its own request is readied). The target
may serve one user's request after another's sent later, so an action chosen from a look at
another user's hold could land on that user's next one; a lost answer cannot make a cleanup take a
locker from under another user.

With several processes (``--processes``, a distributed run's workers) each reserves only its own
share of the tower's lockers (``LoadProcess.share``): the oracles and the cleanup rules above need
every hold and request on a locker to be known to one process, and no record crosses processes.

A 409 on a reserve is contention (the listing was stale): a conflict, not a failure. A 401 or a
429 is an ordinary error, and so is a request that could not be sent for want of a bearer token
(the token endpoint's trouble, counted once against ``authenticate``).

A request that creates something (a reservation, a token) is readied first (its token fetched,
its pacer slot waited for, the stop checked) and only then written to the cleanup ledger and
sent, with nothing in between that can wait: so a hold and its ledger row exist only for a
request that went out, and a stop can never leave the user giving back a locker it never asked
for (which another worker of the same identity may hold).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import random
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Final

from load_process import HttpClient, LoadProcess, TokenUnavailable

from harness.api import OPERATIONS
from harness.assumptions import Assumed, read_status, record
from harness.ledger import ledger_holds
from harness.model import (
    CloseDoor,
    Command,
    IssueToken,
    LockerState,
    LockerStatus,
    OpenDoor,
    Release,
    Reserve,
    TokenClaim,
    TokenKind,
    apply,
)

__all__ = ["DELIVERY", "Conversation", "FlowStopped", "StepFailed"]

#: The end-to-end histogram of a delivery.
DELIVERY: Final = "delivery"
RESERVATION_S: Final = 300
TOKEN_S: Final = 900
CLIENT_INFO: Final = "locker-harness load"
#: Available lockers a delivery tries before it gives up for lack of one.
RESERVE_ATTEMPTS: Final = 3
#: Actions the cleanup of one locker may take (close, release twice, or a pickup, open and close).
CLEANUP_ACTIONS: Final = 6
#: The model's clock for predictions: durations are long and nothing expires during a run.
_NOW: Final = 0.0
_FOREVER: Final = float("inf")
_OK: Final = (200, 201)
_FREE: Final = frozenset({"available", "out_of_service"})
#: Right after a first drop-off's door opens, the other occupied_on timing's status.
_SWAP: Final = {LockerStatus.RENTED: LockerStatus.OCCUPIED, LockerStatus.OCCUPIED: LockerStatus.RENTED}
_RELEASABLE: Final = frozenset({"reserved", "rented", "declined"})

_list_lockers = OPERATIONS["listTowerLockers"]
_get_locker = OPERATIONS["getLocker"]
_reserve = OPERATIONS["reserveLocker"]
_dropoff_token = OPERATIONS["createDropoffToken"]
_pickup_token = OPERATIONS["createPickupToken"]
_release = OPERATIONS["releaseLocker"]
_list_locations = OPERATIONS["listLocations"]
_location_availability = OPERATIONS["getLocationAvailability"]
_tower_availability = OPERATIONS["getTowerAvailability"]


class StepFailed(Exception):
    """The flow cannot go on; the failure is already counted against its step."""


class FlowStopped(Exception):
    """The run is stopping: the flow ends before its next request and gives back what it holds."""


@dataclass(slots=True)
class Hold:
    """A locker a user holds, and the model's prediction of its state."""

    locker_id: int
    state: LockerState = field(default_factory=LockerState)
    token: tuple[str, str] | None = None  # payload, payload_auth of the last token
    #: ``LoadProcess.doubt`` of the locker when the hold began: a later lost answer about it voids judging.
    doubt: int = 0

    def predict(self, command: Command) -> LockerState:
        return apply(self.state, command, _NOW)


def _status(view: Any) -> str | None:
    """``status.name`` of a locker view, or ``None`` if the answer has none."""
    try:
        name = view["status"]["name"]
    except (KeyError, TypeError):
        return None
    return name if isinstance(name, str) else None


def _locker_of(answer: Any) -> Any:
    """The locker view inside an answer (``{"locker": {...}}``), or the answer itself."""
    return answer.get("locker", answer) if isinstance(answer, dict) else answer


def _detail(content: bytes | None) -> str:
    """Harbor's ``detail`` in a few words, for an example (never a header, never a whole body)."""
    try:
        detail = json.loads(content or b"").get("detail", "")
    except (ValueError, AttributeError):
        return "no detail"
    return str(detail)[:160] or "no detail"


class Conversation:
    """The requests of one user and their oracles; one flow at a time."""

    def __init__(self, client: HttpClient, process: LoadProcess, user_id: int) -> None:
        self.client = client
        self.process = process
        self.record = process.record
        self.user_id = user_id
        self.tower = process.options.tower_id
        self.doors = process.options.doors
        self.hold: Hold | None = None
        #: When the current delivery began (its intended start in the open model), while it runs.
        self.flow_origin_ns: int | None = None
        #: Every reservation and token written to the cleanup ledger before it is asked for, so a
        #: killed run leaves a record for `locker-harness cleanup`; one owner per user. Lazy: each
        #: answer's outcome rides with the next write (a commit is the ledger's whole cost).
        self.ledger = (
            ledger_holds(process.settings, run_id=process.options.run_id or None, lazy=True)
            if process.settings is not None
            else None
        )

    # -- one request ------------------------------------------------------------------------------

    def send(
        self,
        step: str,
        method: str,
        path: str,
        *,
        body: Any = None,
        origin_ns: int | None = None,
        conflict: bool = False,
        refusable: bool = False,
        stoppable: bool = True,
        headers: dict[str, str] | None = None,
        frees: bool = False,
    ) -> Any:
        """Send one request named ``step``: the parsed answer of a 2xx, ``None`` for an allowed 409.

        Anything else is counted (an ordinary error, or an oracle's violation) and raises
        ``StepFailed``. ``origin_ns`` is when the step was meant to start (open model): its
        latency counts from then, not from when it could be sent. ``refusable`` (the cleanup):
        any 4xx but 401 and 429 answers ``None`` and counts as a conflict. A ``stoppable`` request
        is not sent once the run stops (``FlowStopped``); the cleanup's requests are not stoppable.
        ``headers``: from ``ready``, for a caller that readied the step before writing its intent.
        ``frees``: the model predicts the held locker available once this lands, so the hold is let
        go as it is sent (``_let_go``).

        A request that may change the held locker (any but a look) is in ``LoadProcess.pending``
        from the moment the hold is let go, or it is sent, until its answer is read, with nothing
        in between that can wait: another user's cleanup never mistakes a state it brings for one
        left behind.
        """
        if headers is None:
            headers = self.ready(step, stoppable=stoppable)
        process, hold = self.process, self.hold
        locker_id = hold.locker_id if hold is not None else None
        started = time.perf_counter_ns()
        with (
            self._changing(hold if method != "GET" else None, frees=frees),
            self.client.request(method, path, name=step, json=body, headers=headers, catch_response=True) as response,
        ):
            counts = self.record.request(
                step, time.perf_counter_ns() - (started if origin_ns is None else min(origin_ns, started))
            )
            status: int = response.status_code
            refused = refusable and 400 <= status < 500 and status not in (401, 429)
            if status in _OK or (status == 409 and conflict) or refused:
                answer = None
                if status in _OK:
                    try:
                        answer = json.loads(response.content or b"null")
                    except ValueError:
                        response.failure("the answer is not JSON")
                        self.record.violation(counts, "unexpected_status", step, locker_id, f"{status}, not JSON")
                        raise StepFailed(step) from None
                else:
                    counts.conflicts += 1
                response.success()
                return answer
            if status >= 500:
                response.failure(f"{status} server error")
                self.record.lost_answer(counts, "server_error", f"{step}: {status}")
                self._doubt(locker_id)
            elif status == 0:
                reason = f"{step}: no answer ({type(getattr(response, 'error', None)).__name__})"
                response.failure(reason)
                self.record.lost_answer(counts, "answer_lost", reason)
                self._doubt(locker_id)
            elif status in (401, 429):
                if status == 401:
                    process.bearer.forget()
                response.failure(f"{status}")
                self.record.error(counts, f"{step}: {status}")
            else:
                # The flow only asks for what the model predicts will work: a refusal is a finding,
                # unless an answer about this locker was lost since the hold began.
                response.failure(f"{status} where the model predicts success")
                self.judge(
                    counts,
                    "unexpected_status",
                    step,
                    f"{status} where the model predicts success: {_detail(response.content)}",
                )
            raise StepFailed(step)

    @contextlib.contextmanager
    def _changing(self, hold: Hold | None, *, frees: bool) -> Iterator[None]:
        """A request that may change ``hold``'s locker is on its way (``None``: a look, or no hold):
        in ``LoadProcess.pending`` until its answer is read, the hold let go first if it ``frees``."""
        if hold is None:
            yield
            return
        pending = self.process.pending
        pending.begin(hold.locker_id, self.user_id)
        try:
            if frees:
                self._let_go(hold)
            yield
        finally:
            pending.end(hold.locker_id, self.user_id)

    def ready(self, step: str, *, stoppable: bool = True) -> dict[str, str]:
        """Everything ``step`` waits for before it is sent: the bearer token, the pacer's slot and,
        if ``stoppable``, the run's stop (``FlowStopped``); its headers.

        A token the endpoint did not give fails the step (``StepFailed``; the error is the token
        request's, counted where it was sent); a refused one (``TokenRefused``) ends the run and is
        left to the caller. Nothing of the step is sent here, and nothing here is the target's to
        answer.
        """
        process = self.process
        if stoppable:
            self.stop_point(step)
        try:
            headers = process.bearer.headers(self.client)
        except TokenUnavailable as error:
            # Raised past the flow, it would leave the locker held and unguarded (the next reserve
            # overwrites the hold): fail the step instead, so the flow gives back what it holds. The
            # failure is counted once, where it happened (the token request's own step), not again
            # against a step that sent nothing.
            raise StepFailed(step) from error
        pacer = process.pacer
        if pacer is not None:
            if stoppable:
                pacer.wait()
            else:
                pacer.wait_through_stop()
        if stoppable:
            self.stop_point(step)  # the stop may have come while a token was fetched or the pacer waited
        return headers

    def expect(self, step: str, answer: Any, predicted: LockerState, *, timing: LockerState | None = None) -> None:
        """The oracle: the locker's status in ``answer`` must be the model's prediction (or, right
        after a first drop-off's door opened, ``timing``: the other occupied_on)."""
        hold = self.hold
        assert hold is not None
        view = _locker_of(answer)
        status = self._read(view)
        if timing is not None and status in (predicted.status, timing.status):
            shown_state = predicted if status is predicted.status else timing
            seen = "open" if status is LockerStatus.OCCUPIED else "close"
            record("occupied_on", seen, f"the control plane's door open answered {status.wire_name} (load)")
            predicted = shown_state
        shown = status.wire_name if status is not None else _status(view)
        hold.state = predicted
        if status is not predicted.status:
            self.judge(
                self.record.step(step),
                "unexpected_status",
                step,
                f"{shown or 'no status'} after {step}; the model predicts {predicted.status.wire_name}",
            )
            raise StepFailed(step)

    def _read(self, view: Any) -> LockerStatus | None:
        """The status a locker view shows, read by name with the assumptions in effect."""
        try:
            name, status_id = view["status"]["name"], view["status"]["id"]
        except (KeyError, TypeError):
            return None
        if not isinstance(name, str) or not isinstance(status_id, int):
            return None
        settings = self.process.settings
        assumed = settings.assume if settings is not None else Assumed()
        return read_status(name, status_id, assumed, "", observe=False).status

    def judge(self, counts: Any, kind: str, step: str, detail: str, *, since: int | None = None) -> None:
        """A contradiction about the held locker: a violation if nothing about that locker was lost
        since ``since`` (the hold's own baseline by default), else an error saying why it is not one."""
        hold = self.hold
        locker_id = hold.locker_id if hold is not None else None
        baseline = since if since is not None else (hold.doubt if hold is not None else 0)
        if locker_id is not None and self.process.doubt.get(locker_id, 0) != baseline:
            self.record.error(counts, f"{step}: reconciled, not judged: an answer about its locker was lost")
            return
        self.record.violation(counts, kind, step, locker_id, detail)

    def _doubt(self, locker_id: int | None) -> None:
        """An answer about ``locker_id`` was lost: what any user knew of it may be wrong."""
        if locker_id is not None:
            self.process.doubt[locker_id] = self.process.doubt.get(locker_id, 0) + 1

    def stop_point(self, step: str) -> None:
        """Raise ``FlowStopped`` if the run is stopping: called before each step sends anything."""
        if self.process.stopping:
            raise FlowStopped(step)

    def _ledgered(self, call: Any, send: Any) -> Any:
        """``send()`` a create call with its row in the cleanup ledger written before and settled after."""
        ledger, hold = self.ledger, call.hold
        if ledger is None or hold is None:
            return send()
        ledger.before(hold)
        try:
            answer = send()
        except BaseException:
            ledger.unanswered(hold)  # a failure's outcome is unknown here: cleanup looks at the locker
            raise
        if answer is None:
            ledger.refused(hold, "409: another user holds it")
        else:
            ledger.after(hold, answer, None)
        return answer

    # -- the delivery -----------------------------------------------------------------------------

    def deliver(self, origin_ns: int | None = None) -> None:
        """One delivery: list, reserve, drop-off token, then the doors (open, close, pickup token,
        open, close) or, without doors, two releases. On any failure it gives back what it holds."""
        if self.process.stopping:
            return  # the run stopped before this delivery began: nothing to count, nothing held
        started = origin_ns if origin_ns is not None else time.perf_counter_ns()
        self.flow_origin_ns = started
        try:
            lockers = self.send("list_lockers", "GET", _list_lockers(self.tower).path, origin_ns=origin_ns)
            if not self._reserve_one(lockers):
                self.flow_origin_ns = None
                self.record.flow("no_locker")
                return
            self._token("dropoff_token", TokenKind.DROPOFF)
            if self.doors:
                self._door("open_for_dropoff", "open", TokenKind.DROPOFF)
                self._door("close_after_dropoff", "close")
                self._token("pickup_token", TokenKind.PICKUP)
                self._door("open_for_pickup", "open", TokenKind.PICKUP)
                self._door("close_after_pickup", "close")
            else:
                self._release("release")
                self._release("release_declined")
        except StepFailed:
            self.flow_origin_ns = None
            self.record.flow("aborted")
            self.give_back()
            return
        except FlowStopped:
            self.stop()
            return
        except Exception:
            # A refused token (the run is ending) or a harness bug ends the flow too; Locust logs
            # it, but the locker must not be lost with it.
            self.flow_origin_ns = None
            self.record.flow("aborted")
            self.give_back()
            raise
        if self.ledger is not None and self.hold is not None:
            self.ledger.returned(self.hold.locker_id)
        self.hold = self.flow_origin_ns = None
        self.record.flow("completed", DELIVERY, time.perf_counter_ns() - started)

    def _reserve_one(self, lockers: Any) -> bool:
        held = self.process.held
        try:
            share = self.process.share(view["id"] for view in lockers if isinstance(view["id"], int))
            free = [
                view["id"]
                for view in lockers
                if _status(view) == "available"
                and isinstance(view["id"], int)
                and view["id"] not in held
                and view["id"] in share
            ]
        except (KeyError, TypeError):
            self.record.violation(
                self.record.step("list_lockers"), "unexpected_status", "list_lockers", None, "not a list of lockers"
            )
            raise StepFailed("list_lockers") from None
        for locker_id in random.sample(free, min(len(free), RESERVE_ATTEMPTS)):
            if self.reserve("reserve", locker_id):
                return True
        return False

    def reserve(self, step: str, locker_id: int) -> bool:
        """Reserve ``locker_id``: True if this user now holds it, False on a conflict."""
        if self.hold is not None:
            # Overwriting a hold would lose its locker to this run for good (a flow that ended
            # without giving back is a harness bug): give it back before taking another.
            self.give_back()
        headers = self.ready(step)  # before the hold and the ledger row: a stop here sent nothing
        process = self.process
        hold = self.hold = Hold(locker_id, doubt=process.doubt.get(locker_id, 0))
        call = _reserve(self.tower, locker_id, RESERVATION_S)
        answer = self._ledgered(
            call, lambda: self.send(step, "POST", call.path, body=call.json, conflict=True, headers=headers)
        )
        # Nothing below waits: the reserve has just left ``pending`` and becomes a hold here, before
        # any other user (a cleanup that waited for it) runs again.
        if answer is None:
            self.hold = None
            return False
        held = process.held
        owner = held.get(locker_id)
        if owner is not None and owner != self.user_id:
            # Judged against the other user's hold: a lost answer since it began voids the finding.
            self.judge(
                self.record.step(step),
                "double_booking",
                step,
                "reserved while another user holds it",
                since=process.held_doubt.get(locker_id, 0),
            )
        held[locker_id] = self.user_id
        process.held_doubt[locker_id] = hold.doubt
        reservation_id = answer.get("id", 0) if isinstance(answer, dict) else 0
        self.expect(step, answer, hold.predict(Reserve(self.process.actor, RESERVATION_S, reservation_id)))
        return True

    def _token(self, step: str, kind: TokenKind) -> None:
        hold = self.hold
        assert hold is not None
        build = _dropoff_token if kind is TokenKind.DROPOFF else _pickup_token
        call = build(self.tower, hold.locker_id, TOKEN_S, CLIENT_INFO)
        headers = self.ready(step)  # before the ledger row: a row is written only for a token asked for
        answer = self._ledgered(call, lambda: self.send(step, "POST", call.path, body=call.json, headers=headers))
        self.expect(step, answer, hold.predict(IssueToken(self.process.actor, kind, TOKEN_S)))
        try:
            hold.token = (str(answer["payload"]), str(answer["payload_auth"]))
        except (KeyError, TypeError):
            self.record.violation(self.record.step(step), "unexpected_status", step, hold.locker_id, "no payload")
            raise StepFailed(step) from None

    def _door(self, step: str, action: str, kind: TokenKind | None = None) -> None:
        """Present the last token at the door, or close it: the tower's firmware via the control plane."""
        self.stop_point(step)
        hold = self.hold
        assert hold is not None
        path = f"/_sim/towers/{self.tower}/lockers/{hold.locker_id}/{action}"
        timing = None
        if action == "open":
            assert hold.token is not None and kind is not None
            claim = TokenClaim(hold.locker_id, kind, _FOREVER, hold.state.epoch, self.process.actor)
            first_dropoff = kind is TokenKind.DROPOFF and hold.state.status is LockerStatus.RENTED
            predicted = hold.predict(OpenDoor(claim, hold.locker_id))
            if first_dropoff and predicted.status in _SWAP:
                timing = dataclasses.replace(predicted, status=_SWAP[predicted.status])
            payload, payload_auth = hold.token
            answer = self.send(step, "POST", path, body={"payload": payload, "payload_auth": payload_auth})
        else:
            predicted = hold.predict(CloseDoor())
            # Free once this answers: no longer this user's to guard.
            answer = self.send(step, "POST", path, frees=predicted.status is LockerStatus.AVAILABLE)
        self.expect(step, answer, predicted, timing=timing)

    def _release(self, step: str) -> None:
        self.stop_point(step)
        hold = self.hold
        assert hold is not None
        predicted = hold.predict(Release(self.process.actor))
        call = _release(self.tower, hold.locker_id)
        answer = self.send(step, "POST", call.path, body=call.json, frees=predicted.status is LockerStatus.AVAILABLE)
        self.expect(step, answer, predicted)

    def _let_go(self, hold: Hold) -> None:
        """Forget a hold before the request that frees it, so a quick reserve by another user of
        the freed locker is never mistaken for a double booking (that request is in
        ``LoadProcess.pending`` by then: ``send``)."""
        if self.process.held.get(hold.locker_id) == self.user_id:
            del self.process.held[hold.locker_id]
            self.process.held_doubt.pop(hold.locker_id, None)

    # -- browsing and contention ------------------------------------------------------------------

    def browse(self) -> None:
        """A look around as an app would: locations, a location's and the tower's availability,
        the tower's lockers. Only a 5xx or a refusal is a finding here."""
        try:
            call = _list_locations()
            query = "&".join(f"{key}={value}" for key, value in (call.params or {}).items())
            locations = self.send("browse_locations", "GET", f"{call.path}?{query}")
            ids = [item["id"] for item in locations if isinstance(item, dict) and isinstance(item.get("id"), int)]
            if ids:
                self.send("browse_location_availability", "GET", _location_availability(random.choice(ids)).path)
            self.send("browse_tower_availability", "GET", _tower_availability(self.tower).path)
            self.send("browse_lockers", "GET", _list_lockers(self.tower).path)
        except (StepFailed, FlowStopped):
            return

    def contend(self, hold_s: float) -> None:
        """Many users, few lockers: reserve one of the hot lockers, hold it a moment, release it."""
        if self.process.stopping:
            return
        hot = self.hot_lockers()
        if not hot:
            return
        try:
            if not self.reserve("contend_reserve", random.choice(hot)):
                return
            self.process.stopping.pause(hold_s)
            self._release("contend_release")
            if self.ledger is not None and self.hold is not None:
                self.ledger.returned(self.hold.locker_id)
            self.hold = None
        except (StepFailed, FlowStopped):
            self.give_back()
        except Exception:
            self.give_back()  # a refused token or a harness bug: Locust logs it, the locker is given back
            raise

    def hot_lockers(self) -> list[int]:
        """The lockers this process's contention users fight for: the last in-service ones of its share."""
        process = self.process
        if not process.hot_lockers:
            try:
                lockers = self.send("contend_list", "GET", _list_lockers(self.tower).path)
            except (StepFailed, FlowStopped):
                return []
            listed = [view for view in lockers if isinstance(view, dict) and isinstance(view.get("id"), int)]
            share = process.share(view["id"] for view in listed)
            in_service = [view["id"] for view in listed if view["id"] in share and _status(view) != "out_of_service"]
            process.hot_lockers = in_service[-process.options.contention_lockers :]
        return process.hot_lockers

    # -- giving back ------------------------------------------------------------------------------

    def stop(self) -> None:
        """The user stops (``on_stop``, or its flow met the run's stop): a delivery in progress is
        counted as interrupted (in the open model, with its latency so far), and what it holds is
        given back."""
        origin = self.flow_origin_ns
        if origin is not None:
            self.flow_origin_ns = None
            open_model = self.process.arrivals is not None
            latency = time.perf_counter_ns() - origin if open_model else None
            self.record.flow("interrupted", DELIVERY if open_model else None, latency)
        self.give_back()
        if self.ledger is not None:
            self.ledger.flush()

    def give_back(self) -> None:
        """Return the held locker to available from whatever step the flow stopped at (bounded).

        The hold stays set until the cleanup is over, so a user stopped in the middle of it
        cleans up again from ``on_stop``.
        """
        hold = self.hold
        if hold is None:
            return
        self._let_go(hold)  # from here a reserve by another user is legitimate
        cleanup = _Cleanup(self, hold)
        try:
            cleanup.run()
        except Exception as error:  # cleanup must never crash a stopping user; the failure is counted
            why = "failed" if isinstance(error, StepFailed) else f"raised {type(error).__name__}"
            cleanup.why = f"{cleanup.last_step} {why}"
        self.hold = None
        if cleanup.released:
            if self.ledger is not None:
                self.ledger.returned(hold.locker_id, note="given back by the load user")
            self.record.cleaned(True)
        else:
            self.record.cleaned(False, f"locker {hold.locker_id}: {cleanup.why}")


class _Taken(Exception):
    """The locker became another user's while a cleanup readied its request: not this one's to change."""


class _Stale(Exception):
    """Another user sent a request that may change the locker since the cleanup looked: look again."""


class _Cleanup:
    """Drive one locker back to available: look at it, take the one action that moves it on, repeat.

    A user stopped mid-request leaves that request in flight, and the sandbox may serve it after
    the cleanup's first look; so every action is chosen from a fresh look, and a refusal only
    means "look again" (counted as a conflict of that cleanup step, never as an oracle's finding).

    The users of one identity look the same to the target: a state the cleanup sees may be another
    user's (a hold, or a request of theirs on the way). A look counts only if no other user of this
    process held the locker or had a request in flight that may change it, from before the look
    until the action is sent (``LoadProcess.pending``): otherwise the action, served after that
    user's next reserve (the target serves connections in no promised order), would undo a hold
    this cleanup never saw.
    """

    def __init__(self, conversation: Conversation, hold: Hold) -> None:
        self.conversation = conversation
        self.hold = hold
        self.released = False
        self.why = ""
        self.last_step = ""
        #: ``pending.started`` of the locker as of the last look, with this cleanup's own actions since.
        self.seen = -1

    def _send(self, step: str, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None) -> Any:
        self.last_step = step
        return self.conversation.send(step, method, path, body=body, refusable=True, stoppable=False, headers=headers)

    def _act(self, step: str, method: str, path: str, body: Any = None) -> Any:
        """A request that changes the locker, sent only if the last look still stands once the
        request is readied (a token fetch or the pacer may let other users run first): nobody else
        holds it, and no other user sent a request that may change it since (``_Stale``)."""
        headers = self.conversation.ready(step, stoppable=False)
        if self._taken():
            raise _Taken
        if self.conversation.process.pending.started(self.hold.locker_id) != self.seen:
            raise _Stale
        self.seen += 1  # this request's own, begun as it is sent
        return self._send(step, method, path, body, headers)

    def _taken(self) -> bool:
        """Whether another user of this process holds the locker now (theirs to give back)."""
        owner = self.conversation.process.held.get(self.hold.locker_id)
        return owner is not None and owner != self.conversation.user_id

    def _look(self) -> tuple[str, bool] | None:
        """The locker's status and whether its door is open; ``None`` if another user holds it now.

        The other users' requests that may change the locker are waited for first, and whether one
        made it theirs is asked after the wait (a reserve becomes a hold as it ends). A look during
        which another user held the locker or sent such a request is made again, so the status it
        returns is never one another user's hold or request brought."""
        conversation, locker_id = self.conversation, self.hold.locker_id
        process = conversation.process
        for _ in range(CLEANUP_ACTIONS):
            if self._taken():
                return None
            if process.pending.wait_for_others(locker_id, conversation.user_id, process.options.timeout_s):
                continue
            if self._taken():
                return None
            # Nothing of another user's is in flight, and nobody holds it: from here, a request
            # of theirs that may change the locker shows in ``started`` (a hold needs one too).
            seen = process.pending.started(locker_id)
            view = self._send("cleanup_status", "GET", _get_locker(conversation.tower, locker_id).path)
            door_open = False
            if conversation.doors:
                door = self._send("cleanup_door", "GET", f"/_sim/towers/{conversation.tower}/lockers/{locker_id}/door")
                door_open = bool(door.get("door_open")) if isinstance(door, dict) else False
            if self._taken():
                return None
            if process.pending.started(locker_id) == seen:
                self.seen = seen
                return str(_status(view)), door_open
        raise StepFailed("cleanup_status")  # other users' requests kept coming: this user cannot judge it

    def run(self) -> None:
        conversation, locker_id = self.conversation, self.hold.locker_id
        tower, doors = conversation.tower, conversation.doors
        base = f"/_sim/towers/{tower}/lockers/{locker_id}"
        status = "unknown"
        for _ in range(CLEANUP_ACTIONS):
            try:
                seen = self._look()
            except StepFailed:
                continue  # a lost answer (already counted): look again, within the bound
            if seen is None:
                self.released = True  # another user of this process holds it now: theirs to give back
                return
            status, door_open = seen
            try:
                if door_open:
                    self._act("cleanup_close", "POST", f"{base}/close")
                elif status in _FREE:
                    self.released = True
                    return
                elif status in _RELEASABLE:
                    call = _release(tower, locker_id)
                    self._act("cleanup_release", "POST", call.path, call.json)
                elif status == "occupied" and doors:
                    # An item is inside: take it out as a courier would (pickup token, open; close next).
                    call = _pickup_token(tower, locker_id, TOKEN_S, CLIENT_INFO)
                    token = self._act("cleanup_pickup_token", "POST", call.path, call.json)
                    if isinstance(token, dict):
                        presented = {"payload": token.get("payload"), "payload_auth": token.get("payload_auth")}
                        self._act("cleanup_open", "POST", f"{base}/open", presented)
                else:
                    self.why = f"it is {status} and this target has no doors to empty it"
                    return
            except _Taken:
                self.released = True  # given to another user of this process meanwhile: theirs now
                return
            except _Stale:
                continue  # another user's request may have changed it since the look: look again
            except StepFailed:
                continue  # its answer was lost (counted): the next look says whether it landed
        self.why = f"still {status} after {CLEANUP_ACTIONS} actions"
