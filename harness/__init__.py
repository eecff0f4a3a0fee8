"""locker-harness: contract, hardware and load testing for Harbor Lockers integrations.

The public face: targets and settings, the API clients, the locker statuses and the errors.
Every name is imported on first use, so ``import harness`` (the pytest plugin, the virtual
sandbox under ``harness.sim``) loads nothing of the harness until a name is asked for.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from harness._version import __version__

if TYPE_CHECKING:
    from harness.api import AsyncHarborClient, HarborClient
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

#: Public name -> the module that defines it (imported on first use).
_LAZY: dict[str, str] = {
    **dict.fromkeys(("AsyncHarborClient", "HarborClient"), "harness.api"),
    **dict.fromkeys(("Settings", "Target", "TargetKind", "load_settings"), "harness.config"),
    **dict.fromkeys(
        ("ExitCode", "HarborAPIError", "HarnessError", "InfrastructureError", "ProductDefect", "UsageError"),
        "harness.errors",
    ),
    **dict.fromkeys(("LockerStatus", "TokenKind"), "harness.model"),
}


def __getattr__(name: str) -> object:
    module = _LAZY.get(name)
    if module is None:
        # Not a public name: ``import harness.x`` then finds the submodule itself.
        raise AttributeError(f"module 'harness' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
