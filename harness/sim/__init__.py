"""The embedded virtual sandbox: Harbor's REST side and its towers, on loopback, seeded.

A second implementation of Harbor's side, written against the reference and
``harness.model``; it shares no code with the client it tests but the model and the BLE codec.
See docs/design.md, "Virtual sandbox".
"""

from typing import TYPE_CHECKING

from ._bugs import BUG_NAMES, BugSwitches
from ._control_client import ControlError, SimControl
from ._dialects import DIALECT_ASSUMPTIONS, DIALECT_NAMES, Dialects
from ._faults import FAULT_NAMES, TOKEN_PATH, Faults, parse_fault_spec
from ._server import SandboxNotRunning, VirtualSandbox, uvicorn_config
from ._settings import DEMO_IDENTITIES, Identity, Retention, SimSettings
from ._webhooks import SIGNATURE_HEADER, WEBHOOK_SOURCES, Webhook, WebhookDelivery
from .firmware import FirmwareRefusal, SessionGrant, TowerEvent, TowerFirmware

__all__ = [
    "BUG_NAMES",
    "DEMO_IDENTITIES",
    "DIALECT_ASSUMPTIONS",
    "DIALECT_NAMES",
    "FAULT_NAMES",
    "SIGNATURE_HEADER",
    "TOKEN_PATH",
    "WEBHOOK_SOURCES",
    "BugSwitches",
    "ControlError",
    "Dialects",
    "Faults",
    "FirmwareRefusal",
    "Identity",
    "Retention",
    "SandboxNotRunning",
    "SessionGrant",
    "SimControl",
    "SimSettings",
    "TowerEvent",
    "TowerFirmware",
    "VirtualSandbox",
    "Webhook",
    "WebhookDelivery",
    "api_document",
    "create_app",
    "parse_fault_spec",
    "uvicorn_config",
]

if TYPE_CHECKING:
    from ._app import api_document, create_app


#: Names of the app's module (FastAPI): loaded when asked, so a process that only starts the sandbox
#: as a child and drives its control plane (load, soak) never imports FastAPI.
_APP: frozenset[str] = frozenset({"api_document", "create_app"})


def __getattr__(name: str) -> object:
    if name in _APP:
        from . import _app

        return getattr(_app, name)
    raise AttributeError(f"module 'harness.sim' has no attribute {name!r}")
