"""One world lock: concurrent requests over a real socket never double-book a locker."""

from __future__ import annotations

import asyncio
from collections import Counter

import httpx
import pytest

from harness.sim import VirtualSandbox

from .sandbox_parties import TOWER

RACERS = 64


async def race(url: str, tokens: list[str], locker_id: int = 1411) -> Counter[int]:
    """``RACERS`` reserve requests for one locker at once, bearer tokens taken in turn."""
    limits = httpx.Limits(max_connections=RACERS, max_keepalive_connections=RACERS)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=20) as http:
        answers = await asyncio.gather(
            *(
                http.post(
                    f"/api/v1/towers/{TOWER}/lockers/{locker_id}/reservations",
                    json={"duration": 300},
                    headers={"Authorization": f"Bearer {tokens[i % len(tokens)]}"},
                )
                for i in range(RACERS)
            )
        )
    return Counter(answer.status_code for answer in answers)


@pytest.mark.anyio
async def test_one_of_64_concurrent_reservations_wins(sandbox: VirtualSandbox, tokens: dict[str, str]) -> None:
    """64 simultaneous reservations of one available locker: exactly one 201, the rest 409."""
    statuses = await race(sandbox.url, [tokens["demo-provider"]])
    assert statuses == Counter({201: 1, 409: RACERS - 1})


@pytest.mark.anyio
async def test_one_winner_among_two_parties(sandbox: VirtualSandbox, tokens: dict[str, str]) -> None:
    """Two identities racing for one locker: exactly one 201 overall, every other answer 409."""
    statuses = await race(sandbox.url, [tokens["demo-provider"], tokens["second-provider"]])
    assert statuses == Counter({201: 1, 409: RACERS - 1})
    holder = sandbox.control.locker(1411)["holder"]
    assert holder in ("demo-provider", "second-provider")


@pytest.mark.anyio
async def test_double_booking_switch_lets_every_racer_win(sandbox: VirtualSandbox, tokens: dict[str, str]) -> None:
    """With ``double_booking`` on the same race gives 64 wins: the race test can see the defect."""
    sandbox.control.set_bugs(double_booking=True)
    statuses = await race(sandbox.url, [tokens["demo-provider"], tokens["second-provider"]])
    assert statuses == Counter({201: RACERS})
