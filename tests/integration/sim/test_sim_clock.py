"""The virtual clock drives every expiry and the ``Date`` header; bearer tokens age on the wall clock."""

from __future__ import annotations

import time
from datetime import datetime
from email.utils import parsedate_to_datetime

import httpx
import pytest

from harness.sim import ControlError, SimControl, SimSettings, VirtualSandbox

from .sandbox_parties import TOWER, Party, fetch_token


def test_reservation_past_its_duration_frees_the_locker(demo: Party, second: Party, control: SimControl) -> None:
    """A reservation moved past its duration by the virtual clock leaves the locker available."""
    assert demo.reserve(1402, duration=120).status_code == 201
    control.advance_clock(119)
    assert demo.status(1402) == "reserved"
    control.advance_clock(2)
    assert demo.status(1402) == "available"
    assert second.reserve(1402).status_code == 201
    sources = [event["data"]["source"] for event in control.events()]
    assert "RESERVATION_EXPIRED" in sources


def test_rented_locker_with_expired_unused_tokens_frees_itself(demo: Party, control: SimControl) -> None:
    """A rented locker whose drop-off tokens all expired unused returns to available."""
    assert demo.token("dropoff", 1403, duration=60).status_code == 201
    assert demo.token("dropoff", 1403, duration=90).status_code == 201
    assert demo.status(1403) == "rented"
    control.advance_clock(61)
    assert demo.status(1403) == "rented"  # the later token still runs
    control.advance_clock(30)
    assert demo.status(1403) == "available"


def test_date_header_follows_the_virtual_clock(demo: Party, control: SimControl) -> None:
    """``Date`` is sandbox time: after a one-day move it reads a day ahead of the wall clock."""
    answer = demo.http.get(f"/api/v1/towers/{TOWER}/lockers/1401")
    before = parsedate_to_datetime(answer.headers["date"]).timestamp()
    assert abs(before - time.time()) < 5
    control.advance_clock(86_400)
    answer = demo.http.get(f"/api/v1/towers/{TOWER}/lockers/1401")
    after = parsedate_to_datetime(answer.headers["date"]).timestamp()
    assert 86_400 - 5 < after - before < 86_400 + 5
    assert answer.headers.get_list("date") == [answer.headers["date"]]  # uvicorn adds no second one


def test_expires_fields_compare_with_the_date_header(demo: Party, control: SimControl) -> None:
    """A token's ``expires`` is ``duration`` after the sandbox's ``Date``, whatever the clock offset."""
    control.advance_clock(3600)
    answer = demo.token("dropoff", 1404, duration=600)
    date = parsedate_to_datetime(answer.headers["date"]).timestamp()
    expires_at = datetime.fromisoformat(answer.json()["expires"]).timestamp()
    assert 599 <= expires_at - date <= 601


def test_moving_the_clock_never_logs_anyone_out(demo: Party, control: SimControl) -> None:
    """Bearer tokens age on the wall clock: a week of virtual time later the same token works."""
    control.advance_clock(7 * 86_400)
    assert demo.http.get(f"/api/v1/towers/{TOWER}/lockers").status_code == 200


def test_bearer_token_expires_on_the_wall_clock() -> None:
    """A token past its (wall-clock) lifetime is refused with 401."""
    with VirtualSandbox(SimSettings(token_lifetime=0.3)) as sandbox:
        token = fetch_token(sandbox.url)
        headers = {"Authorization": f"Bearer {token}"}
        with httpx.Client(base_url=sandbox.url, headers=headers, timeout=5) as http:
            assert http.get(f"/api/v1/towers/{TOWER}/lockers").status_code == 200
            deadline = time.perf_counter() + 5
            status = 200
            while status == 200 and time.perf_counter() < deadline:  # bounded poll on the wall clock
                status = http.get(f"/api/v1/towers/{TOWER}/lockers").status_code
            assert status == 401


@pytest.mark.parametrize("seconds", [-1, "soon"])
def test_clock_only_moves_forward(control: SimControl, seconds: object) -> None:
    """The control plane refuses to move the clock back or by a non-number."""
    with pytest.raises(ControlError):
        control.advance_clock(seconds)  # type: ignore[arg-type]
