"""Shared test fixtures, kept light: nothing heavy (fastapi, bumble, bleak) is imported at load."""

from __future__ import annotations

import gc

import pytest


@pytest.fixture
def anyio_backend() -> str:
    """Async tests run on asyncio only: the harness is built on it (trio is not a target)."""
    return "asyncio"


def pytest_collection_finish(session: pytest.Session) -> None:
    """Move what the imports and the collection made out of the collector's way, and collect the
    young generation less often: the suite allocates in bursts (Hypothesis, Schemathesis, thousands
    of answers) over a heap of modules that live as long as the process."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 20, 20)
