"""A client of Harbor's side: the service-provider REST API (``/api/v1``) and the SDK API (``/sdk/v1``).

``HarborClient`` (blocking) and ``AsyncHarborClient`` share one sans-IO core: OAuth2 client
credentials with cached tokens, Harbor's SDK retry policy, the production write guard, the
``Holds`` hook every created resource passes through, and strict parsing into frozen
dataclasses. Errors are the harness's own (``harness.errors``); no httpx type escapes::

    HarnessError
    ├── UsageError ── CredentialsRefused (also an Unauthorized: the token endpoint said no)
    ├── InfrastructureError ── TargetUnreachable, ServerError (after the retries),
    │                          AnswerLost (told to a Holds hook: a create may have landed unanswered)
    ├── HarborAPIError ── BadRequest, Unauthorized, Forbidden, NotFound, Conflict,
    │                     ValidationFailed, RateLimited
    └── ProductDefect(check="response_shape")  a body that does not match the API document
"""

from harness.api._call import Call, Scope
from harness.api._client import AsyncHarborClient, HarborClient
from harness.api._core import AnswerLost, CredentialsRefused, RetryPolicy
from harness.api._holds import NO_HOLDS, Hold, HoldAction, HoldKind, HoldLog, HoldRecord, Holds
from harness.api._models import (
    Availability,
    BleService,
    Location,
    Locker,
    LockerOpenRequest,
    LockerToken,
    LockerType,
    LoginToken,
    Reservation,
    SdkToken,
    SessionClaim,
    SessionToken,
    TokenInfo,
    Tower,
    TowerCommandBatch,
    TowerConfiguration,
    TypeAvailability,
)
from harness.api._operations import OPERATIONS
from harness.api._wire import async_guard_hooks, guard_hooks, guarded_client, tls_context
from harness.model import TowerEventBatch  # what upload_tower_events takes: the BLE client makes them

__all__ = [
    "NO_HOLDS",
    "OPERATIONS",
    "AnswerLost",
    "AsyncHarborClient",
    "Availability",
    "BleService",
    "Call",
    "CredentialsRefused",
    "HarborClient",
    "Hold",
    "HoldAction",
    "HoldKind",
    "HoldLog",
    "HoldRecord",
    "Holds",
    "Location",
    "Locker",
    "LockerOpenRequest",
    "LockerToken",
    "LockerType",
    "LoginToken",
    "Reservation",
    "RetryPolicy",
    "Scope",
    "SdkToken",
    "SessionClaim",
    "SessionToken",
    "TokenInfo",
    "Tower",
    "TowerCommandBatch",
    "TowerConfiguration",
    "TowerEventBatch",
    "TypeAvailability",
    "async_guard_hooks",
    "guard_hooks",
    "guarded_client",
    "tls_context",
]
