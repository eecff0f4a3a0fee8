"""Fault profiles as the middleware applies them; ``/_sim`` is never faulted."""

from __future__ import annotations

import time

import httpx
import pytest

from harness.sim import ControlError, SimControl, VirtualSandbox

from .sandbox_parties import TOKEN_PATH, TOWER, Party

LOCKERS = f"/api/v1/towers/{TOWER}/lockers"


def test_http_5xx_for_the_next_n_requests(demo: Party, control: SimControl) -> None:
    """``http_5xx`` with ``count=2`` fails exactly the next two requests, then serves again."""
    control.set_faults("http_5xx", count=2, status=502)
    assert [demo.http.get(LOCKERS).status_code for _ in range(3)] == [502, 502, 200]


def test_http_5xx_fraction_is_seeded(demo: Party, control: SimControl) -> None:
    """A fraction fails about that share of requests, and the same after a reset (seeded RNG)."""

    def run() -> list[int]:
        control.set_faults("http_5xx", fraction=0.5)
        return [demo.http.get(LOCKERS).status_code for _ in range(40)]

    first = run()
    control.reset()
    assert run() == first
    assert 5 < first.count(503) < 35


def test_rate_limit_answers_429_with_retry_after(demo: Party, control: SimControl) -> None:
    """``rate_limit`` answers 429 with ``Retry-After`` on matching paths only."""
    control.set_faults("rate_limit", count=1, retry_after=2, paths=["/api/v1/towers"])
    assert demo.http.get("/api/v1/locker-types").status_code == 200
    answer = demo.http.get(LOCKERS)
    assert (answer.status_code, answer.headers["retry-after"]) == (429, "2")
    assert demo.http.get(LOCKERS).status_code == 200


def test_drop_connection_closes_without_an_answer(demo: Party, control: SimControl) -> None:
    """``drop_connection`` closes the socket with no response; the next request is served."""
    control.set_faults("drop_connection", count=1)
    with pytest.raises(httpx.RemoteProtocolError):
        demo.http.get(LOCKERS)
    assert demo.http.get(LOCKERS).status_code == 200


def test_latency_and_slow_token_delay(sandbox: VirtualSandbox, demo: Party, control: SimControl) -> None:
    """``latency`` delays matching paths; ``slow_token`` delays only the token endpoint."""
    control.set_faults("latency", ms=150, paths=["/api/v1/towers"])
    control.set_faults("slow_token", ms=150)
    started = time.perf_counter()
    demo.http.get(LOCKERS)
    assert time.perf_counter() - started >= 0.15
    started = time.perf_counter()
    demo.http.get("/api/v1/locker-types")
    assert time.perf_counter() - started < 0.15
    started = time.perf_counter()
    httpx.post(sandbox.url + TOKEN_PATH, data={"grant_type": "client_credentials"}, timeout=5)
    assert time.perf_counter() - started >= 0.15


def test_stall_holds_requests_until_the_window_ends(demo: Party, control: SimControl) -> None:
    """``stall`` serves for ``every - seconds`` then holds every request until the stall ends."""
    control.set_faults("stall", seconds=0.4, every=0.5)
    started = time.perf_counter()
    demo.http.get(LOCKERS)  # within the first 0.1 s: served at once
    assert time.perf_counter() - started < 0.1
    deadline = time.perf_counter() + 2
    held = 0.0
    while held < 0.2 and time.perf_counter() < deadline:  # bounded: some request lands in a stall
        began = time.perf_counter()
        demo.http.get(LOCKERS)
        held = time.perf_counter() - began
    assert 0.2 <= held <= 0.5


def test_control_plane_is_never_faulted(control: SimControl) -> None:
    """With every request failing, ``/_sim`` still answers: faults can always be cleared."""
    control.set_faults("http_5xx")
    control.set_faults("drop_connection")
    assert control.faults().keys() == {"http_5xx", "drop_connection"}
    control.clear_faults()
    assert control.faults() == {}


def test_ble_faults_are_spent_by_the_radio(sandbox: VirtualSandbox, control: SimControl) -> None:
    """A BLE fault with a count is injected that many times, read from the same object the radio reads."""
    control.set_faults("ble_busy", count=2)
    faults = sandbox.world.faults
    assert [faults.ble("ble_busy") for _ in range(3)] == [True, True, False]
    assert faults.ble("ble_disconnect") is False


@pytest.mark.parametrize(
    "params",
    [
        {"profile": "earthquake"},
        {"profile": "http_5xx", "count": 1, "fraction": 0.5},
        {"profile": "http_5xx", "status": 404},
        {"profile": "stall", "seconds": 2, "every": 1},
        {"profile": "latency", "ms": 10, "colour": "red"},
    ],
)
def test_bad_fault_profiles_are_refused(control: SimControl, params: dict[str, object]) -> None:
    """Unknown profiles, contradictory triggers, out-of-range values and stray parameters: 422."""
    profile = str(params.pop("profile"))
    with pytest.raises(ControlError) as refused:
        control.set_faults(profile, **params)
    assert refused.value.status_code == 422
