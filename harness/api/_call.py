"""One API operation as data (``Call``) and the OAuth2 scope it needs (``Scope``).

The builders (``_operations``) make calls and the core (``_core``) performs them: both import
this module, and neither imports the other for it.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from harness.api._holds import Hold
from harness.api._models import Reader

__all__ = ["Call", "Scope"]

T = TypeVar("T")


class Scope(enum.StrEnum):
    """OAuth2 scopes [S, reference 2.1]: one per API, each with its own cached token."""

    SERVICE_PROVIDER = "service_provider"  # /api/v1
    TOWER_ACCESS = "tower_access"  # /sdk/v1


@dataclass(frozen=True, slots=True)
class Call(Generic[T]):
    """One API operation, as data: how to ask and how to read the answer."""

    method: str
    path: str
    parse: Callable[[Reader], T]
    scope: Scope = Scope.SERVICE_PROVIDER
    json: Any = None
    #: A form-encoded body (``application/x-www-form-urlencoded``); a login's carries a password.
    data: Mapping[str, str] | None = field(default=None, repr=False)
    params: Mapping[str, str | int | float] | None = None
    #: What the call writes, in words ("reserve a locker"); ``None`` for a read.
    writes: str | None = None
    hold: Hold | None = None
    #: The success code the API document gives: 200, or 201 for a create. A create answered with
    #: another 2xx is read all the same and refutes ``create_status`` (a guess); another 2xx for
    #: anything else is a defect.
    status: int = 200
    #: Whether the call carries the scope's bearer token; the password logins (``security: []``) carry none.
    bearer: bool = True
