"""The load benchmarks: three ratios, each measured in one command on loopback.

- **P1, the harness's client cost**: requests per second of the harness's ``DeliveryUser`` (oracles,
  model, histograms, cleanup ledger) over a bare ``FastHttpUser`` sending the same requests
  (``benchmarks/bare_locustfile.py``), both against the virtual sandbox. Goal >= 0.9. Its companion,
  requests per client CPU-second (the Locust process's own CPU while its users ran), is the same
  cost seen without the noise of whatever else the machine runs.
- **P2, the sandbox's own cost**: requests per second of the virtual sandbox on reserve / drop-off
  token / release over the same server stack answering a static JSON
  (``benchmarks/static_server.py``), both driven by the same bare user. Goal >= 0.6.
- **P5, coordinated omission**: the sandbox stalls 1 s every 10 s; the p99 of a delivery, end to
  end, measured by the open model (arrivals at a fixed rate, latency from each intended start)
  and by the closed model (users back to back). Goal: the open model shows >= 0.5 s, the closed
  model hides it (< 0.5 s).

Machines are noisy: each round runs both sides of each comparison back to back, alternating which
goes first, and a comparison is the ratio of the medians over the rounds. Every run starts from a
reset sandbox (seeded world, no faults) and is a child Locust process like any load run.
"""

from __future__ import annotations

import dataclasses
import json
import os
import secrets
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, Final

import httpx
import psutil

from harness.config import DEFAULT_LOCAL_TOWER, PROJECT_ROOT, Credentials, Secret, Settings, Target, target_environment
from harness.errors import InfrastructureError
from harness.load._locust import LOCUSTFILE, LocustFiles, harness_arguments, locust_command, read_stats, run_locust
from harness.load._plan import LoadPlan
from harness.load._record import ALL_REQUESTS, read_record
from harness.redaction import redactor

__all__ = ["BENCHMARKS", "BenchOptions", "Comparison", "Sample", "medians_table", "run_benchmarks"]

BENCH_DIR: Final = PROJECT_ROOT / "benchmarks"
BARE_LOCUSTFILE: Final = BENCH_DIR / "bare_locustfile.py"
STATIC_SERVER: Final = BENCH_DIR / "static_server.py"
BENCHMARKS: Final = ("P1", "P2", "P5")
#: The stall of P5, as the issue states it: a 1 s freeze every 10 s.
STALL: Final = {"seconds": 1.0, "every": 10.0}
STALL_VISIBLE_MS: Final = 500.0
_DELIVERY_ONLY: Final = {"delivery": 1, "browsing": 0, "contention": 0}
_START_TIMEOUT_S: Final = 15.0


@dataclass(frozen=True, slots=True)
class BenchOptions:
    rounds: int = 3
    seconds: float = 5.0  # each P1 and P2 run
    stall_seconds: float = 12.0  # each P5 run: long enough for exactly one stall
    users: int = 10  # P1 and P2
    rate: float = 10.0  # P5 open model: deliveries per second
    closed_users: int = 4  # P5 closed model
    only: tuple[str, ...] = BENCHMARKS


@dataclass(frozen=True, slots=True)
class Sample:
    """One run of one side of a comparison."""

    variant: str
    round: int
    requests: int
    requests_per_s: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    delivery_p99_ms: float | None = None  # end to end, harness runs only
    #: Requests served per second of the server's own CPU: what the server costs, whatever else
    #: the machine is doing (requests per second swing with every other process on the cores).
    requests_per_server_cpu_s: float = 0.0
    #: Requests per second of the load generator's own CPU while its users ran: the client's cost.
    requests_per_client_cpu_s: float = 0.0


@dataclass
class Comparison:
    """Two variants measured alternately over the rounds; the figure is a ratio of medians."""

    key: str
    title: str
    a: str
    b: str
    metric: str  # "requests_per_s" or "delivery_p99_ms"
    goal: str
    samples: list[Sample] = field(default_factory=list)

    def median(self, variant: str, metric: str | None = None) -> float:
        values = [getattr(s, metric or self.metric) for s in self.samples if s.variant == variant]
        values = [value for value in values if value is not None]
        return statistics.median(values) if values else 0.0

    @property
    def ratio(self) -> float:
        b = self.median(self.b)
        return self.median(self.a) / b if b else 0.0

    @property
    def server_cpu_ratio(self) -> float:
        """The ratio of requests per server CPU-second (P2's noise-proof companion figure)."""
        b = self.median(self.b, "requests_per_server_cpu_s")
        return self.median(self.a, "requests_per_server_cpu_s") / b if b else 0.0

    @property
    def client_cpu_ratio(self) -> float:
        """The ratio of requests per client CPU-second (P1's noise-proof companion figure)."""
        b = self.median(self.b, "requests_per_client_cpu_s")
        return self.median(self.a, "requests_per_client_cpu_s") / b if b else 0.0

    @property
    def met(self) -> bool:
        if self.key == "P1":
            return self.ratio >= 0.9
        if self.key == "P2":
            return self.ratio >= 0.6
        return self.median(self.a) >= STALL_VISIBLE_MS > self.median(self.b)

    def as_dict(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "title": self.title,
            "a": self.a,
            "b": self.b,
            "metric": self.metric,
            "goal": self.goal,
            "ratio": round(self.ratio, 3),
            "server_cpu_ratio": round(self.server_cpu_ratio, 3),
            "client_cpu_ratio": round(self.client_cpu_ratio, 3),
            "met": self.met,
            "medians": {
                variant: {
                    name: round(self.median(variant, name), 3)
                    for name in (
                        "requests_per_s",
                        "requests_per_server_cpu_s",
                        "requests_per_client_cpu_s",
                        "p50_ms",
                        "p95_ms",
                        "p99_ms",
                        "delivery_p99_ms",
                    )
                }
                for variant in (self.a, self.b)
            },
            "samples": [asdict(sample) for sample in self.samples],
        }


class _Server:
    """A server in a child process that prints its URL first (``python -m harness.sim``, the static
    server): both sides of P2 start the same way, and each one's CPU time can be read."""

    def __init__(self, name: str, argv: Sequence[str], identities_json: str) -> None:
        self.name = name
        env = {**os.environ, "HARBOR_SIM_IDENTITIES": identities_json}
        self.process = subprocess.Popen(list(argv), env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        lines: list[bytes] = []
        stdout = self.process.stdout
        assert stdout is not None
        reader = threading.Thread(target=lambda: lines.append(stdout.readline()), daemon=True)
        reader.start()
        reader.join(_START_TIMEOUT_S)
        self.url = lines[0].decode().strip() if lines else ""
        if not self.url.startswith("http://"):
            self.stop()
            raise InfrastructureError(f"the {name} server of the benchmarks did not start")
        deadline = time.monotonic() + _START_TIMEOUT_S
        while time.monotonic() < deadline:
            try:
                httpx.get(f"{self.url}/api/v1/ready", timeout=1.0)  # any answer (401) means it serves
                return
            except httpx.TransportError:
                time.sleep(0.05)
        self.stop()
        raise InfrastructureError(f"the {name} server of the benchmarks does not answer")

    def cpu_s(self) -> float:
        """Seconds of CPU the server has used so far."""
        times = psutil.Process(self.process.pid).cpu_times()
        return float(times.user + times.system)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)
        if self.process.stdout is not None:
            self.process.stdout.close()


class _Bench:
    """The runs of one ``run_benchmarks``: the sandbox (and static) servers, their settings, the runs."""

    def __init__(self, settings: Settings, folder: Path, options: BenchOptions, say: Callable[[str], None]) -> None:
        secret = Secret(secrets.token_urlsafe(24))
        redactor().register(secret)
        credentials = Credentials(f"harness-bench-{secrets.token_hex(3)}", secret)
        self.identities = json.dumps([{"client_id": credentials.client_id, "client_secret": secret.reveal()}])
        self.folder = folder
        self.options = options
        self.say = say
        self.sandbox = _Server("sandbox", [sys.executable, "-m", "harness.sim", "--port", "0"], self.identities)
        self.servers = [self.sandbox]
        from harness.sim import SimControl

        self.control = SimControl(self.sandbox.url)
        target = Target.local().running_at(self.sandbox.url)
        # The seeded tower, whatever the configuration names: the benchmarks run on their own sandbox.
        bound = settings.with_target(target).with_credentials(credentials)
        self.settings = dataclasses.replace(bound, tower_id=DEFAULT_LOCAL_TOWER)
        self.env = {**os.environ, **target_environment(self.settings, seed=0)}
        self.env.pop("HARBOR_CONFIG", None)

    def static_server(self) -> _Server:
        """The same stack answering a static JSON (P2), started on first use."""
        for server in self.servers:
            if server.name == "static":
                return server
        server = _Server("static", [sys.executable, str(STATIC_SERVER)], self.identities)
        self.servers.append(server)
        return server

    def close(self) -> None:
        self.control.close()
        for server in self.servers:
            server.stop()

    def fresh(self, *, stall: bool = False) -> None:
        """The seeded world again, no faults (or the P5 stall, which starts counting now)."""
        self.control.reset()
        if stall:
            self.control.set_faults("stall", **STALL)

    def harness(self, name: str, round_: int, plan: LoadPlan) -> Sample:
        """One run of the harness's own users on the sandbox; latencies from its HdrHistograms."""
        files = LocustFiles(self.folder / f"{name}-r{round_}")
        command = locust_command(
            LOCUSTFILE,
            host=self.sandbox.url,
            users=plan.users,
            duration_s=plan.duration_s,
            files=files,
            user_classes=plan.user_classes,
            harness_args=harness_arguments(plan, self.settings.tower(), doors=True, timeout_s=self.settings.timeout),
        )
        cpu = self.sandbox.cpu_s()
        run_locust(command, env=self.env, files=files, duration_s=plan.duration_s)
        cpu = self.sandbox.cpu_s() - cpu
        record, facts = read_record(files.record)
        client_cpu = float(facts.get("client_cpu_s") or 0.0)
        if record.violation_count:
            raise InfrastructureError(f"benchmark run {name} round {round_} saw oracle violations: {record.violations}")
        stats = read_stats(files)
        overall = record.all_requests().summary(ALL_REQUESTS)
        flows = record.flow_latencies
        return self._report(
            Sample(
                name,
                round_,
                record.requests,
                stats.requests_per_s,
                overall.p50_ms,
                overall.p95_ms,
                overall.p99_ms,
                delivery_p99_ms=flows.percentile_ms("delivery", 99.0) if "delivery" in flows else None,
                requests_per_server_cpu_s=record.requests / cpu if cpu > 0 else 0.0,
                requests_per_client_cpu_s=record.requests / client_cpu if client_cpu > 0 else 0.0,
            )
        )

    def bare(self, name: str, round_: int, user: str, server: _Server) -> Sample:
        """One run of a bare user against ``server``; latencies from Locust's own (rounded) stats."""
        seconds = self.options.seconds
        files = LocustFiles(self.folder / f"{name}-r{round_}")
        command = [
            sys.executable, "-m", "locust", "-f", str(BARE_LOCUSTFILE), "--headless", "--host", server.url,
            "-u", str(self.options.users), "-r", str(self.options.users), "-t", f"{seconds:g}s",
            "--only-summary", "--exit-code-on-error", "0", "--csv", str(files.csv_prefix), "--html", str(files.html),
            user,
        ]  # fmt: skip
        cpu_file = files.folder / "client_cpu.json"
        cpu = server.cpu_s()
        run_locust(command, env={**self.env, "LOCKER_HARNESS_CPU_FILE": str(cpu_file)}, files=files, duration_s=seconds)
        cpu = server.cpu_s() - cpu
        stats = read_stats(files)
        client_cpu = _client_cpu_s(cpu_file)
        return self._report(
            Sample(
                name,
                round_,
                stats.requests,
                stats.requests_per_s,
                stats.p50_ms,
                stats.p95_ms,
                stats.p99_ms,
                requests_per_server_cpu_s=stats.requests / cpu if cpu > 0 else 0.0,
                requests_per_client_cpu_s=stats.requests / client_cpu if client_cpu > 0 else 0.0,
            )
        )

    def _report(self, sample: Sample) -> Sample:
        flow = f", delivery p99 {sample.delivery_p99_ms:.0f} ms" if sample.delivery_p99_ms is not None else ""
        self.say(
            f"  round {sample.round} {sample.variant}: {sample.requests_per_s:.0f} req/s "
            f"({sample.requests_per_server_cpu_s:.0f} per server CPU-second, "
            f"{sample.requests_per_client_cpu_s:.0f} per client CPU-second), "
            f"p95 {sample.p95_ms:.1f} ms, p99 {sample.p99_ms:.1f} ms{flow}"
        )
        return sample


def _client_cpu_s(path: Path) -> float:
    """The CPU seconds a bare Locust run wrote for its users' time (0 if it wrote none)."""
    try:
        return float(json.loads(path.read_text(encoding="utf-8"))["cpu_s"])
    except (OSError, ValueError, KeyError, TypeError):
        return 0.0


def run_benchmarks(
    settings: Settings,
    folder: Path,
    options: BenchOptions = BenchOptions(),
    say: Callable[[str], None] = print,
) -> list[Comparison]:
    """Run the chosen benchmarks on loopback against virtual sandboxes of their own (``settings``
    gives the rest: the tower, timeouts); every run's files land under ``folder``, the figures in
    ``folder/bench.json``."""
    comparisons = [
        Comparison("P1", "harness delivery user vs bare FastHttpUser", "harness", "bare", "requests_per_s", ">= 0.9"),
        Comparison(
            "P2", "sandbox reserve/token vs same stack, static JSON", "sandbox", "static", "requests_per_s", ">= 0.6"
        ),
        Comparison(
            "P5",
            "stall 1 s every 10 s: delivery p99, open vs closed model",
            "open",
            "closed",
            "delivery_p99_ms",
            "open >= 500 ms, closed < 500 ms",
        ),
    ]
    chosen = [comparison for comparison in comparisons if comparison.key in options.only]
    p1_plan = LoadPlan(users=options.users, duration_s=options.seconds, weights=_DELIVERY_ONLY)
    open_plan = LoadPlan(
        users=max(options.users, round(options.rate * 2)),
        rate=options.rate,
        duration_s=options.stall_seconds,
        weights=_DELIVERY_ONLY,
    )
    closed_plan = LoadPlan(users=options.closed_users, duration_s=options.stall_seconds, weights=_DELIVERY_ONLY)
    bench = _Bench(settings, folder, options, say)
    try:
        for round_ in range(1, options.rounds + 1):
            for comparison in chosen:
                say(f"{comparison.key} round {round_}/{options.rounds}: {comparison.title}")
                sides: tuple[Callable[[], Sample], Callable[[], Sample]]
                if comparison.key == "P1":
                    sides = (
                        partial(bench.harness, "harness", round_, p1_plan),
                        partial(bench.bare, "bare", round_, "BareDeliveryUser", bench.sandbox),
                    )
                elif comparison.key == "P2":
                    sides = (
                        partial(bench.bare, "sandbox", round_, "ReserveTokenUser", bench.sandbox),
                        partial(bench.bare, "static", round_, "ReserveTokenUser", bench.static_server()),
                    )
                else:
                    sides = (
                        partial(bench.harness, "open", round_, open_plan),
                        partial(bench.harness, "closed", round_, closed_plan),
                    )
                # Both sides back to back from a reset sandbox, the order swapped every other round.
                for run in sides if round_ % 2 else sides[::-1]:
                    bench.fresh(stall=comparison.key == "P5")
                    comparison.samples.append(run())
    finally:
        bench.close()
    document = {
        "options": asdict(options),
        "machine": {"python": sys.version.split()[0], "cpus": os.cpu_count(), "load_average": os.getloadavg()},
        "comparisons": [comparison.as_dict() for comparison in chosen],
    }
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "bench.json").write_text(json.dumps(document, indent=2), encoding="utf-8")
    return chosen


def medians_table(comparisons: Sequence[Comparison]) -> list[Mapping[str, str]]:
    """One row per comparison, for the CLI's table."""
    rows: list[Mapping[str, str]] = []
    for comparison in comparisons:
        a, b = comparison.a, comparison.b
        unit = "req/s" if comparison.metric == "requests_per_s" else "ms"
        cpu = ""
        if comparison.key == "P1":
            cpu = f" (per client CPU-s: {comparison.client_cpu_ratio:.2f})"
        elif comparison.key == "P2":
            cpu = f" (per server CPU-s: {comparison.server_cpu_ratio:.2f})"
        rows.append(
            {
                "benchmark": f"{comparison.key} {comparison.title}",
                "median a / b": f"{comparison.median(a):.0f} / {comparison.median(b):.0f} {unit}",
                "ratio": f"{comparison.ratio:.2f}{cpu}",
                "goal": comparison.goal,
                "met": "yes" if comparison.met else "NO",
                "p95 a / b ms": f"{comparison.median(a, 'p95_ms'):.1f} / {comparison.median(b, 'p95_ms'):.1f}",
                "p99 a / b ms": f"{comparison.median(a, 'p99_ms'):.1f} / {comparison.median(b, 'p99_ms'):.1f}",
            }
        )
    return rows
