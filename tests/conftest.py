"""Shared test fixtures, kept light: nothing heavy (fastapi, bumble, bleak) is imported at load."""

from __future__ import annotations

import pytest


@pytest.fixture
def anyio_backend() -> str:
    """Async tests run on asyncio only: the harness is built on it (trio is not a target)."""
    return "asyncio"
