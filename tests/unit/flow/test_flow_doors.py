"""The control-plane door opener: its own failures are the harness's trouble, never the product's."""

from __future__ import annotations

import time

import httpx
import pytest

from harness.api import Locker, LockerType
from harness.errors import InfrastructureError, ProductDefect
from harness.flow import ControlPlaneOpener
from harness.model import LockerStatus

LOCKER = Locker(1401, "1", "0100000000000014", LockerStatus.RENTED, LockerType(1, "small"), False, "public")


def doors(door: httpx.Response) -> ControlPlaneOpener:
    def answer(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/close"):
            return httpx.Response(200, json={"locker": {}})
        return door

    return ControlPlaneOpener("http://127.0.0.1:9", transport=httpx.MockTransport(answer))


@pytest.mark.anyio
async def test_door_check_answering_5xx_is_infrastructure_at_once() -> None:
    """A 5xx from the door check is InfrastructureError at once, not a door_reads_closed defect after the timeout."""
    started = time.monotonic()
    async with doors(httpx.Response(500, text="Internal Server Error")) as opener:
        with pytest.raises(InfrastructureError, match="answered 500"):
            await opener.wait_closed(LOCKER, timeout=5.0)
    assert time.monotonic() - started < 1.0


@pytest.mark.anyio
async def test_door_that_stays_open_is_a_defect() -> None:
    """A door the control plane keeps reading open after the close is the product's defect."""
    async with doors(httpx.Response(200, json={"door_open": True})) as opener:
        with pytest.raises(ProductDefect) as caught:
            await opener.wait_closed(LOCKER, timeout=0.05)
    assert caught.value.check == "door_reads_closed"


def test_control_plane_doors_do_not_close_by_themselves() -> None:
    """Only wait_closed closes a control-plane door, so the flow keeps its strict check after an open."""
    assert ControlPlaneOpener.door_closes_itself is False
