"""Webhooks as an integrator receives them: Harbor's envelope POSTed to a loopback receiver, in order,
retried with backoff, signed with a shared secret, off the API's request path, bounded, stopped
with the sandbox (reference section 6)."""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import threading
import time
from collections.abc import Iterator
from datetime import datetime

import httpx
import pytest

from harness.sim import (
    SIGNATURE_HEADER,
    ControlError,
    SimControl,
    SimSettings,
    VirtualSandbox,
    Webhook,
    WebhookDelivery,
)

from .sandbox_parties import TOWER, Party, fetch_token
from .webhook_receiver import Receiver

DATA_KEYS = {
    "timestamp", "locker_id", "locker_status", "tower_id", "source", "reservation_id", "open_locker_token_id",
    "keypad_code", "client_info", "locker_open_request_id", "locker_open_request_payload",
}  # fmt: skip
#: Retries at once: no test waits for a backoff. A POST may take 5 s (a loaded machine), so a
#: retry is for the receiver's 500, not for a slow answer.
FAST = WebhookDelivery(attempts=5, first_delay=0.001, timeout=5.0)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver() as running:
        yield running


@pytest.fixture(scope="module")
def fast() -> Iterator[VirtualSandbox]:
    """A sandbox whose deliveries retry at once."""
    with VirtualSandbox(SimSettings(webhook_delivery=FAST)) as sandbox:
        yield sandbox


@pytest.fixture
def fast_demo(fast: VirtualSandbox) -> Iterator[Party]:
    fast.control.reset()
    fast.control.remove_webhooks()
    headers = {"Authorization": f"Bearer {fetch_token(fast.url)}"}
    with httpx.Client(base_url=fast.url, headers=headers, timeout=10) as http:
        yield Party("demo-provider", http)
    fast.control.remove_webhooks()


def deliver(party: Party, control: SimControl, locker_id: int) -> None:
    """The seed's delivery through the control plane's doors: reserve, drop off, pick up."""
    assert party.reserve(locker_id).is_success
    for kind in ("dropoff", "pickup"):
        token = party.token(kind, locker_id).json()
        control.open_door(TOWER, locker_id, token["payload"], token["payload_auth"])
        control.close_door(TOWER, locker_id)


def test_a_delivery_reaches_the_receiver_as_harbors_envelope_in_order(
    demo: Party, control: SimControl, receiver: Receiver
) -> None:
    """A receiver added through the control plane gets each event of a delivery, in order, as exactly
    Harbor's envelope (no sandbox field): LOCKER_TOKEN_CREATED says rented, LOCKER_TOKEN_USED occupied."""
    assert control.add_webhook(receiver.url)[0]["url"] == receiver.url
    deliver(demo, control, 1401)
    logged = control.events()
    received = receiver.wait_for(len(logged))
    assert [r.json() for r in received] == [{k: v for k, v in e.items() if k != "sequence"} for e in logged]
    for delivery in received:
        envelope = delivery.json()
        assert envelope.keys() == {"timestamp", "event", "data"} and envelope["event"] == "LOCKER_OPERATION"
        assert datetime.strptime(envelope["timestamp"], "%Y-%m-%dT%H:%M:%S")
        assert envelope["data"].keys() == DATA_KEYS
        assert datetime.fromisoformat(envelope["data"]["timestamp"]).tzinfo is not None
        assert delivery.headers["content-type"] == "application/json"
        assert SIGNATURE_HEADER.lower() not in delivery.headers  # no secret, no signature
    shown = [(r.json()["data"]["source"], r.json()["data"]["locker_status"]) for r in received]
    assert shown == [
        ("RESERVATION_CREATED", "reserved"),
        ("LOCKER_TOKEN_CREATED", "rented"),
        ("LOCKER_TOKEN_USED", "occupied"),
        ("LOCKER_DOOR_CLOSED", "occupied"),
        ("LOCKER_TOKEN_CREATED", "occupied"),
        ("LOCKER_TOKEN_USED", "occupied"),
        ("LOCKER_DOOR_CLOSED", "available"),
    ]
    created, used = received[1].json()["data"], received[2].json()["data"]
    assert created["open_locker_token_id"] == used["open_locker_token_id"] is not None
    assert created["client_info"] == "dropoff by demo-provider" and created["reservation_id"] is not None
    receiver.wait_until(lambda: control.webhooks()[0]["pending"] == 0)  # counted once its answer is back
    [entry] = control.webhooks()
    assert entry | {"url": None} == {
        "url": None, "signed": False, "pending": 0, "delivered": 7, "retried": 0, "failed": 0, "dropped": 0,
    }  # fmt: skip


def test_a_receiver_that_fails_twice_still_gets_every_event_in_order(fast: VirtualSandbox, fast_demo: Party) -> None:
    """Answering 500 to the first two tries costs two retries (after the backoff of the settings), and
    then every event arrives, in order."""
    with Receiver(fail_first=2) as failing:
        fast.control.add_webhook(failing.url)
        deliver(fast_demo, fast.control, 1402)
        logged = fast.control.events()
        received = failing.wait_for(len(logged))
        assert [r.json() for r in received] == [{k: v for k, v in e.items() if k != "sequence"} for e in logged]
        assert failing.attempts == len(logged) + 2
        failing.wait_until(lambda: fast.control.webhooks()[0]["pending"] == 0)
        [entry] = fast.control.webhooks()
        assert (entry["delivered"], entry["retried"], entry["failed"]) == (len(logged), 2, 0)


def test_a_receiver_that_always_fails_is_given_up_after_the_attempts(fast: VirtualSandbox, fast_demo: Party) -> None:
    """Each event is tried ``attempts`` times, then given up (``failed``), and the next event goes."""
    with Receiver(fail_first=10**6) as dead:
        fast.control.add_webhook(dead.url)
        assert fast_demo.reserve(1403).is_success
        assert fast_demo.reserve(1404).is_success
        dead.wait_until(lambda: fast.control.webhooks()[0]["failed"] == 2)
        assert dead.attempts == 2 * FAST.attempts
        assert fast.control.webhooks()[0]["delivered"] == 0


def test_a_signed_delivery_carries_the_hmac_of_its_raw_body(
    demo: Party, control: SimControl, receiver: Receiver
) -> None:
    """With a shared secret, ``X-Harbor-Signature`` is ``sha256=`` and the hex HMAC-SHA256 of the exact
    body; ``/_sim/webhooks`` says it is signed and never shows the secret."""
    listed = control.add_webhook(receiver.url, secret="s3cr3t-of-the-receiver")
    assert listed[0]["signed"] is True and "s3cr3t" not in str(listed) + str(control.state())
    assert demo.reserve(1405).is_success
    [delivery] = receiver.wait_for(1)
    expected = "sha256=" + hmac.new(b"s3cr3t-of-the-receiver", delivery.body, hashlib.sha256).hexdigest()
    assert delivery.headers["x-harbor-signature"] == expected
    assert "x-signature" not in delivery.headers


def test_the_signature_header_dialect_names_it_x_signature(
    demo: Party, control: SimControl, receiver: Receiver
) -> None:
    """Under ``webhook_signature_header`` the same value travels in ``X-Signature``."""
    control.set_dialects(webhook_signature_header=True)
    control.add_webhook(receiver.url, secret="another-secret")
    assert demo.reserve(1406).is_success
    [delivery] = receiver.wait_for(1)
    expected = "sha256=" + hmac.new(b"another-secret", delivery.body, hashlib.sha256).hexdigest()
    assert delivery.headers["x-signature"] == expected
    assert "x-harbor-signature" not in delivery.headers


def test_a_stuck_receiver_never_slows_the_api_and_a_full_queue_counts_its_drops() -> None:
    """While the receiver holds its first request, the API answers as ever; beyond the queue's 4
    events the rest are dropped and counted in ``/_sim/state``; once it answers, the queued ones arrive."""
    settings = SimSettings(webhook_delivery=dataclasses.replace(FAST, queue=4))
    with Receiver() as stuck, VirtualSandbox(settings) as sandbox:
        stuck.hold = True
        sandbox.control.add_webhook(stuck.url)
        headers = {"Authorization": f"Bearer {fetch_token(sandbox.url)}"}
        with httpx.Client(base_url=sandbox.url, headers=headers, timeout=10) as http:
            party = Party("demo-provider", http)
            started = time.perf_counter()
            for locker_id in (1401, 1402, 1403, 1404, 1405, 1406, 1407, 1408, 1409, 1410):
                assert party.reserve(locker_id).is_success
            assert time.perf_counter() - started < 5.0  # ten calls; the receiver holds a delivery up to 10 s
        [entry] = sandbox.control.state()["webhooks"]
        assert (entry["pending"], entry["dropped"]) == (4, 6)
        stuck.release()
        received = stuck.wait_for(4)
        assert [r.json()["data"]["locker_id"] for r in received] == [1401, 1402, 1403, 1404]
        stuck.wait_until(lambda: sandbox.control.webhooks()[0]["pending"] == 0)
        assert len(stuck.received) == 4 and sandbox.control.webhooks()[0]["delivered"] == 4


def test_only_loopback_receivers_unless_allowed(control: SimControl) -> None:
    """A receiver off this machine is refused (422 naming the fix) unless the sandbox allows it; so is a
    URL that is not http(s)."""
    for url in ("http://example.com/hook", "http://10.0.0.1/hook", "ftp://127.0.0.1/hook", "not a url"):
        with pytest.raises(ControlError) as refused:
            control.add_webhook(url)
        assert refused.value.status_code == 422, url
    assert control.webhooks() == []
    with pytest.raises(ValueError, match="not on loopback"):
        SimSettings(webhooks=(Webhook("http://example.com/hook"),))
    allowed = SimSettings(
        webhooks=(Webhook("https://example.com/hook"),), webhook_delivery=WebhookDelivery(allow_non_loopback=True)
    )
    assert allowed.webhooks[0].url == "https://example.com/hook"
    for harbor in (
        "https://api.harborlockers\uff0ecom/hook",
        "https://API.HarborLockers.com./x",
        "https://harborlockers.com",
    ):
        with pytest.raises(ValueError, match="Harbor's own hosts"):  # even where other hosts are allowed
            SimSettings(webhooks=(Webhook(harbor),), webhook_delivery=WebhookDelivery(allow_non_loopback=True))
    for url in ("http://localhost:1/x", "http://127.0.0.1:1/x", "http://[::1]:1/x"):
        control.add_webhook(url)
    assert len(control.webhooks()) == 3


def test_receivers_are_removed_one_or_all(control: SimControl, receiver: Receiver) -> None:
    """``DELETE /_sim/webhooks?url=`` removes one (404 for an unknown one); without ``url``, all."""
    control.add_webhook(receiver.url)
    control.add_webhook("http://127.0.0.1:9/other")
    assert [entry["url"] for entry in control.remove_webhooks(receiver.url)] == ["http://127.0.0.1:9/other"]
    with pytest.raises(ControlError) as unknown:
        control.remove_webhooks(receiver.url)
    assert unknown.value.status_code == 404
    assert control.remove_webhooks() == []


def test_settings_webhooks_get_events_from_the_start_and_stop_with_the_sandbox() -> None:
    """``SimSettings(webhooks=...)`` delivers from the first event; stopping the sandbox ends delivery
    (a request held by the receiver included) within the POST timeout, and nothing arrives after."""

    def webhook_threads() -> set[threading.Thread]:
        return {t for t in threading.enumerate() if t.name.startswith("harness-sim-webhook") and t.is_alive()}

    others = webhook_threads()  # other sandboxes of this worker process (a module's fixture) keep theirs
    with Receiver() as receiver:
        stopping = dataclasses.replace(FAST, timeout=1.0)
        sandbox = VirtualSandbox(SimSettings(webhooks=(Webhook(receiver.url, "k"),), webhook_delivery=stopping))
        sandbox.start_in_thread()
        try:
            token = fetch_token(sandbox.url)
            reserve = f"/api/v1/towers/{TOWER}/lockers/1401/reservations"
            headers = {"Authorization": f"Bearer {token}"}
            assert httpx.post(sandbox.url + reserve, json={"duration": 60}, headers=headers, timeout=5).is_success
            receiver.wait_for(1)
            receiver.hold = True
            second = reserve.replace("1401", "1402")
            assert httpx.post(sandbox.url + second, json={"duration": 60}, headers=headers, timeout=5).is_success
            receiver.wait_until(lambda: receiver.attempts == 2)  # the second delivery is held in flight
        finally:
            started = time.perf_counter()
            sandbox.stop()
        assert time.perf_counter() - started < stopping.timeout + 2.0
        assert webhook_threads() <= others
        receiver.release()
        assert len(receiver.received) == 2  # the held one was received; nothing after


def test_a_subprocess_sandbox_delivers_to_its_settings_receivers() -> None:
    """Receivers (their secrets in the environment) and the delivery policy reach ``python -m harness.sim``."""
    with Receiver() as receiver:
        settings = SimSettings(webhooks=(Webhook(receiver.url, "child-secret"),), webhook_delivery=FAST)
        sandbox = VirtualSandbox(settings).start_subprocess()
        try:
            headers = {"Authorization": f"Bearer {fetch_token(sandbox.url)}"}
            path = f"/api/v1/towers/{TOWER}/lockers/1401/reservations"
            assert httpx.post(sandbox.url + path, json={"duration": 60}, headers=headers, timeout=5).is_success
            [delivery] = receiver.wait_for(1)
            expected = "sha256=" + hmac.new(b"child-secret", delivery.body, hashlib.sha256).hexdigest()
            assert delivery.headers["x-harbor-signature"] == expected
            assert delivery.json()["data"]["source"] == "RESERVATION_CREATED"
        finally:
            sandbox.stop()
