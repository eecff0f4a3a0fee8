"""Webhooks as an integrator receives them: the loopback receiver, the envelope check, and end to end.

The receiver and the check are tested against deliveries made here (Harbor's envelope from the
reference, signed or not). End to end (the embedded sandbox delivering to the receiver, ``smoke
--webhooks``, the plugin's ``harbor_webhooks``) needs a sandbox that delivers webhooks
(``POST /_sim/webhooks``): those tests skip, saying so, against a sandbox without it.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from harness.assumptions import Assumed, findings, observing
from harness.model import TowerId
from harness.targets import LocalTarget, WebhooksNotDelivered, subscribe_webhooks
from harness.testing import local_target
from harness.webhooks import WebhookReceiver, check_delivery

TOWER = TowerId("0100000000000014")
LOCKER_HARNESS = Path(sys.executable).with_name("locker-harness")


def envelope(source: str, status: str, locker_id: int = 1401, **data: Any) -> dict[str, Any]:
    """A LOCKER_OPERATION as reference section 6 shows it."""
    return {
        "timestamp": "2026-11-28T05:00:00",
        "event": "LOCKER_OPERATION",
        "data": {
            "timestamp": "2026-11-28T05:00:00.120000+00:00",
            "locker_id": locker_id,
            "locker_status": status,
            "tower_id": TOWER,
            "source": source,
            "reservation_id": 7,
            "open_locker_token_id": 11,
            "keypad_code": None,
            "client_info": "",
            "locker_open_request_id": None,
            "locker_open_request_payload": None,
        }
        | data,
    }


def post(receiver: WebhookReceiver, body: Any, *, secret: str | None = None, header: str = "X-Harbor-Signature") -> int:
    raw = json.dumps(body).encode()
    headers = {"content-type": "application/json"}
    if secret is not None:
        headers[header] = "sha256=" + hmac.new(secret.encode(), raw, hashlib.sha256).hexdigest()
    return httpx.post(receiver.url, content=raw, headers=headers, timeout=5).status_code


def test_a_delivery_as_documented_passes_the_check() -> None:
    """Created (rented) then used (occupied), signed, with every documented field: nothing wrong."""
    with WebhookReceiver(secret="s3cret") as receiver, observing() as seen:
        assert post(receiver, envelope("LOCKER_TOKEN_CREATED", "rented"), secret="s3cret") == 200
        assert post(receiver, envelope("LOCKER_TOKEN_USED", "occupied"), secret="s3cret") == 200
        assert post(receiver, envelope("LOCKER_TOKEN_CREATED", "rented", locker_id=1402), secret="s3cret") == 200
        problems = check_delivery(receiver.deliveries, locker_id=1401, tower_id=TOWER, signed=True)
    assert problems == []
    assert findings(seen.entries(), Assumed()) == []
    assert [d.signature_ok for d in receiver.deliveries] == [True, True, True]


@pytest.mark.parametrize(
    ("bodies", "problem"),
    [
        ([envelope("LOCKER_TOKEN_CREATED", "rented")], "no LOCKER_TOKEN_USED for locker 1401 arrived"),
        (
            [envelope("LOCKER_TOKEN_CREATED", "rented"), envelope("LOCKER_TOKEN_USED", "available")],
            "LOCKER_TOKEN_USED says locker_status 'available', not 'occupied'",
        ),
        (
            [envelope("LOCKER_TOKEN_USED", "occupied"), envelope("LOCKER_TOKEN_CREATED", "rented")],
            "LOCKER_TOKEN_USED arrived before LOCKER_TOKEN_CREATED",
        ),
        (
            [envelope("LOCKER_TOKEN_CREATED", "rented", reservation_id="7"), envelope("LOCKER_TOKEN_USED", "occupied")],
            "data.reservation_id is str, not int or NoneType",
        ),
        (
            [
                envelope("LOCKER_TOKEN_CREATED", "rented", timestamp="2026-11-28T05:00:00"),
                envelope("LOCKER_TOKEN_USED", "occupied"),
            ],
            "is not an ISO time with an offset",
        ),
    ],
    ids=["used missing", "used says available", "out of order", "field type", "data timestamp without offset"],
)
def test_each_way_a_delivery_can_be_wrong_is_named(bodies: list[dict[str, Any]], problem: str) -> None:
    """Each departure from section 6 (missing, wrong status, order, a field's type) is named."""
    with WebhookReceiver() as receiver:
        for body in bodies:
            post(receiver, body)
        problems = check_delivery(receiver.deliveries, locker_id=1401, tower_id=TOWER)
    assert any(problem in line for line in problems), problems


def test_used_saying_rented_refutes_occupied_on_and_is_no_problem() -> None:
    """A target that turns the locker occupied on the close says rented at LOCKER_TOKEN_USED: the
    occupied_on [I] reading refuted, as REST's late occupied is, not a broken promise."""
    with WebhookReceiver() as receiver, observing() as seen:
        post(receiver, envelope("LOCKER_TOKEN_CREATED", "rented"))
        post(receiver, envelope("LOCKER_TOKEN_USED", "rented"))
        problems = check_delivery(receiver.deliveries, locker_id=1401, tower_id=TOWER)
    assert problems == []
    [finding] = findings(seen.entries(), Assumed())
    assert finding.adopt == 'occupied_on = "close"'


def test_a_bad_signature_is_a_problem_and_another_header_refutes_the_guess() -> None:
    """A signature under another header is still checked, and refutes webhook_signature_header; a wrong one fails."""
    with WebhookReceiver(secret="s3cret") as receiver, observing() as seen:
        post(receiver, envelope("LOCKER_TOKEN_CREATED", "rented"), secret="s3cret", header="X-Signature")
        post(receiver, envelope("LOCKER_TOKEN_USED", "occupied"), secret="wrong", header="X-Signature")
        problems = check_delivery(receiver.deliveries, locker_id=1401, tower_id=TOWER, signed=True)
    assert problems == ["LOCKER_TOKEN_USED: the signature does not match the body (or is missing)"]
    [finding] = findings(seen.entries(), Assumed())
    assert finding.adopt == 'webhook_signature_header = "X-Signature"'


def test_a_receiver_that_fails_first_gets_the_retry() -> None:
    """fail_first answers 500 to the first deliveries; events are what it accepted, wait_for is bounded."""
    with WebhookReceiver(fail_first=2) as receiver:
        codes = [post(receiver, envelope("LOCKER_TOKEN_CREATED", "rented")) for _ in range(3)]
        assert codes == [500, 500, 200]
        assert len(receiver.events) == 1 and len(receiver.deliveries) == 3
        assert receiver.wait_for(lambda events: len(events) == 1, timeout=1)
        assert not receiver.wait_for(lambda events: len(events) == 2, timeout=0.05)


# -- end to end: the embedded sandbox delivers --------------------------------------------------------


@pytest.fixture(scope="module")
def delivering() -> Iterator[LocalTarget]:
    """The embedded sandbox, if it delivers webhooks; else the tests skip with the reason."""
    with local_target() as target, WebhookReceiver() as probe_receiver:
        try:
            subscribe_webhooks(target.url, probe_receiver.url, policy=target.settings.wire_policy())
        except WebhooksNotDelivered as exc:
            pytest.skip(f"waiting for the sandbox's webhook delivery: {exc}")
        yield target


def test_smoke_webhooks_checks_the_delivery_end_to_end(delivering: LocalTarget, tmp_path: Path) -> None:
    """``smoke --webhooks`` on local: both events arrive at the loopback receiver, in order; exit 0."""
    done = subprocess.run(
        [str(LOCKER_HARNESS), "smoke", "--webhooks"], cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "LOCKER_TOKEN_CREATED (rented) then LOCKER_TOKEN_USED (occupied) arrived" in done.stdout


def test_smoke_webhooks_is_for_local_only(tmp_path: Path) -> None:
    """Off local, --webhooks is a usage error: Harbor's staff register endpoints by hand."""
    done = subprocess.run(
        [str(LOCKER_HARNESS), "smoke", "--webhooks", "--target", "http://127.0.0.1:9"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2 and "--webhooks applies to --target local only" in done.stderr
