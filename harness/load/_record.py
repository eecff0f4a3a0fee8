"""``LoadRecord``: what the load processes measured, in one shape both sides of the pipe share.

Each Locust process that runs users (the local runner, or each worker) keeps one record: every
request's latency in an HdrHistogram per step (nanoseconds, three significant digits), counts per
step, the in-flight oracles' violations, each flow's outcome and what the cleanup gave back, and
a timeline: requests, failures and latencies per interval of wall-clock time, per group of steps
(``STEP_GROUPS``), for the run's overview plot.
Workers send theirs to the master as one message when their users have stopped; the master (or
the local runner) merges them count by count and writes one JSON file the harness reads. The
same ``merge`` serves ``--processes N`` on one host and workers on other hosts.

This module is pure (``harness.metrics`` and the standard library): the locustfile imports it
under gevent, the harness imports it without Locust.
"""

from __future__ import annotations

import dataclasses
import functools
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from harness.metrics import Latencies, Timeline

__all__ = [
    "ALL_REQUESTS",
    "FLOW_OUTCOMES",
    "LOST_ANSWER_KINDS",
    "RECORD_SCHEMA",
    "STEP_GROUPS",
    "VIOLATION_KINDS",
    "LoadRecord",
    "StepCounts",
    "Violation",
    "read_record",
    "step_group",
]

RECORD_SCHEMA: Final = 1

#: The in-flight oracles: each is a product defect, and each is counted apart from ordinary errors.
VIOLATION_KINDS: Final = (
    "double_booking",  # a reserve succeeded on a locker the harness knows is held
    "unexpected_status",  # the locker's status after a step is not the one the model predicts
)
#: Answers that never came whole: errors, never an oracle's finding. The request may or may not
#: have landed, so what the user knew of its locker is in doubt until it looks again.
LOST_ANSWER_KINDS: Final = (
    "server_error",  # a 5xx, from any host of the target (the token endpoint's included)
    "answer_lost",  # no answer: a dropped connection, a timeout
)
#: How a flow ended. ``unserved``: an open-model arrival no user was free to start before the
#: run ended (its latency is recorded as a lower bound, so a stall at the end is not omitted).
FLOW_OUTCOMES: Final = ("completed", "aborted", "no_locker", "interrupted", "unserved")

#: The name of the histogram of every request together (``LoadRecord.all_requests``).
ALL_REQUESTS: Final = "all requests"
#: The timeline's groups, by a step's name: its prefix, else the delivery (the flow's own steps).
STEP_GROUPS: Final = (
    ("authenticate", "authenticate"),
    ("browse_", "browsing"),
    ("contend_", "contention"),
    ("cleanup_", "cleanup"),
    ("", "delivery"),
)
#: The timeline group of whole flows, end to end (``delivery (end to end)``).
_END_TO_END: Final = " (end to end)"


@functools.cache  # a handful of step names, asked once per request
def step_group(step: str) -> str:
    """The timeline group a step belongs to (``reserve`` -> ``delivery``, ``browse_lockers`` -> ``browsing``)."""
    return next(group for prefix, group in STEP_GROUPS if step.startswith(prefix))


#: Examples kept per record: enough to act on, bounded however long the run.
MAX_EXAMPLES: Final = 20
#: Distinct error reasons counted; the rest are counted under one "other" reason.
MAX_REASONS: Final = 50
_OTHER_REASON: Final = "other (too many distinct reasons)"


@dataclass(slots=True)
class StepCounts:
    """One step's requests and how they ended (a conflict is an expected 409, not a failure)."""

    requests: int = 0
    errors: int = 0  # every failure that is not an oracle's finding, lost answers included
    violations: int = 0
    conflicts: int = 0
    server_errors: int = 0  # of the errors: 5xx answers
    answers_lost: int = 0  # of the errors: no answer at all

    @property
    def failures(self) -> int:
        return self.errors + self.violations

    def add(self, other: StepCounts) -> None:
        self.requests += other.requests
        self.errors += other.errors
        self.violations += other.violations
        self.conflicts += other.conflicts
        self.server_errors += other.server_errors
        self.answers_lost += other.answers_lost


@dataclass(frozen=True, slots=True)
class Violation:
    """One oracle violation, with enough to find it again (the step, the locker, what was seen)."""

    kind: str
    step: str
    locker_id: int | None
    detail: str

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


class LoadRecord:
    """Latencies, counts, violations, flow outcomes and cleanup of one or more load processes."""

    def __init__(self) -> None:
        #: Per-step request latencies (open model: the first step of a flow from its intended start).
        self.latencies = Latencies()
        #: End-to-end latencies per flow kind (open model: from the flow's intended start).
        self.flow_latencies = Latencies()
        self.steps: dict[str, StepCounts] = {}
        self.violations: dict[str, int] = dict.fromkeys(VIOLATION_KINDS, 0)
        self.examples: list[Violation] = []
        self.errors: dict[str, int] = {}
        self.flows: dict[str, int] = dict.fromkeys(FLOW_OUTCOMES, 0)
        self.cleanup: dict[str, int] = {"released": 0, "failed": 0}
        self.cleanup_failures: list[str] = []
        #: How many Locust processes' records were merged into this one.
        self.processes = 1
        #: Requests, failures and latencies per interval of wall-clock time, per step group.
        self.timeline = Timeline()
        self._groups: dict[int, str] = {}  # id of a step's counts -> its group, for failures

    # -- recording (the hot path: a dict lookup and an HdrHistogram record each) ------------------

    def step(self, step: str) -> StepCounts:
        """The counts of ``step`` (created at zero)."""
        counts = self.steps.get(step)
        if counts is None:
            counts = self.steps[step] = StepCounts()
            self._groups[id(counts)] = step_group(step)
        return counts

    def request(self, step: str, latency_ns: int) -> StepCounts:
        """One request of ``step`` answered (or failed) after ``latency_ns``; its counts to add to."""
        self.latencies.record(step, latency_ns)
        self.timeline.record(step_group(step), latency_ns)
        counts = self.step(step)
        counts.requests += 1
        return counts

    def error(self, counts: StepCounts, reason: str) -> None:
        """An ordinary failure (a refusal the flow did not expect, a transport error)."""
        counts.errors += 1
        self._reason(reason, 1)
        self._failed(counts)

    def _failed(self, counts: StepCounts | None) -> None:
        group = self._groups.get(id(counts)) if counts is not None else None
        if group is not None:
            self.timeline.fail(group)

    def lost_answer(self, counts: StepCounts, kind: str, reason: str) -> None:
        """A request whose answer was lost (``LOST_ANSWER_KINDS``): an error of its own kind."""
        if kind == "server_error":
            counts.server_errors += 1
        elif kind == "answer_lost":
            counts.answers_lost += 1
        else:
            raise ValueError(f"not a lost answer: {kind!r}")
        self.error(counts, reason)

    def _reason(self, reason: str, count: int) -> None:
        if reason not in self.errors and len(self.errors) >= MAX_REASONS:
            reason = _OTHER_REASON
        self.errors[reason] = self.errors.get(reason, 0) + count

    def violation(self, counts: StepCounts | None, kind: str, step: str, locker_id: int | None, detail: str) -> None:
        """An oracle saw a product defect; ``counts`` is the step's, when a request carried it."""
        if kind not in self.violations:
            raise ValueError(f"not an oracle: {kind!r}")
        if counts is not None:
            counts.violations += 1
            self._failed(counts)
        self.violations[kind] += 1
        if len(self.examples) < MAX_EXAMPLES:
            self.examples.append(Violation(kind, step, locker_id, detail))

    def flow(self, outcome: str, name: str | None = None, latency_ns: int | None = None) -> None:
        """A flow ended with ``outcome``; its end-to-end latency under ``name`` if it has one."""
        self.flows[outcome] += 1
        if name is not None and latency_ns is not None:
            self.flow_latencies.record(name, latency_ns)
            self.timeline.record(name + _END_TO_END, latency_ns)

    def cleaned(self, ok: bool, failure: str = "") -> None:
        """A hold given back (``ok``) or not, with why not."""
        self.cleanup["released" if ok else "failed"] += 1
        if not ok and len(self.cleanup_failures) < MAX_EXAMPLES:
            self.cleanup_failures.append(failure)

    # -- totals ---------------------------------------------------------------------------------

    @property
    def requests(self) -> int:
        return sum(counts.requests for counts in self.steps.values())

    @property
    def failures(self) -> int:
        """Requests that failed: ordinary errors and oracle violations (conflicts excluded)."""
        return sum(counts.failures for counts in self.steps.values())

    @property
    def violation_count(self) -> int:
        return sum(self.violations.values())

    @property
    def server_errors(self) -> int:
        """5xx answers of every step (the token endpoint's included)."""
        return sum(counts.server_errors for counts in self.steps.values())

    @property
    def answers_lost(self) -> int:
        """Requests that got no answer at all."""
        return sum(counts.answers_lost for counts in self.steps.values())

    def all_requests(self) -> Latencies:
        """Every request step's histogram merged into one named ``all requests`` (exact)."""
        total = Latencies()
        histogram = total.histogram(ALL_REQUESTS)
        for name in self.latencies:
            histogram.add(self.latencies.histogram(name))
        return total

    # -- merging and the wire -------------------------------------------------------------------

    def merge(self, other: LoadRecord) -> None:
        """Add ``other`` into this record, count by count (histograms exactly)."""
        self.latencies.merge(other.latencies)
        self.flow_latencies.merge(other.flow_latencies)
        for step, counts in other.steps.items():
            self.step(step).add(counts)
        for kind, count in other.violations.items():
            self.violations[kind] = self.violations.get(kind, 0) + count
        self.examples.extend(other.examples[: max(MAX_EXAMPLES - len(self.examples), 0)])
        for reason, count in other.errors.items():
            self._reason(reason, count)
        for outcome, count in other.flows.items():
            self.flows[outcome] = self.flows.get(outcome, 0) + count
        for outcome, count in other.cleanup.items():
            self.cleanup[outcome] = self.cleanup.get(outcome, 0) + count
        self.cleanup_failures.extend(other.cleanup_failures[: max(MAX_EXAMPLES - len(self.cleanup_failures), 0)])
        self.processes += other.processes
        self.timeline.merge(other.timeline)

    @classmethod
    def merged(cls, records: Iterable[LoadRecord]) -> LoadRecord:
        """The sum of ``records``; of none, an empty record of zero processes."""
        total = cls()
        total.processes = 0
        for record in records:
            total.merge(record)
        return total

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict: histograms as HdrHistogram's compressed base64 strings."""
        return {
            "schema": RECORD_SCHEMA,
            "processes": self.processes,
            "latencies": self.latencies.encode(),
            "flow_latencies": self.flow_latencies.encode(),
            "steps": {step: dataclasses.asdict(counts) for step, counts in self.steps.items()},
            "violations": dict(self.violations),
            "examples": [example.as_dict() for example in self.examples],
            "errors": dict(self.errors),
            "flows": dict(self.flows),
            "cleanup": dict(self.cleanup),
            "cleanup_failures": list(self.cleanup_failures),
            "timeline": self.timeline.encode(),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> LoadRecord:
        """The record ``to_json`` wrote; ``ValueError`` if it is not one."""
        if not isinstance(data, Mapping) or data.get("schema") != RECORD_SCHEMA:
            raise ValueError(f"not a load record of schema {RECORD_SCHEMA}")
        try:
            record = cls()
            record.processes = int(data["processes"])
            record.latencies = Latencies.decode(_strings(data["latencies"]))
            record.flow_latencies = Latencies.decode(_strings(data["flow_latencies"]))
            record.steps = {str(step): StepCounts(**counts) for step, counts in data["steps"].items()}
            record.violations = {str(kind): int(count) for kind, count in data["violations"].items()}
            record.examples = [Violation(**example) for example in data["examples"]]
            record.errors = {str(reason): int(count) for reason, count in data["errors"].items()}
            record.flows = {str(outcome): int(count) for outcome, count in data["flows"].items()}
            record.cleanup = {str(outcome): int(count) for outcome, count in data["cleanup"].items()}
            record.cleanup_failures = [str(text) for text in data["cleanup_failures"]]
            if "timeline" in data:  # a record from before the timeline has none
                record.timeline = Timeline.decode(data["timeline"])
        except (KeyError, TypeError, AttributeError) as exc:
            raise ValueError(f"malformed load record: {type(exc).__name__}: {exc}") from None
        return record


def _strings(encoded: Any) -> dict[str, str]:
    if not isinstance(encoded, Mapping):
        raise TypeError("histograms must be a mapping of name to encoded histogram")
    return {str(name): str(blob) for name, blob in encoded.items()}


def read_record(path: Path) -> tuple[LoadRecord, dict[str, Any]]:
    """The merged record and the run facts the locustfile wrote; ``ValueError`` if unreadable."""
    document = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(document, dict) or not isinstance(document.get("run"), dict):
        raise ValueError(f"{path.name} is not a load record")
    return LoadRecord.from_json(document["record"]), document["run"]
