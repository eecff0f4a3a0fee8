"""Abort gates while a load run goes (k6's ``abortOnFail``): Locust's live statistics, looked at as
the harness shows progress, against the gates marked ``:abort``.

Locust writes its statistics every second (its CSV: each request name, and every request
together), cumulative since the run began, with percentiles rounded to about two digits and
counted from each request's send (in the open model the final table counts from each arrival's
intended start, so it can only be worse). A gate is judged once its step has
``ABORT_MIN_REQUESTS`` requests: a percentile of a handful of requests is noise, not a breach.
The final gate table is still measured from the harness's own histograms once the users stopped.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

from harness.load._locust import ALL_NAMES, LocustProgress, LocustStats
from harness.load._slo import PERCENTILES, Gate

__all__ = ["ABORT_MIN_REQUESTS", "Abort", "AbortWatch"]

#: Requests a step needs before its abort gate is judged.
ABORT_MIN_REQUESTS: Final = 20


@dataclass(frozen=True, slots=True)
class Abort:
    """An abort gate breached while the run went: which, by how much, and when."""

    gate: Gate
    actual: float  # Locust's live value
    requests: int  # the requests it was measured over
    at: datetime  # wall clock (UTC)
    #: Seconds after the users started (``since``); until then, after the harness first saw requests.
    after_s: float

    def since(self, started_at: float) -> Abort:
        """This abort timed from ``started_at`` (epoch seconds: when Locust started the users)."""
        return dataclasses.replace(self, after_s=max(self.at.timestamp() - started_at, 0.0))

    def describe(self) -> str:
        """``aborted 4.2 s in (12:01:07 UTC): p99 312.00 ms > 250 ms over 840 requests``."""
        gate = self.gate
        return (
            f"aborted {self.after_s:.1f} s in ({self.at:%H:%M:%S} UTC): {gate.name} {gate.value_text(self.actual)} "
            f"> {gate.limit_text()} over {self.requests:,} requests (abort gate, Locust's live statistics)"
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "gate": self.gate.name,
            "limit": self.gate.limit,
            "unit": self.gate.unit,
            "actual": self.actual,
            "requests": self.requests,
            "after_s": round(self.after_s, 2),
            "at": self.at.isoformat(timespec="seconds"),
        }


class AbortWatch:
    """Checks the abort gates against each look at Locust's progress; remembers the first breach."""

    def __init__(self, gates: Iterable[Gate], *, min_requests: int = ABORT_MIN_REQUESTS) -> None:
        self.gates = [gate for gate in gates if gate.abort]
        self.min_requests = min_requests
        self.abort: Abort | None = None
        self._first_request: float | None = None

    def __bool__(self) -> bool:
        return bool(self.gates)

    def __call__(self, progress: LocustProgress) -> bool:
        """Whether the run must stop now (``run_locust``'s ``stop_when``)."""
        if self.abort is not None:
            return True
        if self._first_request is None and progress.requests:
            self._first_request = time.monotonic()
        for gate in self.gates:
            breach = self._breach(gate, progress.steps)
            if breach is not None:
                actual, requests = breach
                after = time.monotonic() - (self._first_request or time.monotonic())
                self.abort = Abort(gate, actual, requests, datetime.now(UTC), after)
                return True
        return False

    def _breach(self, gate: Gate, steps: Mapping[str, LocustStats]) -> tuple[float, int] | None:
        stats = steps.get(ALL_NAMES if gate.step is None else gate.step)
        if stats is None or stats.requests < self.min_requests:
            return None
        if gate.metric == "failure_ratio":
            actual = stats.failures / stats.requests
        elif gate.metric in PERCENTILES:
            actual = stats.percentile_ms(gate.metric)
        else:  # SloGates refuses an abort gate Locust cannot measure live
            return None
        return (actual, stats.requests) if actual > gate.limit else None
