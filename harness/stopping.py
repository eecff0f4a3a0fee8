"""A stop from outside: Ctrl-C (SIGINT) or the SIGTERM a CI runner or a container sends.

Both are handled the same way: SIGTERM calls SIGINT's handler, so ``KeyboardInterrupt`` (or
asyncio's cancellation of its main task) unwinds the run, its users and fixtures give back what
they hold, its children are stopped, the evidence gathered so far is written, and the process
exits 130 (SIGINT) or 143 (SIGTERM, 128 + 15, as a shell reports a process the signal ended).
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from types import FrameType
from typing import Final

from harness.errors import ExitCode

__all__ = ["LIFELINE_ENV", "Terminated", "stop_exit_code", "stop_on_sigterm", "terminated", "watch_lifeline"]

#: The descriptor of a child's lifeline: the reading end of a pipe only its parent (the run) writes to.
LIFELINE_ENV: Final = "LOCKER_HARNESS_LIFELINE_FD"

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


def watch_lifeline(*, grace_s: float = 30.0) -> bool:
    """Stop this process as at a Ctrl-C once the run that started it is gone; whether it watches.

    The run hands each stage's child the reading end of a pipe that only the run holds open
    (``LOCKER_HARNESS_LIFELINE_FD``). Should the run die without stopping the child (SIGKILL, the
    OOM killer), the pipe closes: the child gets SIGINT, so its fixtures give back what they hold,
    and SIGKILL ``grace_s`` later if that did not end it. Without this a stage's suite would go on
    calling the target to its end, for nobody.
    """
    text = os.environ.pop(LIFELINE_ENV, None)  # not handed on to this process's own children
    if text is None or not text.isdigit():
        return False
    descriptor = int(text)
    try:
        os.fstat(descriptor)
    except OSError:
        return False  # the variable came from elsewhere: no pipe of ours

    def watch() -> None:
        with contextlib.suppress(OSError):
            while os.read(descriptor, 4096):  # nobody writes; b"" once the run is gone
                pass
        # To the main thread itself: a signal raised here would wait for it to wake from what it
        # is blocked in (a test's sleep, a socket read) before Python ran the handler.
        main = threading.main_thread().ident
        if main is not None:
            signal.pthread_kill(main, signal.SIGINT)
        time.sleep(grace_s)  # a bounded wait on this process's own teardown; the daemon thread ends with it
        os.kill(os.getpid(), signal.SIGKILL)

    threading.Thread(target=watch, name="lifeline", daemon=True).start()
    return True
