"""locker-harness: contract, hardware and load testing for Harbor Lockers integrations.

The public face: targets and settings, the API clients, the locker statuses and the errors.
The clients are imported on first use, so ``import harness`` (and the pytest plugin) stays light.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from harness.config import Settings, Target, TargetKind, load_settings
from harness.errors import (
    ExitCode,
    HarborAPIError,
    HarnessError,
    InfrastructureError,
    ProductDefect,
    UsageError,
)
from harness.model import LockerStatus, TokenKind

if TYPE_CHECKING:
    from harness.api import AsyncHarborClient, HarborClient

__all__ = [
    "AsyncHarborClient",
    "ExitCode",
    "HarborAPIError",
    "HarborClient",
    "HarnessError",
    "InfrastructureError",
    "LockerStatus",
    "ProductDefect",
    "Settings",
    "Target",
    "TargetKind",
    "TokenKind",
    "UsageError",
    "__version__",
    "load_settings",
]

__version__ = "0.1.0"

_LAZY = {"AsyncHarborClient": "harness.api", "HarborClient": "harness.api"}


def __getattr__(name: str) -> object:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'harness' has no attribute {name!r}")
