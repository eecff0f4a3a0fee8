"""The harness's pytest plugin (entry point ``pytest11``).

Kept light on purpose: loading it imports neither bleak, bumble, fastapi nor locust;
fixtures import what they need when they are used.
"""

from __future__ import annotations

import pytest


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("locker-harness", "Harbor Lockers harness")
    group.addoption("--harbor-target", default=None, help="local (default), sandbox, production or a URL")
    group.addoption("--harbor-tower", default=None, help="tower id (16 hex digits)")
