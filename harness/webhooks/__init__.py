"""Webhooks as an integrator receives them: a loopback receiver, and the check of what arrived.

``WebhookReceiver`` is a small HTTP server on 127.0.0.1 (port 0, in a thread) that keeps every
delivery; ``check_delivery`` says whether a drop-off delivery's ``LOCKER_TOKEN_CREATED`` (rented)
and ``LOCKER_TOKEN_USED`` (occupied) arrived with Harbor's envelope, in order. ``locker-harness
smoke --webhooks`` and the pytest plugin's ``harbor_webhooks`` fixture register a receiver with
the embedded sandbox (``harness.targets.subscribe_webhooks``).
"""

from harness.webhooks._events import (
    DATA_FIELDS,
    DROPOFF_EVENTS,
    DROPOFF_WAIT_S,
    WebhookEvent,
    check_delivery,
    check_dropoff,
)
from harness.webhooks._receiver import Delivery, WebhookReceiver, canonical_header

__all__ = [
    "DATA_FIELDS",
    "DROPOFF_EVENTS",
    "DROPOFF_WAIT_S",
    "Delivery",
    "WebhookEvent",
    "WebhookReceiver",
    "canonical_header",
    "check_delivery",
    "check_dropoff",
]
