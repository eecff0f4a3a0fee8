"""The public faces are small and say what they hold: derived from the modules, as httpx's test does.

Every package of the harness re-exports a short list from its private modules in ``__init__.py``.
Its ``__all__`` must be exactly what the face binds (a name imported into a face and left out of
``__all__``, or listed and not there, fails), every listed name must resolve (a lazy face's too),
and a public module's ``__all__`` names only what it has.
"""

from __future__ import annotations

import importlib
import pkgutil
import subprocess
import sys
import types

import pytest

import harness

#: Names a face binds without exporting them: ``from __future__ import annotations`` and the
#: ``TYPE_CHECKING`` guard of a lazy face.
_NOT_EXPORTS = frozenset({"annotations", "TYPE_CHECKING"})


def _public(name: str) -> bool:
    return not any(part.startswith("_") and not part.startswith("__") for part in name.split("."))


_MODULES = [info for info in pkgutil.walk_packages(harness.__path__, "harness.") if _public(info.name)]
FACES = ["harness", *(info.name for info in _MODULES if info.ispkg)]
MODULES = [info.name for info in _MODULES if not info.ispkg and info.name != "harness.sim.__main__"]


def face_problems(module: types.ModuleType) -> list[str]:
    """What is wrong with a package face: bound but not exported, exported but missing, listed twice."""
    exported = list(getattr(module, "__all__", []))
    bound = {
        name
        for name, value in vars(module).items()
        if not name.startswith("_") and name not in _NOT_EXPORTS and not isinstance(value, types.ModuleType)
    }
    problems = [f"{name} is bound but not in __all__" for name in sorted(bound - set(exported))]
    lazy = hasattr(module, "__getattr__")
    for name in exported:
        if name in vars(module):  # bound (a public submodule or __version__ may be exported too)
            continue
        if not lazy:
            problems.append(f"{name} is in __all__ but not bound")
        elif not hasattr(module, name):  # a lazy face resolves it on first use
            problems.append(f"{name} is in __all__ but does not resolve")
    problems += [f"{name} is listed twice" for name in sorted({n for n in exported if exported.count(n) > 1})]
    return problems


@pytest.mark.parametrize("name", FACES)
def test_a_package_face_exports_exactly_what_it_binds(name: str) -> None:
    """A package's ``__all__`` is the names its ``__init__`` binds (lazy names resolve on first use)."""
    module = importlib.import_module(name)
    assert hasattr(module, "__all__"), f"{name} has no __all__"
    assert face_problems(module) == []


@pytest.mark.parametrize("name", MODULES)
def test_a_public_module_exports_only_what_it_has(name: str) -> None:
    """Every name in a public module's ``__all__`` is there."""
    module = importlib.import_module(name)
    assert [n for n in getattr(module, "__all__", []) if not hasattr(module, n)] == []


def test_the_face_check_can_fail() -> None:
    """A face that binds a name it does not export, or exports one it does not bind, is named."""
    planted = types.ModuleType("planted")
    planted.__all__ = ["Kept", "Gone", "Kept"]  # type: ignore[attr-defined]
    planted.Kept = object()  # type: ignore[attr-defined]
    planted.Leaked = object()  # type: ignore[attr-defined]
    assert face_problems(planted) == [
        "Leaked is bound but not in __all__",
        "Gone is in __all__ but not bound",
        "Kept is listed twice",
    ]


def test_the_faces_found_are_the_harness_packages() -> None:
    """The walk finds every package face (so none escapes the check above)."""
    assert {"harness", "harness.api", "harness.ble", "harness.cli", "harness.ledger", "harness.load"} <= set(FACES)
    assert {"harness.report", "harness.run", "harness.sim", "harness.targets", "harness.ble.protocol"} <= set(FACES)
    assert {"harness.config", "harness.model", "harness.testing", "harness.flow"} <= set(MODULES)


def test_import_harness_stays_light() -> None:
    """``import harness`` loads neither httpx, fastapi, bleak nor bumble (the clients load on first use)."""
    code = "import sys, harness; print(sorted(m for m in ('httpx', 'fastapi', 'bleak', 'bumble') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_cli_help_does_not_import_the_sandbox() -> None:
    """``locker-harness --help`` imports no sandbox (fastapi) and no BLE stack."""
    code = (
        "import sys; from typer.testing import CliRunner; from harness.cli import app; "
        "r = CliRunner().invoke(app, ['--help']); assert r.exit_code == 0, r.output; "
        "print(sorted(m for m in ('fastapi', 'bleak', 'bumble', 'harness.sim') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
