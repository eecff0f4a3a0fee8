"""What a virtual sandbox is started with: seed, identities, lifetimes."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from harness.ble.protocol import assumptions

from ._dialects import DIALECT_NAMES
from ._issued import ISSUED_LOG_ENV
from ._webhooks import Webhook, WebhookDelivery, check_webhook_url

__all__ = [
    "DEMO_IDENTITIES",
    "DIALECTS_ENV",
    "IDENTITIES_ENV",
    "SECRET_ENV",
    "WEBHOOKS_ENV",
    "Identity",
    "Retention",
    "SimSettings",
]

#: Environment variable carrying the identities to a sandbox subprocess, as JSON (never argv).
IDENTITIES_ENV = "HARBOR_SIM_IDENTITIES"
#: Environment variable carrying the sandbox secret (hex) the tower keys derive from.
SECRET_ENV = "HARBOR_SIM_SECRET"
#: Environment variable naming the dialects a sandbox subprocess starts with (comma-separated).
DIALECTS_ENV = "HARBOR_SIM_DIALECTS"
#: Environment variable carrying a sandbox subprocess's webhook receivers, as JSON (their secrets: never argv).
WEBHOOKS_ENV = "HARBOR_SIM_WEBHOOKS"


@dataclass(frozen=True, slots=True)
class Identity:
    """A service provider's client credentials, as Keycloak knows them."""

    client_id: str
    client_secret: str = field(repr=False)

    def __post_init__(self) -> None:
        if not self.client_id or not self.client_secret:
            raise ValueError("an identity needs a client id and a client secret")


#: The identities `locker-harness sim` starts with: public demo values, not secrets of anyone's.
DEMO_IDENTITIES: tuple[Identity, ...] = (
    Identity("demo-provider", "demo-secret"),
    Identity("second-provider", "second-secret"),
)


@dataclass(frozen=True, slots=True)
class Retention:
    """How much history the sandbox keeps: bounded, as a long-running server's is, so a soak of
    any length runs in flat memory. What is forgotten answers as unknown (404) or, for the event
    log, says it is gone (410); what is still in force is never forgotten.
    """

    #: ``/_sim/events`` keeps the newest this many webhook events (a ring); an older ``since``
    #: answers 410 with the oldest number still kept. About 7 events per delivery.
    webhook_events: int = 10_000
    #: A tower's event log holds at most this many events, like its flash [G]: when no phone syncs,
    #: the oldest unsynced events are overwritten and the sync pointer moves to the oldest kept.
    tower_events: int = 4_096
    #: Events a phone already marked seen (SYNC_MARK_SEEN_EVENTS) stay this many deep, so a batch
    #: pulled again after a lost notification is still there.
    tower_seen_tail: int = 64
    #: Reservations are kept while in force, each locker's latest always, and ended ones up to this
    #: many in all: a cancel of a recently expired reservation answers the model's 409, not 404.
    reservations: int = 4_096
    #: Locker open requests (links) kept, the oldest forgotten first (``GET`` then answers 404).
    open_requests: int = 4_096

    def __post_init__(self) -> None:
        for name in ("webhook_events", "tower_events", "reservations", "open_requests"):
            if getattr(self, name) < 1:
                raise ValueError(f"retention {name} must be at least 1")
        if self.tower_seen_tail < 0:
            raise ValueError("retention tower_seen_tail must not be negative")


@dataclass(frozen=True, slots=True)
class SimSettings:
    """How a virtual sandbox behaves; ``seed=0`` gives the world of docs/design.md exactly."""

    seed: int = 0
    identities: tuple[Identity, ...] = DEMO_IDENTITIES
    #: Lifetime of a bearer token from the token endpoint, on the wall clock (Keycloak: 300 s [S]).
    token_lifetime: float = 300.0
    #: Lifetime of an SDK token from ``login/authorize``, on the wall clock [G].
    sdk_token_lifetime: float = 3600.0
    #: True: the towers report door events to the sandbox at once (an online tower). False: the
    #: REST side learns of a door event only when a phone uploads the tower's events
    #: (``POST /sdk/v1/towers/{id}/events``), as Harbor's offline towers do [I].
    uplink: bool = True
    #: The secret the tower keys and bearer tokens derive from; ``None``: fresh random bytes per sandbox.
    secret: bytes | None = field(default=None, repr=False)
    #: Debug hook of the redaction canary: a file every issued secret is appended to (``_issued.py``).
    issued_log: str | None = field(default_factory=lambda: os.environ.get(ISSUED_LOG_ENV) or None, repr=False)
    #: How much history is kept (event logs, ended reservations, links).
    retention: Retention = Retention()
    #: True: a tower refuses a drop-off token that already opened a door (AUTH_INVALID), except for
    #: REOPEN_LOCKER in the session that used it. Not in the reference: ``assumptions.DROPOFF_TOKEN_SINGLE_USE``.
    single_use_tokens: bool = assumptions.DROPOFF_TOKEN_SINGLE_USE
    #: The dialects it starts with (``_dialects.py``); ``/_sim/reset`` turns them off like the bug switches.
    dialects: frozenset[str] = frozenset()
    #: Where it delivers each locker operation event (``_webhooks.py``), and how.
    webhooks: tuple[Webhook, ...] = ()
    webhook_delivery: WebhookDelivery = field(default_factory=WebhookDelivery)

    def __post_init__(self) -> None:
        if not self.identities:
            raise ValueError("a sandbox needs at least one identity")
        object.__setattr__(self, "dialects", frozenset(self.dialects))  # any iterable of names
        unknown = sorted(self.dialects - set(DIALECT_NAMES))
        if unknown:
            raise ValueError(f"unknown dialect(s): {', '.join(unknown)}; known: {', '.join(DIALECT_NAMES)}")
        object.__setattr__(self, "webhooks", tuple(self.webhooks))
        for webhook in self.webhooks:
            check_webhook_url(webhook.url, allow_non_loopback=self.webhook_delivery.allow_non_loopback)
        ids = [identity.client_id for identity in self.identities]
        if len(set(ids)) != len(ids):
            raise ValueError("identity client ids must be unique")
        if self.token_lifetime <= 0 or self.sdk_token_lifetime <= 0:
            raise ValueError("token lifetimes must be positive")

    def identities_json(self) -> str:
        """The identities as the subprocess reads them from ``HARBOR_SIM_IDENTITIES``."""
        return json.dumps([{"client_id": i.client_id, "client_secret": i.client_secret} for i in self.identities])

    @staticmethod
    def identities_from_json(text: str) -> tuple[Identity, ...]:
        """Parse ``HARBOR_SIM_IDENTITIES``; raises ``ValueError`` with a one-line reason."""
        try:
            raw: Any = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValueError(f"{IDENTITIES_ENV} is not JSON: {exc.msg}") from None
        if not isinstance(raw, Sequence) or isinstance(raw, str):
            raise ValueError(f"{IDENTITIES_ENV} must be a JSON list of {{client_id, client_secret}}")
        identities = []
        for item in raw:
            if not isinstance(item, Mapping) or not {"client_id", "client_secret"} <= item.keys():
                raise ValueError(f"{IDENTITIES_ENV} entries need client_id and client_secret")
            identities.append(Identity(str(item["client_id"]), str(item["client_secret"])))
        return tuple(identities)

    @classmethod
    def from_environment(cls, *, seed: int = 0, **overrides: Any) -> SimSettings:
        """Settings for ``python -m harness.sim``: identities and secret from the environment."""
        text = os.environ.get(IDENTITIES_ENV)
        identities = cls.identities_from_json(text) if text else DEMO_IDENTITIES
        secret_hex = os.environ.get(SECRET_ENV)
        secret = bytes.fromhex(secret_hex) if secret_hex else None
        dialects = frozenset(filter(None, (name.strip() for name in os.environ.get(DIALECTS_ENV, "").split(","))))
        webhooks = cls.webhooks_from_json(os.environ.get(WEBHOOKS_ENV) or "[]")
        return cls(seed=seed, identities=identities, secret=secret, dialects=dialects, webhooks=webhooks, **overrides)

    def webhooks_json(self) -> str:
        """The webhook receivers as the subprocess reads them from ``HARBOR_SIM_WEBHOOKS``."""
        return json.dumps([webhook.to_json() for webhook in self.webhooks])

    @staticmethod
    def webhooks_from_json(text: str) -> tuple[Webhook, ...]:
        """Parse ``HARBOR_SIM_WEBHOOKS``: a JSON list of ``{url, secret?}``; ``ValueError`` with a one-line reason."""
        try:
            raw: Any = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValueError(f"{WEBHOOKS_ENV} is not JSON: {exc.msg}") from None
        if not isinstance(raw, list) or not all(isinstance(item, Mapping) and "url" in item for item in raw):
            raise ValueError(f"{WEBHOOKS_ENV} must be a JSON list of {{url, secret?}}")
        return tuple(Webhook(str(item["url"]), str(item["secret"]) if item.get("secret") else None) for item in raw)

    def dialects_env(self) -> str:
        """The dialects as the subprocess reads them from ``HARBOR_SIM_DIALECTS``."""
        return ",".join(sorted(self.dialects))
