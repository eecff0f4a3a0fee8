"""The pytest plugin's ``harbor_webhooks``: a user's test sees the webhooks of the deliveries it makes.

This is how a user tests their own webhook handler against the virtual sandbox: take the events
of the locker they delivered to from the receiver and feed them to the handler. Skips (saying
why) against a sandbox that delivers no webhooks.
"""

from __future__ import annotations

from typing import Any

from harness.flow import Delivery
from harness.webhooks import WebhookReceiver


def _of(locker_id: int, events: list[Any]) -> list[str]:
    return [
        e["data"]["source"] for e in events if isinstance(e, dict) and e.get("data", {}).get("locker_id") == locker_id
    ]


def test_a_users_handler_gets_the_delivery_s_events(harbor_webhooks: WebhookReceiver, delivery: Delivery) -> None:
    """After a delivery, its LOCKER_TOKEN_CREATED and LOCKER_TOKEN_USED reach the fixture's receiver, in order.

    Harbor's other ``source`` values are unknown [S]: a handler skips those it does not know, and so
    must a user's (the sandbox sends sources of its own guessing, such as RESERVATION_CREATED).
    """
    locker_id = delivery.locker.id
    handled: list[str] = []

    def my_handler(event: dict[str, Any]) -> None:  # what a user's own webhook handler would be
        if event["data"]["source"] in {"LOCKER_TOKEN_CREATED", "LOCKER_TOKEN_USED"}:
            handled.append(f"{event['data']['source']}:{event['data']['locker_status']}")

    assert harbor_webhooks.wait_for(lambda events: "LOCKER_TOKEN_USED" in _of(locker_id, events), timeout=10)
    for event in harbor_webhooks.events:
        if event["data"]["locker_id"] == locker_id:
            my_handler(event)
    assert handled[:2] == ["LOCKER_TOKEN_CREATED:rented", "LOCKER_TOKEN_USED:occupied"]
