"""What this repository's own test runs set up before any test.

- State out of the checkout: the harness writes every hold to ``.locker-harness/`` in the working
  directory, and a suite of a thousand deliveries would grow the checkout's ledger without end. The
  session gets a folder of its own (its xdist workers share it), unless ``HARBOR_STATE_DIR`` is set.
- Timing budgets wait to be asked for: a test marked ``perf`` asserts how long the harness's own code
  takes (wall clock or CPU), which a shared CI machine cannot promise, so it runs only when
  selected (``pytest -m perf``, ``make perf``) and is skipped, saying so, otherwise.
- Ctrl-C reaches the processes the tests start: a shell without job control starts a background
  command (``make test &``) with SIGINT ignored, and children inherit that, so every test that
  presses Ctrl-C on a child would wait in vain. A handled signal is reset to the default on exec.
"""

from __future__ import annotations

import os
import signal
import tempfile

import pytest


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if "perf" in (config.getoption("markexpr") or ""):
        return
    skip = pytest.mark.skip(reason="a timing budget: select it with -m perf (make perf)")
    for item in items:
        if item.get_closest_marker("perf") is not None:
            item.add_marker(skip)


def pytest_configure(config: pytest.Config) -> None:
    if "HARBOR_STATE_DIR" not in os.environ:
        # set before any test (and any child process a test starts) reads the environment
        os.environ["HARBOR_STATE_DIR"] = tempfile.mkdtemp(prefix="locker-harness-state-")
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)
