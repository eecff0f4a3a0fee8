"""The load benchmarks: three ratios, each measured in one command on loopback.

- **P1, the harness's client cost**: requests per second of the harness's ``DeliveryUser`` (oracles,
  model, histograms, cleanup) over a bare ``FastHttpUser`` sending the same requests
  (``benchmarks/bare_locustfile.py``), both against the virtual sandbox. Goal >= 0.9.
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

import json
import os
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

from harness.config import Settings
from harness.errors import InfrastructureError
from harness.load._locust import LocustFiles, harness_arguments, locust_command, read_stats, run_locust
from harness.load._plan import LoadPlan
from harness.load._record import ALL_REQUESTS
from harness.load._stage import LOCUSTFILE, read_record
from harness.run import PROJECT_ROOT, target_environment

__all__ = ["BENCHMARKS", "BenchOptions", "Comparison", "Sample", "run_benchmarks"]

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
            "met": self.met,
            "medians": {
                variant: {
                    name: round(self.median(variant, name), 3)
                    for name in ("requests_per_s", "p50_ms", "p95_ms", "p99_ms", "delivery_p99_ms")
                }
                for variant in (self.a, self.b)
            },
            "samples": [asdict(sample) for sample in self.samples],
        }


class _StaticServer:
    """``benchmarks/static_server.py`` in a child process, with the sandbox's identities."""

    def __init__(self, identities_json: str) -> None:
        env = {**os.environ, "HARBOR_SIM_IDENTITIES": identities_json}
        self.process = subprocess.Popen(
            [sys.executable, str(STATIC_SERVER)], env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL
        )
        lines: list[bytes] = []
        stdout = self.process.stdout
        assert stdout is not None
        reader = threading.Thread(target=lambda: lines.append(stdout.readline()), daemon=True)
        reader.start()
        reader.join(_START_TIMEOUT_S)
        self.url = lines[0].decode().strip() if lines else ""
        if not self.url.startswith("http://"):
            self.stop()
            raise InfrastructureError("the static-JSON server of benchmark P2 did not start")
        deadline = time.monotonic() + _START_TIMEOUT_S
        while time.monotonic() < deadline:
            try:
                httpx.get(f"{self.url}/api/v1/ready", timeout=1.0)
                return
            except httpx.TransportError:
                time.sleep(0.05)
        self.stop()
        raise InfrastructureError("the static-JSON server of benchmark P2 does not answer")

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
    def __init__(
        self, settings: Settings, control: Any, folder: Path, options: BenchOptions, say: Callable[[str], None]
    ) -> None:
        self.settings = settings
        self.control = control
        self.folder = folder
        self.options = options
        self.say = say
        self.env = {**os.environ, **target_environment(settings, seed=0)}
        self.env.pop("HARBOR_CONFIG", None)

    def fresh(self, *, stall: bool = False) -> None:
        self.control.reset()
        if stall:
            self.control.set_faults("stall", **STALL)

    def harness(self, name: str, round_: int, plan: LoadPlan) -> Sample:
        """One run of the harness's own users; latencies from its HdrHistograms."""
        url = self.settings.target.api_url
        assert url is not None
        files = LocustFiles(self.folder / f"{name}-r{round_}")
        command = locust_command(
            LOCUSTFILE,
            host=url,
            users=plan.users,
            duration_s=plan.duration_s,
            files=files,
            user_classes=plan.user_classes,
            harness_args=harness_arguments(plan, self.settings.tower(), doors=True, timeout_s=self.settings.timeout),
        )
        run_locust(command, env=self.env, files=files, duration_s=plan.duration_s)
        record, _ = read_record(files.record)
        stats = read_stats(files)
        total = record.all_requests()
        summary = total.summary(ALL_REQUESTS)
        delivery = record.flow_latencies
        sample = Sample(
            name, round_, record.requests, stats.requests_per_s, summary.p50_ms, summary.p95_ms, summary.p99_ms,
            delivery.percentile_ms("delivery", 99.0) if "delivery" in delivery else None,
        )  # fmt: skip
        if record.violation_count:
            raise InfrastructureError(f"benchmark run {name} round {round_} saw oracle violations: {record.violations}")
        self._report(sample)
        return sample

    def bare(self, name: str, round_: int, user: str, url: str) -> Sample:
        """One run of a bare user; latencies from Locust's own stats (rounded by Locust)."""
        seconds = self.options.seconds
        files = LocustFiles(self.folder / f"{name}-r{round_}")
        command = [
            sys.executable, "-m", "locust", "-f", str(BARE_LOCUSTFILE), "--headless", "--host", url,
            "-u", str(self.options.users), "-r", str(self.options.users), "-t", f"{seconds:g}s",
            "--only-summary", "--exit-code-on-error", "0", "--csv", str(files.csv_prefix), "--html", str(files.html),
            user,
        ]  # fmt: skip
        run_locust(command, env=self.env, files=files, duration_s=seconds)
        stats = read_stats(files)
        sample = Sample(name, round_, stats.requests, stats.requests_per_s, stats.p50_ms, stats.p95_ms, stats.p99_ms)
        self._report(sample)
        return sample

    def _report(self, sample: Sample) -> None:
        flow = f", delivery p99 {sample.delivery_p99_ms:.0f} ms" if sample.delivery_p99_ms is not None else ""
        self.say(
            f"  round {sample.round} {sample.variant}: {sample.requests_per_s:.0f} req/s, "
            f"p95 {sample.p95_ms:.1f} ms, p99 {sample.p99_ms:.1f} ms{flow}"
        )


def run_benchmarks(
    settings: Settings,
    control: Any,
    folder: Path,
    options: BenchOptions = BenchOptions(),
    say: Callable[[str], None] = print,
) -> list[Comparison]:
    """Run the chosen benchmarks against the virtual sandbox ``settings`` points at (``control`` is
    its control plane); every run's Locust files land under ``folder``, the figures in ``bench.json``."""
    url = settings.target.api_url
    assert url is not None
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
    static = _StaticServer(_identities(settings)) if any(c.key == "P2" for c in chosen) else None
    bench = _Bench(settings, control, folder, options, say)
    p1_plan = LoadPlan(users=options.users, duration_s=options.seconds, weights=_DELIVERY_ONLY)
    open_plan = LoadPlan(
        users=max(options.users, round(options.rate * 2)),
        rate=options.rate,
        duration_s=options.stall_seconds,
        weights=_DELIVERY_ONLY,
    )
    closed_plan = LoadPlan(users=options.closed_users, duration_s=options.stall_seconds, weights=_DELIVERY_ONLY)
    try:
        for round_ in range(1, options.rounds + 1):
            for comparison in chosen:
                say(f"{comparison.key} round {round_}/{options.rounds}: {comparison.title}")
                sides: tuple[Callable[[], Sample], Callable[[], Sample]]
                if comparison.key == "P1":
                    sides = (
                        partial(bench.harness, "harness", round_, p1_plan),
                        partial(bench.bare, "bare", round_, "BareDeliveryUser", url),
                    )
                elif comparison.key == "P2":
                    assert static is not None
                    sides = (
                        partial(bench.bare, "sandbox", round_, "ReserveTokenUser", url),
                        partial(bench.bare, "static", round_, "ReserveTokenUser", static.url),
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
        if static is not None:
            static.stop()
        control.reset()
    document = {
        "options": asdict(options),
        "machine": {"python": sys.version.split()[0], "cpus": os.cpu_count()},
        "comparisons": [comparison.as_dict() for comparison in chosen],
    }
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "bench.json").write_text(json.dumps(document, indent=2), encoding="utf-8")
    return chosen


def _identities(settings: Settings) -> str:
    """The sandbox's identity, for the static server: the same bearer tokens must work on both."""
    credentials = settings.credentials()
    return json.dumps([{"client_id": credentials.client_id, "client_secret": credentials.client_secret.reveal()}])


def medians_table(comparisons: Sequence[Comparison]) -> list[Mapping[str, str]]:
    """One row per comparison, for the CLI's table."""
    rows: list[Mapping[str, str]] = []
    for comparison in comparisons:
        a, b = comparison.a, comparison.b
        if comparison.metric == "requests_per_s":
            measured = f"{comparison.median(a):.0f} / {comparison.median(b):.0f} req/s"
        else:
            measured = f"{comparison.median(a):.0f} / {comparison.median(b):.0f} ms"
        rows.append(
            {
                "benchmark": f"{comparison.key} {comparison.title}",
                "median a / b": measured,
                "ratio": f"{comparison.ratio:.2f}",
                "goal": comparison.goal,
                "met": "yes" if comparison.met else "NO",
                "p95 a / b ms": f"{comparison.median(a, 'p95_ms'):.1f} / {comparison.median(b, 'p95_ms'):.1f}",
                "p99 a / b ms": f"{comparison.median(a, 'p99_ms'):.1f} / {comparison.median(b, 'p99_ms'):.1f}",
            }
        )
    return rows
