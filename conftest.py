"""This repository's own test runs keep their state (cleanup ledger, run history) out of the checkout.

The harness writes every hold to ``.locker-harness/`` in the working directory; a test suite of a
thousand deliveries would grow the checkout's ledger without end. Each pytest process (each xdist
worker too) gets a folder of its own, unless ``HARBOR_STATE_DIR`` is set already.
"""

from __future__ import annotations

import os
import tempfile

import pytest


def pytest_configure(config: pytest.Config) -> None:
    if "HARBOR_STATE_DIR" not in os.environ:
        # set before any test (and any child process a test starts) reads the environment
        os.environ["HARBOR_STATE_DIR"] = tempfile.mkdtemp(prefix="locker-harness-state-")
