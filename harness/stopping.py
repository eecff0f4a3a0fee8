"""A stop from outside: Ctrl-C (SIGINT) or the SIGTERM a CI runner or a container sends.

Both are handled the same way: SIGTERM calls SIGINT's handler, so ``KeyboardInterrupt`` (or
asyncio's cancellation of its main task) unwinds the run, its users and fixtures give back what
they hold, its children are stopped, the evidence gathered so far is written, and the process
exits 130 (SIGINT) or 143 (SIGTERM, 128 + 15, as a shell reports a process the signal ended).
"""

from __future__ import annotations

import signal
import threading
from types import FrameType

from harness.errors import ExitCode

__all__ = ["Terminated", "stop_exit_code", "stop_on_sigterm", "terminated"]

_received = False


class Terminated(KeyboardInterrupt):
    """SIGTERM arrived where SIGINT has no handler to do Ctrl-C's work (ignored): a stop all the same."""


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    """Do what Ctrl-C does here: call SIGINT's handler (asyncio's cancels the main task, so its
    ``finally`` blocks still await their give-backs), else raise ``Terminated``."""
    global _received
    _received = True
    handler = signal.getsignal(signal.SIGINT)
    if callable(handler):
        # Python's own raises KeyboardInterrupt; asyncio's cancels the main task and returns.
        handler(signal.SIGINT, frame)
        return
    raise Terminated


def stop_on_sigterm() -> bool:
    """Make SIGTERM a stop like Ctrl-C in this process; whether it now is. Only from the main
    thread, and only where nobody chose a SIGTERM handler already (the default ends the process
    at once: no give-back, no evidence)."""
    if threading.current_thread() is not threading.main_thread():
        return False
    current = signal.getsignal(signal.SIGTERM)
    if current is _on_sigterm:
        return True
    if current is not signal.SIG_DFL:
        return False
    signal.signal(signal.SIGTERM, _on_sigterm)
    return True


def terminated() -> bool:
    """Whether a SIGTERM has arrived in this process."""
    return _received


def stop_exit_code() -> ExitCode:
    """The exit code of a stopped run: 143 after a SIGTERM, else 130 (Ctrl-C)."""
    return ExitCode.TERMINATED if _received else ExitCode.INTERRUPTED
