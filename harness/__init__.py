"""locker-harness: contract, hardware and load testing for Harbor Lockers integrations."""

from harness.errors import ExitCode, HarnessError
from harness.model import LockerStatus, TokenKind

__all__ = ["ExitCode", "HarnessError", "LockerStatus", "TokenKind", "__version__"]

__version__ = "0.1.0"
