"""SLO gates: latency percentiles and failure ratios a load run must hold, per step and overall.

From ``[tool.locker-harness.slo]`` in ``pyproject.toml`` (``[slo]`` in ``locker-harness.toml``),
then ``--slo`` options, which win::

    [tool.locker-harness.slo]
    p99_ms = 250                # every request together
    failure_ratio = 0.01        # failed requests / requests (conflicts are not failures)
    [tool.locker-harness.slo.steps]
    reserve = { p95_ms = 50, p99_ms = 100 }
    delivery = { p99_ms = 2000, failure_ratio = 0.02 }    # whole deliveries, end to end

    --slo p99=250 --slo reserve.p95=50 --slo failure_ratio=0.01 --slo delivery.p99=2000

A gate that must hold *while* the run goes, as k6's ``abortOnFail``, ends in ``:abort``
(``--slo p99=250:abort``) or is named in ``abort`` (``abort = ["p99", "reserve.p95"]`` in the
``[slo]`` table): the run stops as soon as Locust's live statistics breach it (``harness.load``'s
``AbortWatch``), its users give back what they hold, and it exits 3, saying when. Only what Locust
measures live can abort: a percentile or the failure ratio, of every request or of one step.

Percentiles are p50, p90, p95, p99 and p999, in milliseconds. ``delivery.failure_ratio`` is
aborted deliveries over those that completed or aborted: one the run's stop interrupted, or that
found no free locker, did not fail. ``server_errors`` counts 5xx answers (the token endpoint's
included). A breached gate makes the run exit 3 (``ExitCode.SLO_BREACH``) and is named in the
summary. Oracle violations are not a gate: any is a product defect (exit 1); a 5xx or a lost
answer is never one. Without configuration, two gates hold: at most 1 % of requests fail, and no
request is answered with a 5xx (``--slo server_errors=N`` tolerates N).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from harness.config import Settings, file_table
from harness.errors import UsageError
from harness.load._record import step_group

if TYPE_CHECKING:
    from harness.report import LatencyLimit

__all__ = [
    "DEFAULT_FAILURE_RATIO",
    "DEFAULT_SERVER_ERRORS",
    "DELIVERY",
    "EDGE_STEPS",
    "KNOWN_STEPS",
    "PERCENTILES",
    "Gate",
    "GateResult",
    "SloGates",
    "latency_limits",
    "parse_gate",
]

#: Percentile names and the percentile each means.
PERCENTILES: Final = {"p50": 50.0, "p90": 90.0, "p95": 95.0, "p99": 99.0, "p999": 99.9}
DEFAULT_FAILURE_RATIO: Final = 0.01
#: 5xx answers a run may meet before it breaches: none, unless configured.
DEFAULT_SERVER_ERRORS: Final = 0
#: The name of a whole delivery, end to end: its latency histogram and its flow outcomes.
DELIVERY: Final = "delivery"
#: Every step the load users name their requests by, in flow order, and ``delivery`` (end to
#: end): a gate on any other name is a typo, refused before the run rather than never checked.
KNOWN_STEPS: Final = (
    "authenticate",
    "list_lockers",
    "reserve",
    "dropoff_token",
    "open_for_dropoff",
    "close_after_dropoff",
    "pickup_token",
    "open_for_pickup",
    "close_after_pickup",
    "release",
    "release_declined",
    "browse_locations",
    "browse_location_availability",
    "browse_tower_availability",
    "browse_lockers",
    "contend_list",
    "contend_reserve",
    "contend_release",
    "cleanup_status",
    "cleanup_door",
    "cleanup_close",
    "cleanup_release",
    "cleanup_pickup_token",
    "cleanup_open",
    DELIVERY,
)
#: Metrics that are not latencies: a ratio and a count.
_UNITLESS: Final = ("failure_ratio", "server_errors")
_METRICS: Final = (*PERCENTILES, *_UNITLESS)
#: Steps at a run's edges, not its load: each process's token and hot-locker listing at the start
#: (one sample each), and the users' cleanup of a delivery the stop interrupted (there or not as the
#: stop falls). Timed when taken, never compared between runs (``StageResult.incidental_steps``).
EDGE_STEPS: Final = frozenset({"authenticate", "contend_list"}) | frozenset(
    step for step in KNOWN_STEPS if step.startswith("cleanup_")
)


@dataclass(frozen=True, slots=True)
class Gate:
    """One threshold: ``metric`` of ``step`` (``None``: every request together) at most ``limit``;
    ``abort``: the run stops as soon as it is breached (k6's ``abortOnFail``)."""

    step: str | None
    metric: str  # a key of PERCENTILES, "failure_ratio" or "server_errors"
    limit: float
    abort: bool = False

    @property
    def name(self) -> str:
        """``reserve p99``, ``p99`` (overall), ``failure_ratio``."""
        return self.metric if self.step is None else f"{self.step} {self.metric}"

    @property
    def key(self) -> str:
        """The gate as ``--slo`` and ``abort`` spell it: ``reserve.p95``, ``p99``, ``failure_ratio``."""
        return self.metric if self.step is None else f"{self.step}.{self.metric}"

    @property
    def unit(self) -> str:
        return "" if self.metric in _UNITLESS else "ms"

    def limit_text(self) -> str:
        """The limit as the gate table shows it: ``250 ms``, ``0.01``, ``0``."""
        return f"{self.limit:g} ms" if self.unit == "ms" else f"{self.limit:g}"

    def value_text(self, value: float) -> str:
        """A measured value in the gate's unit, as precise as the gate needs."""
        if self.unit == "ms":
            return f"{value:.2f} ms"
        if self.metric == "server_errors":
            return f"{value:.0f}"
        return f"{value:.4f}"


@dataclass(frozen=True, slots=True)
class GateResult:
    gate: Gate
    actual: float | None  # None: the step was not measured in this run

    @property
    def breached(self) -> bool:
        return self.actual is not None and self.actual > self.gate.limit

    def describe(self) -> str:
        gate = self.gate
        if self.actual is None:
            return f"{gate.name}: not measured (no requests of that step in this run)"
        relation = ">" if self.breached else "<="
        return f"{gate.name} {gate.value_text(self.actual)} {relation} {gate.limit_text()}"

    def as_dict(self) -> dict[str, Any]:
        return {
            "gate": self.gate.name,
            "step": self.gate.step,
            "metric": self.gate.metric,
            "limit": self.gate.limit,
            "unit": self.gate.unit,
            "abort": self.gate.abort,
            "actual": self.actual,
            "breached": self.breached,
        }


class SloGates:
    """The gates of a run, at most one per (step, metric); later sources replace earlier ones."""

    def __init__(self, gates: Iterable[Gate] = ()) -> None:
        self._gates: dict[tuple[str | None, str], Gate] = {}
        for gate in gates:
            self.add(gate)

    def add(self, gate: Gate) -> None:
        if gate.metric not in _METRICS:
            raise UsageError(f"unknown SLO metric {gate.metric!r}; known: {', '.join(_METRICS)}")
        if gate.step is not None and gate.step not in KNOWN_STEPS:
            raise UsageError(f"unknown step {gate.step!r} in an SLO gate; steps: {', '.join(sorted(KNOWN_STEPS))}")
        if not math.isfinite(gate.limit) or gate.limit < 0:
            raise UsageError(f"SLO {gate.name} must be a number >= 0, not {gate.limit!r}")
        if gate.metric == "failure_ratio" and gate.limit > 1:
            raise UsageError(f"SLO {gate.name} is a ratio between 0 and 1, not {gate.limit:g}")
        if gate.abort and not _live(gate):
            raise UsageError(
                f"SLO {gate.key} cannot abort the run: Locust measures only percentiles and the failure "
                f"ratio while a run goes (of every request, or of a step but {DELIVERY}); gate it at the end instead"
            )
        self._gates[(gate.step, gate.metric)] = gate

    def __iter__(self) -> Any:
        return iter(self._gates.values())

    def __len__(self) -> int:
        return len(self._gates)

    @property
    def aborting(self) -> list[Gate]:
        """The gates that stop the run as soon as they are breached."""
        return [gate for gate in self._gates.values() if gate.abort]

    def abort_on(self, keys: Iterable[str], where: str) -> None:
        """Make the gates named by ``keys`` (``p99``, ``reserve.p95``) abort gates."""
        for key in keys:
            step, _, metric = str(key).strip().rpartition(".")
            gate = self._gates.get((step or None, _metric(metric)))
            if gate is None:
                known = ", ".join(g.key for g in self._gates.values())
                raise UsageError(f"abort names {key!r} in {where}, which is no gate; gates: {known}")
            self.add(dataclasses.replace(gate, abort=True))

    @classmethod
    def resolve(cls, settings: Settings, options: Sequence[str] = ()) -> SloGates:
        """The default failure-ratio and server-error gates, then ``[slo]`` of the configuration file,
        then ``--slo``."""
        gates = cls(
            [Gate(None, "failure_ratio", DEFAULT_FAILURE_RATIO), Gate(None, "server_errors", DEFAULT_SERVER_ERRORS)]
        )
        table, where = file_table(settings, "slo")
        abort = table.get("abort", [])
        if not isinstance(abort, list):
            raise UsageError(f'abort in {where} must be a list of gates, e.g. abort = ["p99", "reserve.p95"]')
        for gate in _from_table({key: value for key, value in table.items() if key != "abort"}, where):
            gates.add(gate)
        gates.abort_on(abort, where)
        for text in options:
            gates.add(parse_gate(text))
        return gates


def _live(gate: Gate) -> bool:
    """Whether Locust measures ``gate`` while the run goes (its percentiles and failures per request name)."""
    return gate.metric != "server_errors" and gate.step != DELIVERY


def parse_gate(text: str) -> Gate:
    """``p99=250``, ``reserve.p95=50``, ``failure_ratio=0.01``, ``reserve.failure_ratio=0.05`` or
    ``server_errors=3``; ``:abort`` after the limit makes it an abort gate (``p99=250:abort``)."""
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise UsageError(f"--slo {text!r}: expected [STEP.]METRIC=LIMIT, e.g. reserve.p99=100 or failure_ratio=0.01")
    limit, colon, flag = value.partition(":")
    if colon and flag.strip().lower() != "abort":
        raise UsageError(f"--slo {text!r}: the only suffix a limit takes is :abort, not :{flag.strip()}")
    step, _, metric = key.strip().rpartition(".")
    return Gate(step or None, _metric(metric), _number(limit, f"--slo {text!r}"), abort=bool(colon))


def _metric(key: str) -> str:
    """``p99_ms``, ``p99`` -> ``p99``; ``failure_ratio`` and ``server_errors`` as they are."""
    metric = key.strip().lower().removesuffix("_ms")
    if metric not in _METRICS:
        raise UsageError(
            f"unknown SLO metric {key!r}; known: {', '.join(f'{m}_ms' for m in PERCENTILES)}, {', '.join(_UNITLESS)}"
        )
    return metric


def _number(value: Any, where: str) -> float:
    if isinstance(value, bool):
        raise UsageError(f"{where}: the limit must be a number, not {value!r}")
    try:
        return float(value)
    except (TypeError, ValueError):
        raise UsageError(f"{where}: the limit must be a number, not {value!r}") from None


def _from_table(table: Mapping[str, Any], where: str) -> list[Gate]:
    gates: list[Gate] = []
    for key, value in table.items():
        if key == "steps":
            if not isinstance(value, Mapping):
                raise UsageError(f"steps in {where} must be a table of step = {{ p99_ms = ... }}")
            for step, limits in value.items():
                if not isinstance(limits, Mapping):
                    raise UsageError(f"steps.{step} in {where} must be a table like {{ p99_ms = 100 }}")
                gates += [Gate(step, _metric(metric), _number(limit, f"steps.{step}.{metric} in {where}"))
                          for metric, limit in limits.items()]  # fmt: skip
        else:
            gates.append(Gate(None, _metric(key), _number(value, f"{key} in {where}")))
    return gates


def latency_limits(results: Iterable[GateResult]) -> list[LatencyLimit]:
    """The latency gates as lines on the overview plot, each on its group's panel: an overall gate on
    every panel of requests (not a flow's end to end), a ``delivery`` gate on the delivery end to end, a
    step's on its group's."""
    # harness.report loads when the harness reports: the Locust processes import this package for LoadRecord.
    from harness.report import LatencyLimit

    limits = []
    for result in results:
        gate = result.gate
        if gate.metric not in PERCENTILES:
            continue  # a failure ratio is no latency
        if gate.step is None:
            group = None
        elif gate.step == DELIVERY:
            group = f"{DELIVERY} (end to end)"
        else:
            group = step_group(gate.step)
        limits.append(LatencyLimit(f"SLO {gate.name}", PERCENTILES[gate.metric], gate.limit, group))
    return limits
