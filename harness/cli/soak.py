"""``locker-harness soak``: many deliveries against ``local``, bounded, with the sandbox's memory watched.

Opt-in, never part of ``make test``: ``locker-harness soak --deliveries 10000``. The embedded
sandbox runs as its own process (``python -m harness.sim``) so its memory is its own; workers
(``--concurrency``, each with its own locker and client) run the seed's delivery back to back
through the flow, doors through the sandbox's control plane, every step checked against the
model. Meanwhile the sandbox's resident memory (RSS) is sampled.

It passes when every delivery completed with no oracle violation (a ``ProductDefect``), no answer
was a 5xx (retried or not), every locker is available at the end, and the sandbox's RSS at the end
is within ``--rss-margin`` (10 %) of its RSS after the warm-up (the first 10 % of deliveries: caches
and pools fill there). What the margin means: the sandbox's history is bounded
(``SimSettings.retention``); filling those bounds after the warm-up took 1.7 MiB (+2.6 % of a
~66 MiB process, flat from ~6,000 deliveries on) in a 10,000-delivery soak, while a leak of 1 KiB
per delivery breaks the margin within 10,000 deliveries (the one this gate found was 6.5 KiB).
Exit 0 green, 1 a violation, 3 memory grew past the margin, 4 could not run. Figures: deliveries,
wall time, deliveries/s, end-to-end p50/p95/p99, RSS start/middle/end, its growth over the second
half and per delivery after the warm-up, and its curve at every twentieth of the run.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from typing import Annotated, Final

import httpx
import psutil
import typer
from rich.table import Table

from harness.api import AsyncHarborClient
from harness.cli._common import Output, VerboseOption, run_command
from harness.config import Credentials, Secret, Settings, Target, load_settings
from harness.errors import ExitCode, HarnessError, InfrastructureError, ProductDefect, UsageError
from harness.flow import ControlPlaneOpener, run_delivery
from harness.ledger import ledger_holds, new_run_id
from harness.metrics import Latencies
from harness.redaction import redactor

__all__ = ["SoakFigures", "command"]

#: Lockers of the seeded tower a worker may own: 1401..1424 without the two out of service.
_LOCKERS: Final = tuple(n for n in range(1401, 1425) if n not in (1412, 1424))
_DELIVERY: Final = "delivery"
#: The first share of deliveries is warm-up: the RSS baseline is taken when it ends.
_WARM_UP: Final = 0.10


@dataclass
class SoakFigures:
    """What one soak measured; ``soak.json`` holds the same."""

    deliveries: int = 0
    failed: int = 0
    violations: list[str] = field(default_factory=list)
    infrastructure: list[str] = field(default_factory=list)
    server_errors: int = 0
    requests: int = 0
    wall_s: float = 0.0
    p50_ms: float = 0.0
    p95_ms: float = 0.0
    p99_ms: float = 0.0
    max_ms: float = 0.0
    rss_start_mib: float = 0.0
    rss_middle_mib: float = 0.0
    rss_end_mib: float = 0.0
    rss_peak_mib: float = 0.0
    rss_samples: int = 0
    #: Deliveries done when the RSS baseline (``rss_start_mib``) was read.
    rss_start_after: int = 0
    #: (deliveries done, RSS in MiB) at every twentieth of the run: the shape, not just three points.
    rss_curve_mib: list[tuple[int, float]] = field(default_factory=list)
    lockers_left_held: list[int] = field(default_factory=list)

    @property
    def per_s(self) -> float:
        return self.deliveries / self.wall_s if self.wall_s else 0.0

    @property
    def rss_growth(self) -> float:
        """RSS at the end over RSS after the warm-up, minus one."""
        return self.rss_end_mib / self.rss_start_mib - 1.0 if self.rss_start_mib else 0.0

    @property
    def rss_late_growth(self) -> float:
        """RSS at the end over RSS halfway, minus one: near zero once the retention bounds are full."""
        return self.rss_end_mib / self.rss_middle_mib - 1.0 if self.rss_middle_mib else 0.0

    @property
    def rss_bytes_per_delivery(self) -> float:
        """RSS growth after the warm-up, in bytes per delivery made since."""
        made = self.deliveries - self.rss_start_after
        return (self.rss_end_mib - self.rss_start_mib) * 2**20 / made if made > 0 and self.rss_start_mib else 0.0


class _CountingTransport(httpx.AsyncBaseTransport):
    """Counts every answer, and the 5xx among them, before the client's retries can hide one."""

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self._inner = inner
        self.requests = 0
        self.server_errors = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self._inner.handle_async_request(request)
        self.requests += 1
        if response.status_code >= 500:
            self.server_errors += 1
        return response

    async def aclose(self) -> None:
        await self._inner.aclose()


class _RssSampler:
    """Samples one process's RSS on a thread, every ``interval`` seconds, until stopped (bounded)."""

    def __init__(self, pid: int, interval: float, limit: int = 100_000) -> None:
        self._process = psutil.Process(pid)
        self._interval = interval
        self._limit = limit
        self._stop = threading.Event()
        self.samples: list[tuple[float, int]] = []
        self._thread = threading.Thread(target=self._run, name="soak-rss", daemon=True)

    def now(self) -> int:
        return int(self._process.memory_info().rss)

    def _run(self) -> None:
        while not self._stop.is_set() and len(self.samples) < self._limit:
            try:
                self.samples.append((time.monotonic(), self.now()))
            except psutil.Error:
                return
            self._stop.wait(self._interval)  # the sampling period, not a wait for state

    def __enter__(self) -> _RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


@contextmanager
def _sandbox_process() -> Iterator[tuple[str, Credentials, int]]:
    """The virtual sandbox as its own process: its URL, a throwaway identity, its pid."""
    from harness.sim import Identity, SandboxNotRunning, SimSettings, VirtualSandbox

    credentials = Credentials(f"soak-{secrets.token_hex(3)}", Secret(secrets.token_urlsafe(24)))
    redactor().register(credentials.client_secret)
    sandbox = VirtualSandbox(
        SimSettings(identities=(Identity(credentials.client_id, credentials.client_secret.reveal()),))
    )
    try:
        sandbox.start_subprocess()
    except SandboxNotRunning as exc:
        raise InfrastructureError(f"the virtual sandbox did not start: {exc}") from None
    try:
        yield sandbox.url, credentials, sandbox.pid
    finally:
        sandbox.stop()


class _Soak:
    """The workers and what they share: a countdown of deliveries, the figures, the latencies."""

    def __init__(self, settings: Settings, total: int, concurrency: int, out: Output, deadline: float) -> None:
        self.settings = settings
        self.total = total
        self.concurrency = concurrency
        self.out = out
        self.deadline = deadline
        self.started = 0
        self.figures = SoakFigures()
        self.latencies = Latencies()
        self.run_id = new_run_id()
        self.warm = asyncio.Event()
        self.half = asyncio.Event()
        self.transports: list[_CountingTransport] = []
        #: The sandbox's RSS in bytes now; set once the sampler runs.
        self.rss_now: Callable[[], int] | None = None

    def _take(self) -> bool:
        if self.started >= self.total or time.monotonic() >= self.deadline:
            return False
        self.started += 1
        return True

    async def worker(self, locker_id: int) -> None:
        assert self.settings.target.api_url is not None
        holds = ledger_holds(self.settings, run_id=self.run_id)
        figures = self.figures
        # One transport per client: closing a client closes its transport.
        api, control = _CountingTransport(httpx.AsyncHTTPTransport()), _CountingTransport(httpx.AsyncHTTPTransport())
        self.transports += [api, control]
        async with (
            AsyncHarborClient(self.settings, transport=api, holds=holds) as client,
            ControlPlaneOpener(self.settings.target.api_url, transport=control) as doors,
        ):
            while self._take():
                began = time.perf_counter_ns()
                try:
                    await run_delivery(
                        client, doors, tower_id=self.settings.tower(), locker_id=locker_id, listeners=[holds.listener]
                    )
                except ProductDefect as defect:
                    figures.failed += 1
                    figures.violations.append(f"locker {locker_id}: [{defect.check}] {defect}")
                    if len(figures.violations) >= 20:  # the run has shown what it needed to: stop early
                        self.deadline = 0.0
                    continue
                except HarnessError as error:
                    figures.failed += 1
                    figures.infrastructure.append(f"locker {locker_id}: {type(error).__name__}: {error}")
                    if len(figures.infrastructure) >= 20:
                        self.deadline = 0.0
                    continue
                self.latencies.record(_DELIVERY, time.perf_counter_ns() - began)
                figures.deliveries += 1
                done = figures.deliveries
                if done >= self.total * _WARM_UP:
                    self.warm.set()
                if done >= self.total / 2:
                    self.half.set()
                if done % max(self.total // 20, 1) == 0:
                    self.out.detail(f"  {done}/{self.total} deliveries")
                    if self.rss_now is not None:
                        figures.rss_curve_mib.append((done, round(self.rss_now() / 2**20, 1)))


async def _soak(
    settings: Settings,
    sandbox_pid: int,
    *,
    total: int,
    concurrency: int,
    sample_every: float,
    timeout: float,
    out: Output,
) -> SoakFigures:
    soak = _Soak(settings, total, concurrency, out, time.monotonic() + timeout)
    figures = soak.figures
    with _RssSampler(sandbox_pid, sample_every) as sampler:
        soak.rss_now = sampler.now

        async def mark() -> None:
            await soak.warm.wait()
            figures.rss_start_mib = sampler.now() / 2**20
            figures.rss_start_after = figures.deliveries
            await soak.half.wait()
            figures.rss_middle_mib = sampler.now() / 2**20

        marks = asyncio.create_task(mark())
        began = time.perf_counter()
        workers = [soak.worker(locker) for locker in _LOCKERS[:concurrency]]
        await asyncio.gather(*workers)
        figures.wall_s = time.perf_counter() - began
        figures.rss_end_mib = sampler.now() / 2**20
        marks.cancel()
        figures.rss_samples = len(sampler.samples)
        figures.rss_peak_mib = max((rss for _, rss in sampler.samples), default=0) / 2**20
    figures.requests = sum(t.requests for t in soak.transports)
    figures.server_errors = sum(t.server_errors for t in soak.transports)
    if figures.deliveries:
        summary = soak.latencies.summary(_DELIVERY)
        figures.p50_ms, figures.p95_ms, figures.p99_ms = summary.p50_ms, summary.p95_ms, summary.p99_ms
        figures.max_ms = summary.max_ms
    return figures


def _left_held(url: str) -> list[int]:
    from harness.sim import SimControl

    with SimControl(url) as control:
        return [
            locker["id"]
            for locker in control.state()["lockers"]
            if locker["status"] not in ("available", "out_of_service") or locker["door_open"]
        ]


def _table(figures: SoakFigures, margin: float) -> Table:
    table = Table(title="soak", title_justify="left")
    table.add_column("figure")
    table.add_column("value", justify="right")
    rows = [
        ("deliveries completed", f"{figures.deliveries}"),
        ("deliveries failed", f"{figures.failed}"),
        ("oracle violations", f"{len(figures.violations)}"),
        ("requests / 5xx answers", f"{figures.requests} / {figures.server_errors}"),
        ("wall time", f"{figures.wall_s:.1f} s"),
        ("deliveries per second", f"{figures.per_s:.1f}"),
        ("end to end p50 / p95 / p99", f"{figures.p50_ms:.1f} / {figures.p95_ms:.1f} / {figures.p99_ms:.1f} ms"),
        ("end to end max", f"{figures.max_ms:.1f} ms"),
        (
            "sandbox RSS start / middle / end",
            f"{figures.rss_start_mib:.1f} / {figures.rss_middle_mib:.1f} / {figures.rss_end_mib:.1f} MiB",
        ),
        ("sandbox RSS peak (samples)", f"{figures.rss_peak_mib:.1f} MiB ({figures.rss_samples})"),
        ("RSS growth after warm-up", f"{figures.rss_growth * 100:+.1f} % (margin {margin * 100:.0f} %)"),
        (
            "RSS growth: second half / per delivery",
            f"{figures.rss_late_growth * 100:+.1f} % / {figures.rss_bytes_per_delivery:+.0f} B",
        ),
        ("lockers left held", ", ".join(map(str, figures.lockers_left_held)) or "none"),
    ]
    for name, value in rows:
        table.add_row(name, value)
    return table


def command(
    deliveries: Annotated[
        int, typer.Option("--deliveries", "-n", help="Deliveries to make (bounded).", min=1, max=1_000_000)
    ] = 10_000,
    concurrency: Annotated[
        int, typer.Option("--concurrency", "-c", help="Workers, each with its own locker.", min=1, max=len(_LOCKERS))
    ] = 8,
    rss_margin: Annotated[
        float,
        typer.Option(
            "--rss-margin", help="Largest RSS growth after the warm-up, as a fraction (0.10 = 10 %).", min=0.0
        ),
    ] = 0.10,
    sample_every: Annotated[
        float, typer.Option("--sample-every", help="Seconds between RSS samples.", min=0.05, max=60.0)
    ] = 0.5,
    timeout: Annotated[
        float, typer.Option("--timeout", help="Seconds the soak may take at most.", min=1.0, max=86_400.0)
    ] = 3600.0,
    verbose: VerboseOption = False,
) -> None:
    """Make many deliveries against local and watch the sandbox's memory: violations, 5xx and RSS growth."""

    def body(out: Output) -> int:
        settings = load_settings({})
        if settings.target.kind.value != "local":
            raise UsageError("the soak runs against local only: it watches the sandbox process's memory")
        tower = settings.tower()
        with _sandbox_process() as (url, credentials, pid):
            target = Target.local().running_at(url)
            soak_settings = settings.with_target(target).with_credentials(credentials)
            out.say(f"soak: {deliveries} deliveries, {concurrency} workers, tower {tower}, sandbox pid {pid} at {url}")
            figures = asyncio.run(
                _soak(
                    soak_settings,
                    pid,
                    total=deliveries,
                    concurrency=concurrency,
                    sample_every=sample_every,
                    timeout=timeout,
                    out=out,
                )
            )
            figures.lockers_left_held = _left_held(url)
        out.print(_table(figures, rss_margin))
        report = settings.reports_dir / f"soak-{new_run_id()}.json"
        report.parent.mkdir(parents=True, exist_ok=True)
        summary = asdict(figures) | {
            "deliveries_per_s": figures.per_s,
            "rss_growth": figures.rss_growth,
            "rss_late_growth": figures.rss_late_growth,
            "rss_bytes_per_delivery": figures.rss_bytes_per_delivery,
            "rss_margin": rss_margin,
        }
        report.write_text(out.redactor.text(json.dumps(summary, indent=2)), encoding="utf-8")
        out.say(f"figures: {report}")
        for line in (figures.violations + figures.infrastructure)[:5]:
            out.say(f"  {line}")
        if figures.violations or figures.server_errors or figures.lockers_left_held:
            return ExitCode.DEFECT
        if figures.infrastructure or figures.deliveries < deliveries:
            return ExitCode.INFRASTRUCTURE
        if figures.rss_growth > rss_margin:
            return ExitCode.SLO_BREACH
        return ExitCode.OK

    run_command(body, verbose=verbose)
