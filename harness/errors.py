"""The harness's exceptions and exit codes: one tree, so "the locker service is wrong" never looks
like "the harness or its setup is wrong".

    HarnessError
    ├── UsageError              exit 2  bad option, config file, URL, missing credentials
    ├── InfrastructureError     exit 4  could not test: unreachable, timeouts, 5xx, no Bluetooth
    │   ├── TargetUnreachable
    │   ├── ServerError         a 5xx that outlived the retries
    │   └── BluetoothUnavailable
    ├── HarborAPIError          a 4xx answer; expected in tests, a defect where the flow needed a 2xx
    │   ├── BadRequest 400, Unauthorized 401, Forbidden 403, NotFound 404, Conflict 409,
    │   └── ValidationFailed 422, RateLimited 429 (after honouring Retry-After; also Infrastructure)
    └── ProductDefect           exit 1  the target broke a promise (a check failed)

``api/`` and ``ble/`` translate httpx and bleak errors into this tree at their edge; nobody
above them catches a foreign exception type. Errors carry fields, not just text.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from typing import Any

__all__ = [
    "BadRequest",
    "BluetoothUnavailable",
    "Conflict",
    "ExitCode",
    "Forbidden",
    "HarborAPIError",
    "HarnessError",
    "InfrastructureError",
    "NotFound",
    "ProductDefect",
    "RateLimited",
    "ServerError",
    "TargetUnreachable",
    "Unauthorized",
    "UsageError",
    "ValidationFailed",
]


class ExitCode(enum.IntEnum):
    """What every ``locker-harness`` command exits with; the README lists the same table."""

    OK = 0  # everything checked is green
    DEFECT = 1  # a check failed: the target broke a promise
    USAGE = 2  # bad option, configuration, URL or missing credentials
    SLO_BREACH = 3  # the flow works but a latency or failure-ratio gate was breached
    INFRASTRUCTURE = 4  # could not test: target unreachable, 5xx after retries, no Bluetooth
    ASSUMPTION_REFUTED = 5  # green, but the target refuted a guess of ours (only with --strict-assumptions)
    INTERRUPTED = 130  # Ctrl-C; whatever the run held has been released
    TERMINATED = 143  # SIGTERM (a CI runner, a container): stopped like Ctrl-C, what it held released


class HarnessError(Exception):
    """Base of every error the harness raises on purpose."""

    exit_code: ExitCode = ExitCode.DEFECT

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class UsageError(HarnessError):
    """The user's input or configuration is wrong; the message says how to fix it."""

    exit_code = ExitCode.USAGE


class InfrastructureError(HarnessError):
    """The harness could not test: this says nothing about the product's correctness."""

    exit_code = ExitCode.INFRASTRUCTURE


class TargetUnreachable(InfrastructureError):
    """No answer from the target after the retries (connect error, timeout, dropped connection)."""

    def __init__(self, message: str, *, url: str | None = None) -> None:
        super().__init__(message)
        self.url = url


class BluetoothUnavailable(InfrastructureError):
    """No Bluetooth adapter is reachable, or it is off."""


class ProductDefect(HarnessError):
    """The target broke a promise: a status the model does not predict, a double booking, ..."""

    exit_code = ExitCode.DEFECT

    def __init__(self, message: str, *, check: str, step: str | None = None) -> None:
        super().__init__(message)
        self.check = check
        self.step = step


class HarborAPIError(HarnessError):
    """Harbor's side answered with an error status; ``detail`` is its ``{"detail": ...}``."""

    status_code: int = 0

    def __init__(
        self,
        message: str,
        *,
        status_code: int,
        detail: Any = None,
        method: str = "",
        path: str = "",
    ) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.detail = detail
        self.method = method
        self.path = path


class BadRequest(HarborAPIError):
    status_code = 400


class Unauthorized(HarborAPIError):
    status_code = 401


class Forbidden(HarborAPIError):
    status_code = 403


class NotFound(HarborAPIError):
    status_code = 404


class Conflict(HarborAPIError):
    status_code = 409


class ValidationFailed(HarborAPIError):
    """422 with FastAPI's list of ``{"loc", "msg", "type"}`` errors, kept in ``errors``."""

    status_code = 422

    @property
    def errors(self) -> Sequence[dict[str, Any]]:
        return self.detail if isinstance(self.detail, list) else []


class RateLimited(HarborAPIError, InfrastructureError):
    """429 that persisted after honouring ``Retry-After``: the target would not serve the test, so it
    could not test (exit 4), though it is still the target's answer (a ``HarborAPIError``)."""

    status_code = 429

    def __init__(self, message: str, *, retry_after: float | None = None, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.retry_after = retry_after


class ServerError(InfrastructureError):
    """A 5xx from the target that outlived the retries."""

    def __init__(self, message: str, *, status_code: int, method: str = "", path: str = "") -> None:
        super().__init__(message)
        self.status_code = status_code
        self.method = method
        self.path = path
