"""The import table of docs/design.md, checked by machine: prose drifts, this does not."""

from __future__ import annotations

import ast
import functools
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "harness"

# part -> module prefixes it must never import (docs/design.md, "Layout and who may import what").
FORBIDDEN: dict[str, tuple[str, ...]] = {
    "harness/model.py": ("harness", "httpx", "bleak", "bumble", "fastapi", "locust"),
    "harness/errors.py": ("harness", "httpx", "bleak", "fastapi", "locust"),
    "harness/metrics.py": ("harness", "httpx", "bleak", "fastapi", "locust"),
    "harness/redaction.py": ("harness", "httpx", "bleak", "fastapi", "locust"),
    "harness/config.py": ("harness.api", "harness.ble", "harness.sim", "harness.flow", "locust"),
    "harness/api/": ("harness.sim", "harness.ble", "harness.flow", "harness.cli", "locust", "bleak", "bumble"),
    "harness/ble/protocol/": ("harness.", "httpx", "bleak", "bumble", "asyncio", "socket", "locust"),
    "harness/ble/": ("harness.sim", "harness.api", "harness.flow", "harness.cli", "locust", "httpx"),
    "harness/flow.py": ("harness.sim", "harness.report", "harness.cli", "locust", "allure"),
    "harness/sim/": (
        "harness.api",
        "harness.ble.client",
        "harness.ble._",
        "harness.flow",
        "harness.config",
        "harness.errors",
        "harness.cli",
        "harness.report",
        "locust",
        "httpx",
    ),
    "harness/report/": ("harness.sim", "locust"),
    "harness/history.py": ("harness.sim", "harness.api", "harness.ble", "locust"),
    # The ledger records and gives back holds through the client; it never reaches into the sandbox.
    "harness/ledger/": ("harness.sim", "harness.ble", "harness.report", "harness.run", "harness.cli", "locust"),
    # The load side builds Locust's command line and reads its results: Locust itself runs in a child.
    "harness/load/": ("locust", "gevent", "harness.sim._", "harness.ble", "harness.cli"),
    "harness/run/": ("locust", "gevent", "harness.sim._"),
    "harness/cli/": ("locust",),
    "harness/pytest_plugin.py": ("locust", "bleak", "bumble", "fastapi"),
}

# Exceptions a part is allowed despite a broader prefix above.
ALLOWED: dict[str, tuple[str, ...]] = {
    # The codec's identities carry the model's TowerId: pure code on pure code, shared with the sandbox.
    "harness/ble/protocol/": ("harness.ble.protocol", "harness.model"),
    # The sandbox's control-plane client for callers that start it (VirtualSandbox.control).
    "harness/sim/": ("httpx",),
    "harness/model.py": (),
    "harness/errors.py": (),
    "harness/metrics.py": (),
    "harness/redaction.py": (),
}

# bumble is imported on the client side only by the virtual bleak backend.
BUMBLE_ALLOWED = {"harness/ble/_virtual.py"}


def _imports(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative import: resolve against the module's package
                package = path.relative_to(ROOT).parent.parts
                base = ".".join(package[: len(package) - node.level + 1])
                names.append(f"{base}.{node.module}" if node.module else base)
            elif node.module:
                names.append(node.module)
    return names


def _part(relative: str) -> str | None:
    """The most specific part of the table a file belongs to."""
    matches = [part for part in FORBIDDEN if relative == part or (part.endswith("/") and relative.startswith(part))]
    return max(matches, key=len) if matches else None


def _violations() -> list[str]:
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        relative = path.relative_to(ROOT).as_posix()
        part = _part(relative)
        for name in _imports(path):
            if name.startswith("bumble") and relative.startswith("harness/ble/") and relative not in BUMBLE_ALLOWED:
                found.append(f"{relative} imports {name} (only the virtual backend may)")
            if part is None:
                continue
            if any(name == allowed or name.startswith(allowed + ".") for allowed in ALLOWED.get(part, ())):
                continue
            for prefix in FORBIDDEN[part]:
                if name == prefix.rstrip(".") or name.startswith(prefix if prefix.endswith(".") else prefix + "."):
                    found.append(f"{relative} imports {name}")
    return found


def test_every_part_keeps_to_its_imports() -> None:
    """No module imports what the architecture's table forbids for its part."""
    assert _violations() == []


def test_locust_is_never_imported_where_pytest_can_reach() -> None:
    """locust's gevent patching must never enter the pytest process: only loadtests/ imports it."""
    reachable = [*PACKAGE.rglob("*.py"), *(ROOT / "tests").rglob("*.py"), *(ROOT / "contracts").rglob("*.py")]
    reachable += [*(ROOT / "hw_tests").rglob("*.py")]
    offenders = [
        p.relative_to(ROOT).as_posix() for p in reachable if any(n.split(".")[0] == "locust" for n in _imports(p))
    ]
    assert offenders == []


@pytest.mark.parametrize("name", ["harness.model", "harness.errors", "harness.metrics"])
def test_leaf_modules_import_nothing_of_the_harness(name: str) -> None:
    """The model and the error tree are leaves: everything may import them, they import nothing."""
    path = ROOT / (name.replace(".", "/") + ".py")
    assert [n for n in _imports(path) if n.startswith("harness")] == []


# -- what importing the sandbox loads at run time (an __init__ pulls in more than its file says) ----

#: Modules ``import harness.sim`` (and its radio) must never load: the client it tests, and bleak.
_CLIENT_SIDE = ("harness.ble._", "harness.api", "harness.flow", "bleak")
#: The client side's configuration and error tree: ``harness/__init__.py`` imports them only on use.
_ROOT_EAGER = ("harness.config", "harness.errors")


@functools.cache
def _loaded_by_the_sandbox() -> frozenset[str]:
    """Every module a fresh interpreter holds after importing the sandbox and its virtual radio."""
    script = "import sys, harness.sim, harness.sim.radio; print(*sorted(sys.modules), sep=chr(10))"
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=60, check=True
    )
    return frozenset(done.stdout.split())


def _matching(modules: frozenset[str], prefixes: tuple[str, ...]) -> list[str]:
    return sorted(m for m in modules for p in prefixes if m == p or m.startswith(p if p.endswith("_") else p + "."))


def test_the_sandbox_loads_no_client_at_run_time() -> None:
    """Importing harness.sim and its radio loads no BLE client module, API client, flow or bleak."""
    loaded = _loaded_by_the_sandbox()
    assert "harness.ble.protocol" in loaded  # the codec the sandbox shares, and nothing more of harness.ble
    assert _matching(loaded, _CLIENT_SIDE) == []


def test_the_sandbox_loads_no_configuration_or_error_tree() -> None:
    """Importing harness.sim loads neither the harness's configuration nor its error tree."""
    assert _matching(_loaded_by_the_sandbox(), _ROOT_EAGER) == []
