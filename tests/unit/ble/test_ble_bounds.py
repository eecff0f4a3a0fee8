"""Every wait on the radio is bounded: a write, a disconnect or a scanner that never answers ends in time."""

from __future__ import annotations

import asyncio
import os
from typing import Any

import pytest
from bleak.exc import BleakError
from bumble.link import LocalLink

from harness.ble import BleLinkError, SdkCode, TowerClient, TowerIdentity
from harness.ble._virtual import VirtualBleakClient

pytestmark = pytest.mark.anyio

TOWER = "0100000000000014"
#: The outer guard: a test that waited this long found an unbounded wait (the bound under test is 0.05 s).
GUARD_S = 3.0


async def _never() -> None:
    await asyncio.Event().wait()  # a radio that never answers


class _SilentRadio:
    """A bleak client whose GATT writes and disconnect never complete, as a wedged D-Bus call would."""

    is_connected = True
    mtu_size = 247

    async def write_gatt_char(self, *_args: Any, **_kwargs: Any) -> None:
        await _never()

    async def disconnect(self) -> None:
        await _never()


def _client() -> TowerClient:
    client = TowerClient(_SilentRadio(), tower_id=TOWER, response_timeout=0.05)  # type: ignore[arg-type]
    client.identity = TowerIdentity(TOWER, "bench", "1.2.3")
    client._rx = object()  # type: ignore[assignment]  # "connected": the UART characteristic is known
    return client


async def test_a_write_that_never_completes_is_a_response_timeout() -> None:
    """A GATT write the radio never acknowledges ends within response_timeout as BleLinkError RESPONSE_TIMEOUT."""
    token = {"payload": "00", "payload_auth": "00", "session_seed": os.urandom(32).hex()}
    with pytest.raises(BleLinkError) as failed:
        await asyncio.wait_for(_client().start_session(lambda *_: token, token=token), GUARD_S)
    assert failed.value.code is SdkCode.RESPONSE_TIMEOUT and failed.value.phase == "session"


async def test_a_disconnect_that_never_completes_is_bounded() -> None:
    """TowerClient.disconnect on a radio that never lets go ends within response_timeout as a link error."""
    with pytest.raises(BleLinkError):
        await asyncio.wait_for(_client().disconnect(), GUARD_S)


class _StuckConnection:
    async def disconnect(self) -> None:
        await _never()


async def test_virtual_disconnect_that_never_completes_is_bounded_and_forgets_the_link() -> None:
    """The virtual backend's disconnect is bounded by its timeout, raises BleakError, and drops the link anyway."""
    client = VirtualBleakClient("D0:00:00:00:00:01", link=LocalLink(), timeout=0.05)  # type: ignore[no-untyped-call]
    client._connection = _StuckConnection()  # type: ignore[assignment]
    with pytest.raises(BleakError, match="timed out"):
        await asyncio.wait_for(client.disconnect(), GUARD_S)
    assert not client.is_connected
