"""The soak: many deliveries against ``local``, bounded, with the sandbox's memory watched.

``locker-harness soak`` runs it; opt-in, never part of ``make test``. The embedded sandbox runs
as its own process (``python -m harness.sim``) so its memory is its own; workers
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
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Final

import httpx
import psutil

from harness.api import AsyncHarborClient, tls_context
from harness.config import Settings
from harness.errors import ExitCode, HarnessError, ProductDefect
from harness.flow import ControlPlaneOpener, run_delivery
from harness.ledger import ledger_holds, new_run_id
from harness.metrics import Latencies
from harness.redaction import Redactor
from harness.stopping import stop_exit_code
from harness.targets import LocalTarget

__all__ = ["SOAK_LOCKERS", "SoakFigures", "soak", "soak_verdict", "write_soak_figures"]

#: Lockers of the seeded tower a worker may own: 1401..1424 without the two out of service.
SOAK_LOCKERS: Final = tuple(n for n in range(1401, 1425) if n not in (1412, 1424))
_DELIVERY: Final = "delivery"
#: The first share of deliveries is warm-up: the RSS baseline is taken when it ends.
_WARM_UP: Final = 0.10
#: Seconds the workers of a stopped soak may take to give back what they hold (one delivery's
#: give-back is bounded by the flow's own cleanup timeout; they run side by side).
_GIVE_BACK_S: Final = 30.0


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
    #: The soak was stopped (Ctrl-C, SIGTERM) before its deliveries were done: the figures so far.
    interrupted: bool = False

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


class _Soak:
    """The workers and what they share: a countdown of deliveries, the figures, the latencies."""

    def __init__(
        self, settings: Settings, total: int, concurrency: int, detail: Callable[[str], None], deadline: float
    ) -> None:
        self.settings = settings
        self.total = total
        self.concurrency = concurrency
        self.detail = detail
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
        api, control = (
            _CountingTransport(httpx.AsyncHTTPTransport(verify=tls_context())),
            _CountingTransport(httpx.AsyncHTTPTransport(verify=tls_context())),
        )
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
                    self.detail(f"  {done}/{self.total} deliveries")
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
    detail: Callable[[str], None],
) -> SoakFigures:
    soak = _Soak(settings, total, concurrency, detail, time.monotonic() + timeout)
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
        workers = [asyncio.create_task(soak.worker(locker)) for locker in SOAK_LOCKERS[:concurrency]]
        try:
            await asyncio.gather(*workers)
        except asyncio.CancelledError:
            # A stop (Ctrl-C, SIGTERM: asyncio cancels this task, and the gather every worker). Each
            # worker's delivery gives back what it holds as it is cancelled; the gather ends as the
            # first worker does, so wait for the others (bounded): asyncio.run would cancel their
            # give-backs half-way. The figures so far are the soak's evidence.
            figures.interrupted = True
            await asyncio.wait(workers, timeout=_GIVE_BACK_S)
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


def soak(
    local: LocalTarget,
    *,
    deliveries: int,
    concurrency: int,
    sample_every: float,
    timeout: float,
    detail: Callable[[str], None] = lambda _line: None,
) -> SoakFigures:
    """``deliveries`` deliveries by ``concurrency`` workers against ``local`` (an embedded sandbox run
    as its own process), its RSS sampled every ``sample_every`` seconds, within ``timeout`` seconds;
    what was measured, and the lockers left held at the end. ``detail`` hears progress lines."""
    if local.in_process:
        raise ValueError("the soak watches the sandbox process's memory: start it as its own process")
    figures = asyncio.run(
        _soak(
            local.settings,
            local.sandbox.pid,
            total=deliveries,
            concurrency=concurrency,
            sample_every=sample_every,
            timeout=timeout,
            detail=detail,
        )
    )
    figures.lockers_left_held = _left_held(local.url)
    return figures


def write_soak_figures(figures: SoakFigures, reports_dir: Path, *, rss_margin: float, redactor: Redactor) -> Path:
    """``soak-<run-id>.json`` under ``reports_dir``: the figures, the ratios derived from them, the margin."""
    report = reports_dir / f"soak-{new_run_id()}.json"
    report.parent.mkdir(parents=True, exist_ok=True)
    summary = asdict(figures) | {
        "deliveries_per_s": figures.per_s,
        "rss_growth": figures.rss_growth,
        "rss_late_growth": figures.rss_late_growth,
        "rss_bytes_per_delivery": figures.rss_bytes_per_delivery,
        "rss_margin": rss_margin,
    }
    report.write_text(redactor.text(json.dumps(summary, indent=2)), encoding="utf-8")
    return report


def soak_verdict(figures: SoakFigures, *, asked: int, rss_margin: float) -> ExitCode:
    """130/143 a soak that was stopped; 1 a violation, a 5xx or a locker left held; 4 a delivery could
    not be made; 3 memory grew past the margin; else 0."""
    if figures.interrupted:
        return stop_exit_code()
    if figures.violations or figures.server_errors or figures.lockers_left_held:
        return ExitCode.DEFECT
    if figures.infrastructure or figures.deliveries < asked:
        return ExitCode.INFRASTRUCTURE
    if figures.rss_growth > rss_margin:
        return ExitCode.SLO_BREACH
    return ExitCode.OK
