"""Load: Locust drives the locker flow; the harness plans the run, gates it and reports it.

Locust runs only in child processes (``loadtests/locustfile.py``); nothing here imports it.
``LoadRecord`` is the one shape both sides share: the locustfile records into it, the harness
reads it back, merged across workers.
"""

from typing import TYPE_CHECKING

from harness.load._plan import SANDBOX_MAX_RPS, USER_KINDS, LoadPlan
from harness.load._record import ALL_REQUESTS, FLOW_OUTCOMES, VIOLATION_KINDS, LoadRecord, StepCounts, Violation
from harness.load._slo import KNOWN_STEPS, Gate, GateResult, SloGates
from harness.load._summary import LoadSummary, StepRow, Sweep

if TYPE_CHECKING:
    from harness.load._stage import LoadStage

__all__ = [
    "ALL_REQUESTS",
    "FLOW_OUTCOMES",
    "KNOWN_STEPS",
    "SANDBOX_MAX_RPS",
    "USER_KINDS",
    "VIOLATION_KINDS",
    "Gate",
    "GateResult",
    "LoadPlan",
    "LoadRecord",
    "LoadStage",
    "LoadSummary",
    "SloGates",
    "StepCounts",
    "StepRow",
    "Sweep",
    "Violation",
]


def __getattr__(name: str) -> object:
    # The stage pulls in the run orchestrator and the reports: load it only when asked, so the
    # Locust processes (which import this package for LoadRecord) stay light.
    if name == "LoadStage":
        from harness.load._stage import LoadStage

        return LoadStage
    raise AttributeError(f"module 'harness.load' has no attribute {name!r}")
