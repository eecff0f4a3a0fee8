"""Webhooks as an integrator receives them: each locker operation event, POSTed as Harbor's
``LOCKER_OPERATION`` envelope (reference section 6 [S]) to every receiver the sandbox was given.

- **Off the request path.** The world hands each event to every receiver's bounded queue without
  waiting (a few microseconds under its lock); one thread per receiver delivers them, in order.
  A slow or dead receiver delays only its own events.
- **Retried, bounded.** A delivery that fails (no connection, a timeout, any answer but 2xx) is
  tried again after ``first_delay``, then twice that, and so on: ``attempts`` tries in all (default
  5: after 0.1, 0.2, 0.4 and 0.8 s), each bounded by ``timeout``. Then it is given up (counted
  ``failed``) and the receiver's next event goes. At least once: a receiver that took an event but
  answered late or badly may get it again.
- **Queue full.** A receiver holds at most ``queue`` events not yet delivered (the one in flight
  included); an event that finds it full is dropped for that receiver and counted ``dropped``.
  ``/_sim/state`` shows every receiver's counts. Events are never dropped silently.
- **Signed** when the receiver has a shared secret: ``X-Harbor-Signature: sha256=<hex HMAC-SHA256
  of the raw body>`` [G] (Harbor's material says a secret signs them, not how); the
  ``webhook_signature_header`` dialect names the header ``X-Signature``.
- **Loopback only**, unless the sandbox is started with ``allow_non_loopback``: a receiver URL's
  host must be a loopback address or ``localhost``. Redirects are not followed and no proxy from
  the environment is used, so a delivery goes where its URL says and nowhere else.
- **Stopping the sandbox stops delivery**: pending events are abandoned, a backoff wait ends at
  once, a POST in flight within its ``timeout``.
"""

from __future__ import annotations

import collections
import dataclasses
import hashlib
import hmac
import ipaddress
import json
import threading
import urllib.parse
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Protocol

import httpx

from ._tls import tls_context

__all__ = [
    "SIGNATURE_HEADER",
    "SIGNATURE_HEADER_DIALECT",
    "WEBHOOK_SOURCES",
    "Webhook",
    "WebhookDeliveries",
    "WebhookDelivery",
    "check_webhook_url",
    "signature",
]

#: The signature header [G], and the ``webhook_signature_header`` dialect's.
SIGNATURE_HEADER: Final = "X-Harbor-Signature"
SIGNATURE_HEADER_DIALECT: Final = "X-Signature"
#: Every ``data.source`` the sandbox sends, with its mark: two are Harbor's own [S], the rest ours [G].
WEBHOOK_SOURCES: Final[Mapping[str, str]] = {
    "LOCKER_TOKEN_CREATED": "S",
    "LOCKER_TOKEN_USED": "S",
    "RESERVATION_CREATED": "G",
    "RESERVATION_CANCELLED": "G",
    "RESERVATION_EXPIRED": "G",
    "LOCKER_DOOR_CLOSED": "G",
    "LOCKER_RELEASED": "G",
    "LOCKER_TOKENS_EXPIRED": "G",
    "LOCKER_OPEN_REQUEST_CREATED": "G",
    "LOCKER_OPENED_AT_TOWER": "G",
    "LOCKER_STATUS_FORCED": "G",
}
#: Receivers one sandbox delivers to at most (each has a thread of its own).
MAX_RECEIVERS: Final = 16
_USER_AGENT: Final = "harbor-virtual-sandbox"
#: Harbor's domain: no receiver under it, however spelt (the sandbox's own copy: it shares no client code).
_HARBOR_DOMAIN: Final = "harborlockers.com"


def check_webhook_url(url: str, *, allow_non_loopback: bool = False) -> str:
    """``url`` if the sandbox may deliver to it; ``ValueError`` saying why not, in one line."""
    try:
        parts = urllib.parse.urlsplit(url)
        host = parts.hostname or ""
        parts.port  # noqa: B018  # raises ValueError for a port out of range
    except ValueError as exc:
        raise ValueError(f"webhook URL {url!r} is not a URL: {exc}") from None
    if parts.scheme not in ("http", "https") or not host:
        raise ValueError(f"webhook URL {url!r} must be http:// or https:// with a host")
    try:
        wire_host = httpx.URL(url).host.rstrip(".").lower()  # the host httpx connects to (IDNA dots and all)
    except (httpx.InvalidURL, ValueError) as exc:
        raise ValueError(f"webhook URL {url!r} is not a URL: {exc}") from None
    if wire_host == _HARBOR_DOMAIN or wire_host.endswith("." + _HARBOR_DOMAIN):
        raise ValueError(f"webhook URL {url!r} is on Harbor's own hosts: a virtual sandbox never posts to Harbor")
    if not allow_non_loopback and not _is_loopback(host):
        raise ValueError(
            f"webhook URL {url!r} is not on loopback: the sandbox delivers to 127.0.0.1, ::1 or localhost "
            "unless it was started to allow other hosts (--allow-non-loopback-webhooks)"
        )
    return url


def _is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a name other than localhost: it could resolve anywhere


def signature(secret: str, body: bytes) -> str:
    """The signature header's value: ``sha256=`` and the hex HMAC-SHA256 of the raw body."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


@dataclass(frozen=True, slots=True)
class Webhook:
    """A receiver: where to POST, and the shared secret that signs each delivery (if any)."""

    url: str
    secret: str | None = field(default=None, repr=False)

    def to_json(self) -> dict[str, str]:
        return {"url": self.url} | ({"secret": self.secret} if self.secret else {})


@dataclass(frozen=True, slots=True)
class WebhookDelivery:
    """How the sandbox delivers: tries, backoff, bounds, and whether non-loopback receivers are allowed."""

    attempts: int = 5
    #: Seconds before the second try; each later wait doubles it (0.1, 0.2, 0.4, 0.8 s).
    first_delay: float = 0.1
    #: Seconds one POST may take (connect, send, answer).
    timeout: float = 2.0
    #: Events a receiver may have waiting (the one in flight included); more are dropped, counted.
    queue: int = 1_000
    allow_non_loopback: bool = False

    def __post_init__(self) -> None:
        if not 1 <= self.attempts <= 20:
            raise ValueError("webhook attempts must be 1 to 20")
        if not 0 <= self.first_delay <= 60 or not 0 < self.timeout <= 60:
            raise ValueError("webhook first_delay must be 0 to 60 s and timeout more than 0, at most 60 s")
        if self.queue < 1:
            raise ValueError("a webhook queue holds at least one event")

    def delays(self) -> list[float]:
        """The waits between tries."""
        return [self.first_delay * 2**retry for retry in range(self.attempts - 1)]


class WebhookEvent(Protocol):
    """An event to deliver: its number, and Harbor's envelope of it."""

    @property
    def sequence(self) -> int: ...

    def envelope(self) -> dict[str, Any]: ...


@dataclass(slots=True)
class _Counts:
    delivered: int = 0
    retried: int = 0
    failed: int = 0
    dropped: int = 0


class _Receiver:
    """One receiver's queue and the thread that delivers it, in order."""

    def __init__(self, webhook: Webhook, policy: WebhookDelivery, header: Callable[[], str], number: int) -> None:
        self.webhook = webhook
        self._policy = policy
        self._header = header
        self._pending: collections.deque[WebhookEvent] = collections.deque()
        self._in_flight = 0
        self._ready = threading.Condition()
        self._stopping = threading.Event()
        self.counts = _Counts()
        self._thread = threading.Thread(target=self._run, name=f"harness-sim-webhook-{number}", daemon=True)
        self._thread.start()

    def offer(self, event: WebhookEvent) -> None:
        """Queue ``event`` without waiting; drop it (counted) when the queue is full."""
        with self._ready:
            if len(self._pending) + self._in_flight >= self._policy.queue:
                self.counts.dropped += 1
                return
            self._pending.append(event)
            self._ready.notify()

    def view(self) -> dict[str, Any]:
        with self._ready:
            pending = len(self._pending) + self._in_flight
            return {"url": self.webhook.url, "signed": bool(self.webhook.secret), "pending": pending} | (
                dataclasses.asdict(self.counts)
            )

    def stop(self) -> None:
        self._stopping.set()
        with self._ready:
            self._ready.notify_all()

    def join(self, timeout: float) -> None:
        self._thread.join(timeout)

    def _next(self) -> WebhookEvent | None:
        with self._ready:
            while not self._pending and not self._stopping.is_set():
                self._ready.wait()
            if self._stopping.is_set():
                return None
            self._in_flight = 1
            return self._pending.popleft()

    def _run(self) -> None:
        with httpx.Client(
            timeout=self._policy.timeout, follow_redirects=False, trust_env=False, verify=tls_context()
        ) as http:
            while (event := self._next()) is not None:
                try:
                    self._deliver(http, event)
                finally:
                    with self._ready:
                        self._in_flight = 0

    def _deliver(self, http: httpx.Client, event: WebhookEvent) -> None:
        body = json.dumps(event.envelope(), separators=(",", ":")).encode()
        headers = {"Content-Type": "application/json", "User-Agent": _USER_AGENT}
        secret = self.webhook.secret
        if secret:
            headers[self._header()] = signature(secret, body)
        delays = self._policy.delays()
        for attempt in range(self._policy.attempts):
            if attempt:
                self.counts.retried += 1
                if self._stopping.wait(delays[attempt - 1]):
                    return  # the sandbox stops: the event is abandoned
            try:
                answer = http.post(self.webhook.url, content=body, headers=headers)
            except httpx.HTTPError:
                continue
            if answer.is_success:
                self.counts.delivered += 1
                return
        self.counts.failed += 1


class WebhookDeliveries:
    """The sandbox's receivers: add, remove, list; ``publish`` hands an event to each without waiting."""

    def __init__(self, policy: WebhookDelivery, header: Callable[[], str]) -> None:
        """``header``: the signature header's name, asked at each delivery (a dialect may change it)."""
        self.policy = policy
        self._header = header
        self._receivers: dict[str, _Receiver] = {}
        self._lock = threading.Lock()
        self._started = 0
        self._stopped = False

    def add(self, webhook: Webhook) -> None:
        """Deliver to ``webhook`` from the next event on; the same URL again replaces its secret."""
        check_webhook_url(webhook.url, allow_non_loopback=self.policy.allow_non_loopback)
        with self._lock:
            if self._stopped:
                raise ValueError("the sandbox has stopped delivering webhooks")
            known = self._receivers.get(webhook.url)
            if known is not None:
                known.webhook = webhook
                return
            if len(self._receivers) >= MAX_RECEIVERS:
                raise ValueError(f"at most {MAX_RECEIVERS} webhook receivers")
            self._started += 1
            self._receivers[webhook.url] = _Receiver(webhook, self.policy, self._header, self._started)

    def remove(self, url: str | None = None) -> int:
        """Stop delivering to ``url`` (``None``: to every receiver); how many receivers that removed.
        Their undelivered events are abandoned."""
        with self._lock:
            urls = list(self._receivers) if url is None else [url] if url in self._receivers else []
            gone = [self._receivers.pop(known) for known in urls]
        for receiver in gone:
            receiver.stop()
        return len(gone)

    def publish(self, event: WebhookEvent) -> None:
        """Hand ``event`` to every receiver's queue; never waits for a delivery."""
        with self._lock:
            receivers = tuple(self._receivers.values())
        for receiver in receivers:
            receiver.offer(event)

    def __bool__(self) -> bool:
        return bool(self._receivers)

    def receivers(self) -> list[dict[str, Any]]:
        """Each receiver's URL, whether it is signed (never its secret) and its counts."""
        with self._lock:
            receivers = tuple(self._receivers.values())
        return [receiver.view() for receiver in receivers]

    def stop(self) -> None:
        """Stop every delivery (the sandbox stops); bounded by one POST's ``timeout``."""
        with self._lock:
            self._stopped = True
            receivers = list(self._receivers.values())
            self._receivers.clear()
        for receiver in receivers:
            receiver.stop()
        for receiver in receivers:
            receiver.join(self.policy.timeout + 1.0)
