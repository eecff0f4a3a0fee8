"""Registering a webhook receiver with a virtual sandbox: ``POST /_sim/webhooks {url, secret}``.

Harbor's staff register an integrator's endpoint by hand [S]; a virtual sandbox takes the URL on
its control plane, and from then on delivers every locker operation to it as Harbor's envelope,
signed when given a secret. A sandbox without that route (an older one) delivers nothing: that
is "could not test" (``WebhooksNotDelivered``), never a quiet pass.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Final

import httpx

from harness.api import guarded_client
from harness.errors import InfrastructureError, TargetUnreachable
from harness.hosts import WirePolicy

__all__ = ["WEBHOOKS_PATH", "WebhooksNotDelivered", "subscribe_webhooks", "subscribed_webhooks"]

#: The control plane's route that registers a receiver.
WEBHOOKS_PATH: Final = "/_sim/webhooks"
_TIMEOUT: Final = 5.0


class WebhooksNotDelivered(InfrastructureError):
    """The sandbox has no webhook delivery to register with (no ``/_sim/webhooks``)."""


def subscribe_webhooks(api_url: str, receiver_url: str, *, secret: str | None = None, policy: WirePolicy) -> None:
    """Have the sandbox at ``api_url`` deliver its webhooks to ``receiver_url`` (signed with ``secret``)."""
    body: dict[str, str] = {"url": receiver_url}
    if secret is not None:
        body["secret"] = secret
    try:
        with guarded_client(policy, api_url, timeout=_TIMEOUT) as http:
            answer = http.post(f"{api_url.rstrip('/')}{WEBHOOKS_PATH}", json=body)
    except httpx.RequestError as exc:
        raise TargetUnreachable(f"{api_url} does not answer ({type(exc).__name__})", url=api_url) from None
    if answer.status_code in (404, 405):
        raise WebhooksNotDelivered(
            f"the sandbox at {api_url} delivers no webhooks (it has no {WEBHOOKS_PATH}): a version without delivery"
        )
    if not answer.is_success:
        raise InfrastructureError(f"POST {WEBHOOKS_PATH} answered {answer.status_code}: {answer.text[:200]}")


@contextmanager
def subscribed_webhooks(
    api_url: str, receiver_url: str, *, secret: str | None = None, policy: WirePolicy
) -> Iterator[None]:
    """``subscribe_webhooks`` for the block, the receiver removed after it (best effort): a sandbox that
    goes on serving other stages does not go on posting to a receiver that is gone."""
    subscribe_webhooks(api_url, receiver_url, secret=secret, policy=policy)
    try:
        yield
    finally:
        try:
            with guarded_client(policy, api_url, timeout=_TIMEOUT) as http:
                http.delete(f"{api_url.rstrip('/')}{WEBHOOKS_PATH}", params={"url": receiver_url})
        except httpx.RequestError:
            pass  # the sandbox is gone too: nothing posts to the receiver any more
