"""The suite's own layout: every folder of ``tests/`` is a package."""

from __future__ import annotations

from pathlib import Path

TESTS = Path(__file__).resolve().parent


def test_every_test_folder_is_a_package() -> None:
    """Each folder holding Python files has an ``__init__.py``: pytest imports a test module by its full
    dotted name (``tests.unit.sim.test_world``), so two modules may share a basename in different folders."""
    folders = {path.parent for path in TESTS.rglob("*.py") if "__pycache__" not in path.parts}
    assert sorted(str(f.relative_to(TESTS)) for f in folders if not (f / "__init__.py").is_file()) == []
