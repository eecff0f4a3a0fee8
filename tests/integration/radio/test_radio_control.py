"""The control plane's radio calls on an in-process sandbox: where the radio is (or that it is not
served), what a link gets, and values refused before anything changes."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from harness.ble import choose_backend
from harness.errors import UsageError
from harness.sim import ControlError, VirtualSandbox
from harness.targets import announced_radio


@pytest.fixture(scope="module")
def sandbox() -> Iterator[VirtualSandbox]:
    with VirtualSandbox() as running:
        yield running


def test_no_radio_on_the_air_answers_404_and_announces_nothing(sandbox: VirtualSandbox) -> None:
    """Before anything asked for the radio there is none: 404, and the targets layer sees no radio."""
    if sandbox.app.radio is not None:
        pytest.skip("another test of this module put the radio on the air first")
    with pytest.raises(ControlError) as refused:
        sandbox.control.radio()
    assert refused.value.status_code == 404
    assert announced_radio(sandbox.url) is None


def test_an_in_process_radio_is_described_but_not_served(sandbox: VirtualSandbox) -> None:
    """An in-process radio is described with ``transport`` null (only its own process reaches it)
    until ``serve`` puts it on a loopback port; then both the control plane and the targets layer name it."""
    sandbox.radio.start()
    described = sandbox.control.radio()
    assert described["transport"] is None and len(described["towers"]) == 2
    assert announced_radio(sandbox.url) is None
    address = sandbox.radio.serve()
    assert address.startswith("tcp-client:127.0.0.1:") and sandbox.radio.serve() == address  # idempotent
    announced = announced_radio(sandbox.url)
    assert announced is not None and announced.transport == address == sandbox.control.radio()["transport"]


def test_configure_radio_changes_what_a_link_gets_and_refuses_bad_values(sandbox: VirtualSandbox) -> None:
    """``POST /_sim/radio`` sets MTU, idle timeout and latency; a value out of range is a 422 and
    nothing changes."""
    sandbox.radio.start()
    before = sandbox.control.radio()
    try:
        after = sandbox.control.configure_radio(mtu=23, idle_timeout=5.0, connection_interval=0.0)
        assert (after["mtu"], after["idle_timeout"], after["connection_interval"]) == (23, 5.0, 0.0)
        assert sandbox.radio.link_settings.mtu == 23
        for bad in ({"mtu": 22}, {"mtu": 248}, {"idle_timeout": 0}, {"jitter": -1}, {"seed": 3}):
            assert httpx.post(f"{sandbox.url}/_sim/radio", json=bad).status_code == 422, bad
        assert sandbox.control.radio() == after
    finally:
        sandbox.control.configure_radio(
            mtu=before["mtu"],
            idle_timeout=before["idle_timeout"],
            connection_interval=before["connection_interval"],
            jitter=before["jitter"],
        )


def test_a_transport_that_is_not_tcp_client_is_a_usage_error() -> None:
    """The virtual backend reaches another process's radio at ``tcp-client:HOST:PORT`` only: anything
    else is refused in one line before bumble is asked."""
    for wrong in ("tcp-server:127.0.0.1:1", "tcp-client:127.0.0.1", "serial:/dev/ttyS0"):
        with pytest.raises(UsageError, match="tcp-client:HOST:PORT"):
            choose_backend("virtual", link=wrong)
