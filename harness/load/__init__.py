"""Load: Locust drives the locker flow; the harness plans the run, gates it and reports it.

Locust runs only in child processes (``loadtests/locustfile.py``); nothing here imports it.
``LoadRecord`` is the one shape both sides share: the locustfile records into it, the harness
reads it back, merged across workers. The stage that runs all this within ``locker-harness run``
is ``harness.run.LoadStage``; the load benchmarks (``locker-harness bench``) load on first use.
"""

from typing import TYPE_CHECKING

from harness.load._abort import ABORT_MIN_REQUESTS, Abort, AbortWatch
from harness.load._locust import (
    DEFAULT_MASTER_PORT,
    LOCUSTFILE,
    STARTUP_S,
    STOP_GRACE_S,
    STOP_MAX_S,
    LocustFiles,
    LocustMaster,
    LocustOutcome,
    LocustProgress,
    LocustStats,
    LocustWorker,
    harness_arguments,
    locust_command,
    read_stats,
    read_step_stats,
    run_locust,
    run_worker,
    stop_timeout,
    worker_command,
)
from harness.load._plan import MAX_DURATION_S, SANDBOX_MAX_RPS, USER_KINDS, LoadPlan
from harness.load._record import (
    ALL_REQUESTS,
    FLOW_OUTCOMES,
    VIOLATION_KINDS,
    LoadRecord,
    StepCounts,
    Violation,
    read_record,
)
from harness.load._slo import EDGE_STEPS, KNOWN_STEPS, Gate, GateResult, SloGates, latency_limits
from harness.load._summary import LoadSummary, StepRow, Sweep
from harness.load._sweep import LOOK_ERRORS, HeldLocker, held_lockers, sweep_leftovers
from harness.load._windows import FaultClock, read_fault_clock

if TYPE_CHECKING:
    from harness.load._bench import BENCHMARKS, BenchOptions, Comparison, medians_table, run_benchmarks

__all__ = [
    "ABORT_MIN_REQUESTS",
    "ALL_REQUESTS",
    "BENCHMARKS",
    "DEFAULT_MASTER_PORT",
    "EDGE_STEPS",
    "FLOW_OUTCOMES",
    "KNOWN_STEPS",
    "LOCUSTFILE",
    "LOOK_ERRORS",
    "MAX_DURATION_S",
    "SANDBOX_MAX_RPS",
    "STARTUP_S",
    "STOP_GRACE_S",
    "STOP_MAX_S",
    "USER_KINDS",
    "VIOLATION_KINDS",
    "Abort",
    "AbortWatch",
    "BenchOptions",
    "Comparison",
    "FaultClock",
    "Gate",
    "GateResult",
    "HeldLocker",
    "LoadPlan",
    "LoadRecord",
    "LoadSummary",
    "LocustFiles",
    "LocustMaster",
    "LocustOutcome",
    "LocustProgress",
    "LocustStats",
    "LocustWorker",
    "SloGates",
    "StepCounts",
    "StepRow",
    "Sweep",
    "Violation",
    "harness_arguments",
    "held_lockers",
    "latency_limits",
    "locust_command",
    "medians_table",
    "read_fault_clock",
    "read_record",
    "read_stats",
    "read_step_stats",
    "run_benchmarks",
    "run_locust",
    "run_worker",
    "stop_timeout",
    "sweep_leftovers",
    "worker_command",
]

#: Names of the benchmarks' module (psutil, server processes): loaded when asked, so the Locust
#: processes, which import this package for ``LoadRecord``, stay light.
_BENCH: frozenset[str] = frozenset({"BENCHMARKS", "BenchOptions", "Comparison", "medians_table", "run_benchmarks"})


def __getattr__(name: str) -> object:
    if name in _BENCH:
        from harness.load import _bench

        return getattr(_bench, name)
    raise AttributeError(f"module 'harness.load' has no attribute {name!r}")
