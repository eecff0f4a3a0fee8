"""Locust as a child process: its command line, its environment, progress while it runs, and a
bounded stop.

Locust always runs in a child process (``import locust`` patches the process with gevent), in
its own session so a Ctrl-C at the terminal reaches the harness only. The harness then stops it
with SIGTERM, which Locust handles in a greenlet of its own (a SIGINT would surface as an
exception inside whichever user runs at that instant); its users give back what they hold and
the master writes the record. Every wait is bounded: a Locust that does not stop is killed.

Locust's standard input is a pipe whose writing end only the harness holds (``--harness-lifeline``):
should the harness die without stopping it (SIGKILL, the OOM killer), the pipe closes and Locust
ends the run by itself, its users giving back, as the virtual sandbox does with
``--stop-when-stdin-closes``. Its ``-t`` backstop alone would let it load the target for the rest
of the run.

Locust gets a stop timeout (``--stop-timeout``): a stopping user finishes the request it has on
the wire and gives its locker back instead of being killed mid-request, which would leave it not
knowing whether that request landed.
"""

from __future__ import annotations

import contextlib
import csv
import math
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from harness.config import PROJECT_ROOT
from harness.errors import InfrastructureError
from harness.load._plan import LoadPlan
from harness.model import TowerId

__all__ = [
    "ALL_NAMES",
    "DEFAULT_MASTER_PORT",
    "LOCUSTFILE",
    "STARTUP_S",
    "STOP_GRACE_S",
    "STOP_MAX_S",
    "LocustFiles",
    "LocustMaster",
    "LocustOutcome",
    "LocustProgress",
    "LocustStats",
    "LocustWorker",
    "harness_arguments",
    "locust_command",
    "read_stats",
    "read_step_stats",
    "run_locust",
    "run_worker",
    "stop_timeout",
    "worker_command",
]

#: The harness's locustfile, in the checkout the harness runs from.
LOCUSTFILE: Final = PROJECT_ROOT / "loadtests" / "locustfile.py"
#: Seconds Locust may take to start (import, fork workers, connect them) before its run counts.
STARTUP_S: Final = 30.0
#: Seconds Locust may take to stop once asked: users give back their lockers, workers report.
STOP_GRACE_S: Final = 45.0
#: Request timeouts a stopping user may take to finish its request and give back (Locust's
#: ``--stop-timeout``), within the grace above with room for the workers' reports.
STOP_TIMEOUTS: Final = 3
_STOP_TIMEOUT_MAX_S: Final = STOP_GRACE_S - 15.0
#: The port a distributed master listens on for its workers unless told otherwise (Locust's own).
DEFAULT_MASTER_PORT: Final = 5557
#: The key of Locust's ``Aggregated`` row (every request together) in ``read_step_stats``.
ALL_NAMES: Final = "Aggregated"
#: Seconds a Locust that ignores SIGTERM's grace may take to die once killed.
_KILL_WAIT_S: Final = 10.0
#: The longest a stop may take (``_stop``: the grace after SIGTERM, then the kill).
STOP_MAX_S: Final = STOP_GRACE_S + _KILL_WAIT_S
_POLL_S: Final = 0.25


@dataclass(frozen=True, slots=True)
class LocustFiles:
    """Where one Locust run writes: its record, HTML, CSV (a prefix) and its output."""

    folder: Path

    @property
    def record(self) -> Path:
        return self.folder / "record.json"

    @property
    def html(self) -> Path:
        return self.folder / "locust.html"

    @property
    def csv_prefix(self) -> Path:
        return self.folder / "locust"

    @property
    def stats_csv(self) -> Path:
        return self.folder / "locust_stats.csv"

    @property
    def log(self) -> Path:
        return self.folder / "locust.log"


@dataclass(frozen=True, slots=True)
class LocustProgress:
    """What the harness shows while Locust runs (from Locust's own CSV, written every second)."""

    elapsed_s: float
    requests: int
    failures: int
    requests_per_s: float
    #: Every request name's row (``read_step_stats``): what an abort gate is checked against.
    steps: Mapping[str, LocustStats] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class LocustOutcome:
    returncode: int
    interrupted: bool
    elapsed_s: float
    #: The run was stopped early because ``stop_when`` said so (an abort gate breached).
    stopped_early: bool = False


@dataclass(frozen=True, slots=True)
class LocustMaster:
    """A distributed run's master: it runs no users, waits for ``workers`` Locust workers (started
    elsewhere with ``locker-harness load --worker``), hands them the plan and merges their records."""

    workers: int
    bind_host: str = "*"
    bind_port: int = DEFAULT_MASTER_PORT
    #: Seconds the master waits for every worker to connect before it gives up (could not test).
    wait_s: float = 60.0

    def arguments(self) -> list[str]:
        return [
            "--master",
            "--expect-workers", str(self.workers),
            "--expect-workers-max-wait", f"{self.wait_s:g}",
            "--master-bind-host", self.bind_host,
            "--master-bind-port", str(self.bind_port),
        ]  # fmt: skip


@dataclass(frozen=True, slots=True)
class LocustWorker:
    """A worker of a distributed run: where its master listens, and how many processes it forks."""

    master_host: str
    master_port: int = DEFAULT_MASTER_PORT
    processes: int = 1


def stop_timeout(timeout_s: float) -> int:
    """Locust's ``--stop-timeout`` (whole seconds) for users whose requests time out after ``timeout_s``."""
    return max(1, math.ceil(min(STOP_TIMEOUTS * timeout_s, _STOP_TIMEOUT_MAX_S)))


def locust_command(
    locustfile: Path,
    *,
    host: str,
    users: int,
    duration_s: float,
    files: LocustFiles,
    user_classes: Sequence[str] = (),
    processes: int = 1,
    harness_args: Sequence[str] = (),
    stop_timeout_s: int = int(_STOP_TIMEOUT_MAX_S),
    spawn_rate: float | None = None,
    master: LocustMaster | None = None,
) -> list[str]:
    """``python -m locust`` headless with HTML, CSV and a log; ``-t`` is only a backstop: the
    locustfile stops the run itself after ``--harness-duration`` and quits. ``spawn_rate``: users
    started per second (default: all of them in the first second, at most 100 a second);
    ``master``: the run's users live in workers on other hosts."""
    rate = spawn_rate if spawn_rate is not None else min(users, 100)
    command = [
        sys.executable, "-m", "locust",
        "-f", str(locustfile),
        "--headless",
        "--host", host,
        "-u", str(users),
        "-r", f"{rate:g}",
        "-t", f"{int(duration_s + STOP_GRACE_S)}s",
        "--stop-timeout", str(stop_timeout_s),
        "--only-summary",
        "--exit-code-on-error", "0",  # the harness decides the verdict from the record
        "--csv", str(files.csv_prefix),
        "--html", str(files.html),
        "--loglevel", "INFO",
        "--harness-duration", repr(duration_s),
        "--harness-result", str(files.record),
        "--harness-lifeline",
    ]  # fmt: skip
    if processes > 1:
        # Its own master and forked workers meet on a free loopback port: Locust's default (every
        # interface, port 5557) would let two runs on one machine take each other's workers.
        port = str(_free_loopback_port())
        command += ["--processes", str(processes), "--master-bind-host", "127.0.0.1",
                    "--master-bind-port", port, "--master-port", port]  # fmt: skip
    if master is not None:
        command += master.arguments()
    return [*command, *harness_args, *user_classes]


def _free_loopback_port() -> int:
    """A loopback port no one listens on now (the OS's choice, released for Locust to bind at once)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def worker_command(locustfile: Path, worker: LocustWorker) -> list[str]:
    """``python -m locust --worker``: the plan, the target's URL and the ``--harness-*`` options
    come from the master when it starts the run; credentials from this process's environment."""
    command = [
        sys.executable, "-m", "locust",
        "-f", str(locustfile),
        "--worker",
        "--master-host", worker.master_host,
        "--master-port", str(worker.master_port),
        "--loglevel", "INFO",
        "--harness-lifeline",
    ]  # fmt: skip
    if worker.processes > 1:
        command += ["--processes", str(worker.processes)]
    return command


def harness_arguments(plan: LoadPlan, tower_id: TowerId, *, doors: bool, timeout_s: float) -> list[str]:
    """The locustfile's ``--harness-*`` options for ``plan`` (duration and result file aside)."""
    weights = ",".join(f"{kind}={weight}" for kind, weight in plan.weights.items())
    low, high = plan.think_s
    args = [
        "--harness-tower", tower_id,
        "--harness-mode", plan.mode,
        "--harness-weights", weights,
        "--harness-think", f"{low!r},{high!r}",
        "--harness-doors", "control-plane" if doors else "none",
        "--harness-contention-lockers", str(plan.contention_lockers),
        "--harness-timeout", repr(timeout_s),
    ]  # fmt: skip
    if plan.rate is not None:
        args += ["--harness-rate", repr(plan.rate)]
    if plan.max_rps is not None:
        args += ["--harness-max-rps", repr(plan.max_rps)]
    return args


@dataclass(frozen=True, slots=True)
class LocustStats:
    """Locust's own aggregate of a run (its CSV): what a run without the harness's record can tell."""

    requests: int = 0
    failures: int = 0
    requests_per_s: float = 0.0
    p50_ms: float = 0.0
    p95_ms: float = 0.0
    p99_ms: float = 0.0
    p90_ms: float = 0.0
    p999_ms: float = 0.0

    def percentile_ms(self, name: str) -> float:
        """``p50``, ``p90``, ``p95``, ``p99`` or ``p999`` of this row."""
        return float(getattr(self, f"{name}_ms"))

    def add(self, other: LocustStats) -> LocustStats:
        """Two rows of one name (two methods) as one: counts summed, the higher percentiles kept."""
        return LocustStats(
            self.requests + other.requests,
            self.failures + other.failures,
            self.requests_per_s + other.requests_per_s,
            *(max(getattr(self, f), getattr(other, f)) for f in ("p50_ms", "p95_ms", "p99_ms", "p90_ms", "p999_ms")),
        )


def read_step_stats(files: LocustFiles) -> dict[str, LocustStats]:
    """Every row of Locust's stats CSV by request name (the steps), ``ALL_NAMES`` for every request
    together; percentiles as Locust rounds them (about two digits). Empty before the first write."""
    rows: dict[str, LocustStats] = {}
    try:
        with files.stats_csv.open(newline="", encoding="utf-8") as handle:
            for row in csv.DictReader(handle):
                name = row.get("Name") or ""
                stats = LocustStats(
                    requests=int(row.get("Request Count") or 0),
                    failures=int(row.get("Failure Count") or 0),
                    requests_per_s=float(row.get("Requests/s") or 0.0),
                    p50_ms=_number(row.get("50%")),
                    p95_ms=_number(row.get("95%")),
                    p99_ms=_number(row.get("99%")),
                    p90_ms=_number(row.get("90%")),
                    p999_ms=_number(row.get("99.9%")),
                )
                rows[name] = rows[name].add(stats) if name in rows else stats
    except (OSError, ValueError):
        return {}  # not written yet, or caught mid-write: the next read has it
    return rows


def read_stats(files: LocustFiles) -> LocustStats:
    """The ``Aggregated`` row of Locust's stats CSV (percentiles rounded by Locust: ~2 digits)."""
    return read_step_stats(files).get(ALL_NAMES, LocustStats())


def _number(text: str | None) -> float:
    try:
        return float(text or 0)
    except ValueError:  # "N/A" before the first request
        return 0.0


def _progress(files: LocustFiles, started: float) -> LocustProgress:
    steps = read_step_stats(files)
    stats = steps.get(ALL_NAMES, LocustStats())
    return LocustProgress(time.monotonic() - started, stats.requests, stats.failures, stats.requests_per_s, steps)


def run_locust(
    command: Sequence[str],
    *,
    env: Mapping[str, str],
    files: LocustFiles,
    duration_s: float,
    on_progress: Callable[[LocustProgress], None] | None = None,
    cwd: Path | None = None,
    finish_by: float | None = None,
    stop_when: Callable[[LocustProgress], bool] | None = None,
    startup_s: float = STARTUP_S,
) -> LocustOutcome:
    """Run Locust to its end, or until Ctrl-C (then stop it and wait, bounded).

    Returns how it ended; raises ``InfrastructureError`` if it would not stop in time. A Ctrl-C is
    reported as ``interrupted`` after Locust has stopped: the caller reads the record, then re-raises.
    ``finish_by`` (``time.monotonic()``): Locust is stopped early enough that even a stop that
    ends in a kill is over by then (a run's time budget). ``stop_when``: asked at each look at the
    progress; when it says so, Locust is stopped as at a Ctrl-C (its users give back what they
    hold, the master writes the record) and the outcome says it was stopped early. ``startup_s``:
    how long Locust may take before its run counts (a master waiting for its workers takes longer).
    """
    files.folder.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    deadline = started + startup_s + duration_s + STOP_GRACE_S
    if finish_by is not None:
        deadline = min(deadline, finish_by - STOP_MAX_S)
    with files.log.open("wb") as output:
        process = subprocess.Popen(
            list(command),
            env=dict(env),
            cwd=cwd,
            stdin=subprocess.PIPE,  # its lifeline: held open by this process only, closed when it dies
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        interrupted = stopped_early = False
        try:
            while process.poll() is None:
                if time.monotonic() > deadline:
                    _stop(process)
                    raise InfrastructureError(
                        f"Locust did not finish within {max(deadline - started, 0.0):.0f} s; see {files.log}"
                    )
                if on_progress is not None or stop_when is not None:
                    now = _progress(files, started)
                    if on_progress is not None:
                        on_progress(now)
                    if stop_when is not None and stop_when(now):
                        stopped_early = True
                        _stop(process)
                        break
                with contextlib.suppress(subprocess.TimeoutExpired):
                    process.wait(timeout=_POLL_S)
        except KeyboardInterrupt:
            interrupted = True
            _stop(process)
        finally:
            # An unexpected error above, or workers left behind by a master that ended: never
            # leave anything of Locust's session running.
            _stop(process)
    return LocustOutcome(process.returncode, interrupted, time.monotonic() - started, stopped_early)


def run_worker(
    command: Sequence[str],
    *,
    env: Mapping[str, str],
    echo: Callable[[str], None],
    max_s: float,
    cwd: Path | None = None,
) -> LocustOutcome:
    """Run a Locust worker until its master ends the run (or it gives up on the master), each line
    of its output handed to ``echo``; Ctrl-C stops it as a run is stopped. Bounded by ``max_s``:
    Locust's own timers end a worker whose master never comes (about 5 minutes) or went away (60 s
    without a heartbeat), and this is the bound on top of them."""
    started = time.monotonic()
    process = subprocess.Popen(
        list(command),
        env=dict(env),
        cwd=cwd,
        stdin=subprocess.PIPE,  # its lifeline (see the module's docstring)
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        text=True,
        encoding="utf-8",
        errors="replace",
        bufsize=1,
    )
    assert process.stdout is not None
    interrupted = over = False
    timer = threading.Timer(max_s, lambda: process.send_signal(signal.SIGTERM))
    timer.daemon = True
    timer.start()
    try:
        for line in process.stdout:  # ends when the worker (and every process it forked) closes its output
            echo(line.rstrip("\n"))
        process.wait()
    except KeyboardInterrupt:
        interrupted = True
    finally:
        timer.cancel()
        over = time.monotonic() - started >= max_s
        # The text pipe is closed with the process; whatever of the worker's session is left is stopped.
        _stop(process)
    if over and not interrupted:
        raise InfrastructureError(f"the Locust worker ran past {max_s:.0f} s and was stopped")
    return LocustOutcome(process.returncode, interrupted, time.monotonic() - started)


def _stop(process: subprocess.Popen[Any]) -> None:
    """SIGTERM (Locust stops its users, they give back their lockers), then SIGKILL if it hangs.
    A second Ctrl-C while waiting kills at once."""
    if process.poll() is not None:
        _kill_group(process)  # a forked worker that outlived its master
        _close_lifeline(process)
        return
    try:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=STOP_GRACE_S)
    except (subprocess.TimeoutExpired, KeyboardInterrupt):
        pass
    # Whatever of Locust's session is left (the master that would not stop, a worker it forked
    # that outlived it) is killed: nothing of a load run may go on loading the target.
    _kill_group(process)
    _close_lifeline(process)


def _close_lifeline(process: subprocess.Popen[Any]) -> None:
    """Close this end of Locust's stdin once it is over (each run would otherwise keep a pipe open)."""
    if process.stdin is not None:
        with contextlib.suppress(OSError):
            process.stdin.close()


def _kill_group(process: subprocess.Popen[Any]) -> None:
    """SIGKILL Locust and its forked workers (its own session's process group). The group is gone
    once its last process has; a reused id would belong to another session's leader."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=_KILL_WAIT_S)
