"""Locust users that speak the locker flow: deliveries, browsing and contention, with in-flight
oracles, an open-model arrival mode and HdrHistogram latencies merged across workers.

``locker-harness load`` runs this file as a child process (never inside pytest: Locust patches
the process with gevent) and passes every ``--harness-*`` option; it can also run by hand
against a running sandbox (credentials from the environment, never from the command line)::

    HARBOR_CLIENT_ID=demo-provider HARBOR_CLIENT_SECRET=demo-secret \\
        locust -f loadtests/locustfile.py --headless -u 10 -r 10 -t 60s \\
        --host http://127.0.0.1:8765 --harness-duration 30 --harness-result load.json

Users (weights from ``--harness-weights``; think times from ``--harness-think``):

- ``DeliveryUser``: list -> reserve -> drop-off token -> open -> door closed -> pickup token
  -> open -> door closed (doors through the sandbox's control plane), or, without doors
  (Harbor's sandbox), list -> reserve -> drop-off token -> release -> release;
- ``BrowsingUser``: locations, availability, the tower's lockers;
- ``ContentionUser``: many users reserving and releasing the same few lockers.

Closed model (``--harness-mode closed``): each user runs flows back to back with its think time,
and latencies count from each request's send. Open model (``--harness-mode open``): deliveries
arrive at ``--harness-rate`` per second whatever the answers take, each with an intended start,
and latencies count from it, so a stalled server shows in the percentiles. Each process records
its own ``LoadRecord``; workers send theirs to the master when their users have stopped, and the
master (or the only process) merges and writes ``--harness-result``.

The run ends after ``--harness-duration`` seconds: users are stopped and every one gives back
what it holds, also when the run is stopped early by SIGINT or SIGTERM. The stop is cooperative:
Locust gets a stop timeout (``--stop-timeout``, else three request timeouts), so a user in the
middle of a request is not killed but reads its answer, sees the stop before its next step, gives
back and ends. Only a user still busy when the timeout ends is killed (``on_stop`` then gives back
from a fresh look at the locker, and the harness's sweep checks what is left). With
``--harness-lifeline`` (the harness passes it) the run also ends so when standard input closes:
the harness that started Locust is gone, and nobody else would stop it.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import logging
import os
import random
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar, Final, TypeVar, cast

import gevent
import gevent.os
from load_flows import DELIVERY, Conversation
from load_process import GuardedClient, LoadOptions, LoadProcess, TokenRefused
from locust import FastHttpUser, between, constant, events, task
from locust.env import Environment
from locust.html import get_html_report
from locust.runners import STATE_STOPPED, MasterRunner, WorkerRunner

from harness.assumptions import write_log
from harness.config import DEFAULT_LOCAL_TOWER
from harness.errors import HarnessError
from harness.hosts import RequestRefused
from harness.load import LoadRecord

logger = logging.getLogger("locker-harness")

_RECORD_MESSAGE = "locker_harness_record"
_FATAL_MESSAGE = "locker_harness_fatal"
_user_ids = itertools.count(1)
#: Request timeouts a stopping user may take to finish its request and give its locker back.
_STOP_TIMEOUTS: Final = 3
#: Seconds a forked worker whose harness is gone waits for its master to end the run (the master
#: reads the same pipe) before it stops its own users and quits.
_MASTER_GRACE_S: Final = 5.0
_Listener = TypeVar("_Listener", bound=Callable[..., None])


def _listen(hook: Any) -> Callable[[_Listener], _Listener]:
    """``@events.x.add_listener``, typed (Locust's event hooks are not)."""

    def register(listener: _Listener) -> _Listener:
        hook.add_listener(listener)
        return listener

    return register


class _Run:
    """This process's part of the run (module state: Locust's events are module-level too)."""

    process: LoadProcess | None = None
    options: LoadOptions | None = None
    merged = LoadRecord.merged(())  # workers' records (the master), or none
    #: The workers whose records the master received: counted once each, also when a worker the
    #: master re-spawned after the stop (a stop that came while it was still spawning) sends twice.
    reporters: ClassVar[set[str]] = set()
    started = 0.0
    started_at = 0.0  # epoch seconds: when the users started (the reports time an abort from it)
    stopped = 0.0
    #: CPU seconds this process spent while its users ran (a run without workers): the client's cost.
    cpu_started: float | None = None
    cpu_s: float | None = None
    fatal: str | None = None
    finishing = False
    written = False


@_listen(events.init_command_line_parser)
def _arguments(parser: Any) -> None:
    group = parser.add_argument_group("locker-harness", "options `locker-harness load` passes")
    group.add_argument("--harness-tower", default=DEFAULT_LOCAL_TOWER, help="tower id (16 hex digits)")
    group.add_argument("--harness-mode", choices=["closed", "open"], default="closed", help="user model")
    group.add_argument("--harness-rate", type=float, default=1.0, help="open model: deliveries per second")
    group.add_argument("--harness-duration", type=float, default=10.0, help="seconds of load before stopping")
    group.add_argument(
        "--harness-weights", default="delivery=3,browsing=1,contention=1", help="user weights, name=int,..."
    )
    group.add_argument("--harness-think", default="0", help="think time between flows: SECONDS or MIN,MAX")
    group.add_argument(
        "--harness-doors", choices=["control-plane", "none"], default="control-plane", help="how doors open"
    )
    group.add_argument("--harness-contention-lockers", type=int, default=3, help="lockers contention users share")
    group.add_argument("--harness-max-rps", type=float, default=0.0, help="requests per second cap (0: none)")
    group.add_argument("--harness-timeout", type=float, default=10.0, help="seconds for one request")
    group.add_argument("--harness-result", default="", help="where the master writes the merged record (JSON)")
    group.add_argument("--harness-run-id", default="", help="the run id the cleanup ledger's rows are kept under")
    group.add_argument(
        "--harness-lifeline",
        action="store_true",
        help="stop the run when standard input closes (the process that started Locust is gone)",
    )


@_listen(events.init)
def _on_init(environment: Environment, **_: Any) -> None:
    parsed = environment.parsed_options
    if not environment.stop_timeout and parsed is not None:
        # Without a stop timeout Locust kills every user at once, wherever it is: one killed while
        # its request was on the wire cannot know whether it landed, and the request may land
        # after the user's cleanup looked at the locker. A distributed master sends this to workers.
        environment.stop_timeout = _STOP_TIMEOUTS * float(parsed.harness_timeout)
    runner = environment.runner
    if isinstance(runner, MasterRunner):
        runner.register_message(_RECORD_MESSAGE, _receive_record)
        runner.register_message(_FATAL_MESSAGE, _receive_fatal)
    if parsed is not None and getattr(parsed, "harness_lifeline", False):
        gevent.spawn(_watch_lifeline, environment)


def _receive_record(environment: Environment, msg: Any, **_: Any) -> None:
    _Run.merged.merge(LoadRecord.from_json(msg.data))
    _Run.reporters.add(str(msg.node_id))


def _receive_fatal(environment: Environment, msg: Any, **_: Any) -> None:
    _Run.fatal = _Run.fatal or str(msg.data.get("message"))
    gevent.spawn(_finish, environment)


# -- the run's life cycle -------------------------------------------------------------------------


def _options(environment: Environment) -> LoadOptions:
    runner = environment.runner
    parsed = environment.parsed_options
    assert parsed is not None
    if isinstance(runner, WorkerRunner | MasterRunner):
        workers, index = int(getattr(parsed, "expect_workers", 1) or 1), int(getattr(runner, "worker_index", 0))
    else:
        workers, index = 1, 0
    return LoadOptions.parse(parsed, workers=workers, worker_index=index)


def _configure_users(options: LoadOptions) -> None:
    """Weights, think times and timeouts: class attributes, set before any user is created."""
    low, high = options.think_s
    think = constant(low) if low == high else between(low, high)
    for user_class, name in ((DeliveryUser, "delivery"), (BrowsingUser, "browsing"), (ContentionUser, "contention")):
        user_class.weight = max(options.weights.get(name, 0), 1)
        user_class.wait_time = think
        user_class.network_timeout = options.timeout_s
        user_class.connection_timeout = options.timeout_s
    if options.mode == "open":
        DeliveryUser.wait_time = constant(0)  # arrivals pace themselves


@_listen(events.test_start)
def _on_test_start(environment: Environment, **_: Any) -> None:
    options = _Run.options = _options(environment)
    _configure_users(options)
    runner = environment.runner
    if not isinstance(runner, MasterRunner):
        try:
            assert environment.host is not None, "no --host"
            _Run.process = LoadProcess.start(options, environment.host)
        except (HarnessError, ValueError, AssertionError) as error:
            _fail(environment, f"cannot start the load users: {error}")
            return
    if not isinstance(runner, WorkerRunner | MasterRunner):
        _Run.cpu_started = time.process_time()
    if not isinstance(runner, WorkerRunner):
        _Run.started = time.monotonic()
        _Run.started_at = time.time()
        gevent.spawn_later(options.duration_s, _finish, environment)


def _watch_lifeline(environment: Environment) -> None:
    """Read standard input to its end, then end the run as at its duration's end.

    The harness holds the only writing end of this pipe, so it closes when the harness is gone,
    also when it was killed with no chance to stop Locust (SIGKILL, the OOM killer): without this
    the run would go on loading the target until its ``-t`` backstop. Forked workers read the same
    pipe; their master ends the run for them, and a worker whose master does not within
    ``_MASTER_GRACE_S`` (another host's, or gone too) quits by itself, its users giving back.
    """
    stdin = sys.stdin.fileno()
    with contextlib.suppress(OSError):  # a closed or unreadable stdin is a lifeline already cut
        gevent.os.make_nonblocking(stdin)
        while gevent.os.nb_read(stdin, 4096):  # nobody writes; b"" once the writer is gone
            pass
    runner = environment.runner
    if runner is None or _Run.finishing:
        return
    logger.warning("the process that started this Locust is gone: stopping the run")
    if isinstance(runner, WorkerRunner):
        gevent.sleep(_MASTER_GRACE_S)  # a worker its master quit has exited by then
        logger.warning("the master did not end the run: this worker stops its users and quits")
    _finish(environment)


def _fail(environment: Environment, message: str) -> None:
    """A problem no user can work around (credentials refused): stop the run and say why."""
    logger.error(message)
    runner = environment.runner
    if isinstance(runner, WorkerRunner):
        runner.send_message(_FATAL_MESSAGE, {"message": message})
    else:
        _Run.fatal = _Run.fatal or message
        gevent.spawn(_finish, environment)


def _finish(environment: Environment) -> None:
    """Stop the users (each gives back what it holds, workers report), then quit."""
    runner = environment.runner
    assert runner is not None
    if _Run.finishing:
        return
    _Run.finishing = True
    if runner.state != STATE_STOPPED:
        runner.stop()
    runner.quit()


@_listen(events.test_stopping)
def _on_test_stopping(environment: Environment, **_: Any) -> None:
    if not isinstance(environment.runner, WorkerRunner) and not _Run.stopped:
        _Run.stopped = time.monotonic()
        if _Run.cpu_started is not None:
            _Run.cpu_s = time.process_time() - _Run.cpu_started
    process = _Run.process
    if process is None:
        return
    # Every flow ends at its next step and gives back what it holds, its cleanup paced as the
    # run was: up to one request timeout before Locust's stop timeout, so the last paced request
    # is answered before a user still busy is killed (past that, cleanup requests go at once).
    grace_s = float(environment.stop_timeout or 0.0) - process.options.timeout_s
    process.stopping.set(grace_s=grace_s)
    if process.arrivals is not None:
        # Arrivals that were due but found no free user: recorded as at least this late, so a
        # stall at the very end of the run is not left out of the percentiles.
        now = time.perf_counter_ns()
        for intended in process.arrivals.close(now):
            process.record.flow("unserved", DELIVERY, now - intended)


@_listen(events.test_stop)
def _on_test_stop(environment: Environment, **_: Any) -> None:
    runner = environment.runner
    process = _Run.process
    if isinstance(runner, WorkerRunner) and process is not None:
        # Sent before the worker tells the master it stopped, so the master has every record
        # by the time its own stop returns.
        runner.send_message(_RECORD_MESSAGE, process.record.to_json())
        process.record = LoadRecord()
    if isinstance(runner, WorkerRunner):
        # Its users have all stopped by now. A worker sleeps the stop timeout after a stop before it
        # reads its next message, so the master's quit would wait that long and the worker outlive
        # the master; the next spawn message sets the timeout again.
        environment.stop_timeout = 0.0


@_listen(events.quitting)
def _on_quitting(environment: Environment, **_: Any) -> None:
    runner = environment.runner
    write_log()  # what this process's answers showed of the assumptions ($LOCKER_HARNESS_FINDINGS_DIR)
    if isinstance(runner, WorkerRunner) or runner is None:
        return
    if runner.state != STATE_STOPPED:
        runner.stop()  # stopped by a signal: users give back what they hold first
    _write_result(environment)
    _save_html(environment)


def _save_html(environment: Environment) -> None:
    """Locust writes its HTML report on a normal end and on SIGINT, not on SIGTERM (which is how
    the harness stops it early, because gevent turns a SIGINT into an exception in whichever
    user happens to run): write it here when Locust did not."""
    options = environment.parsed_options
    html_file = getattr(options, "html_file", None)
    if not html_file or Path(html_file).exists():
        return
    Path(html_file).parent.mkdir(parents=True, exist_ok=True)
    report = cast(Callable[..., str], get_html_report)  # untyped in Locust
    Path(html_file).write_text(report(environment, show_download_link=False), encoding="utf-8")


def _write_result(environment: Environment) -> None:
    options = _Run.options
    if _Run.written or options is None or not options.result_path:
        return
    _Run.written = True
    record = _Run.merged
    if _Run.process is not None:  # the local runner's own users
        record.merge(_Run.process.record)
    elif isinstance(environment.runner, MasterRunner):
        record.processes = len(_Run.reporters)  # processes, not messages
    stopped = _Run.stopped or time.monotonic()
    document = {
        "record": record.to_json(),
        "run": {
            "mode": options.mode,
            "rate": options.rate if options.mode == "open" else None,
            "duration_s": round(max(stopped - _Run.started, 0.0), 3) if _Run.started else 0.0,
            "started_at": round(_Run.started_at, 3) if _Run.started_at else None,
            "workers_expected": options.workers if isinstance(environment.runner, MasterRunner) else 0,
            "workers_reported": len(_Run.reporters),
            "fatal": _Run.fatal,
            "pid": os.getpid(),
            "client_cpu_s": None if _Run.cpu_s is None else round(_Run.cpu_s, 3),
        },
    }
    path = Path(options.result_path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(".tmp")
    temporary.write_text(json.dumps(document), encoding="utf-8")
    temporary.replace(path)  # the harness never reads half a file


# -- the users ------------------------------------------------------------------------------------


class LockerUser(FastHttpUser):
    """A user of the load run: one ``Conversation`` with Harbor's side, given back on stop."""

    abstract = True
    network_timeout = 10.0
    connection_timeout = 10.0

    def on_start(self) -> None:
        process = _Run.process
        if process is None:
            raise RuntimeError("the load process did not start (see the log)")
        assert process.settings is not None and self.host is not None
        client = GuardedClient(self.client, self.host, process.settings.wire_policy())
        self.conversation = Conversation(client, process, next(_user_ids))

    def on_stop(self) -> None:
        conversation: Conversation | None = getattr(self, "conversation", None)
        if conversation is not None:
            conversation.stop()  # normally nothing is left: the flow gave back when it saw the stop

    def run_flow(self, flow: Any) -> None:
        """Run one flow; a refused token ends the run for every user, so say it once and stop."""
        try:
            flow()
        except (TokenRefused, RequestRefused) as refused:
            _fail(self.environment, str(refused))
            # The run is ending: do not hammer the token endpoint until the stop comes.
            self.conversation.process.stopping.pause(self.network_timeout)


class DeliveryUser(LockerUser):
    """The delivery flow, back to back (closed model) or at the arrival rate (open model)."""

    weight = 3

    @task
    def deliver(self) -> None:
        conversation = self.conversation
        arrivals = conversation.process.arrivals
        if arrivals is None:
            self.run_flow(conversation.deliver)
            return
        intended = arrivals.claim()
        delay_ns = intended - time.perf_counter_ns()
        if conversation.process.stopping.pause(delay_ns / 1e9):
            return  # the run stopped before this arrival was due
        if not arrivals.closed:
            self.run_flow(lambda: conversation.deliver(intended))


class BrowsingUser(LockerUser):
    """An app looking around: locations, availability, the tower's lockers."""

    weight = 1

    @task
    def browse(self) -> None:
        self.run_flow(self.conversation.browse)


class ContentionUser(LockerUser):
    """Many users, few lockers: reserve and release the same hot lockers."""

    weight = 1

    @task
    def contend(self) -> None:
        self.run_flow(lambda: self.conversation.contend(hold_s=random.uniform(0.0, 0.05)))
