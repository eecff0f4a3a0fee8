"""The architecture of ``docs/explanation/architecture.md``, checked by machine: prose drifts, this does not.

The page's two tables ("Parts and who may import what", "Libraries kept in their place") are read
from the page itself, and each rule of its "Rules the import test enforces" is checked here: who
may import what, libraries in their place, no import circle among modules nor among packages, no
private module imported from outside its package, and importing the sandbox loads no client. Each
checker runs on a folder, so every rule is also shown to fail on a small planted module tree.
"""

from __future__ import annotations

import ast
import functools
import graphlib
import re
import subprocess
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
#: The document this test enforces: its tables are the source, this file only reads them.
ARCHITECTURE = ROOT / "docs" / "explanation" / "architecture.md"
#: Folders whose code the library and private-module rules cover (the harness's own tests may
#: reach into private modules to test them, so the private rule leaves ``tests/`` out).
CODE_FOLDERS = ("harness", "contracts", "hw_tests", "loadtests", "benchmarks", "tests")
PUBLIC_FOLDERS = ("harness", "contracts", "hw_tests", "loadtests", "benchmarks")


# -- the document's tables ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Part:
    """A row of the parts table."""

    name: str
    where: tuple[str, ...]
    may_import: frozenset[str]
    never: tuple[str, ...]


def _rows(text: str, heading: str) -> list[list[str]]:
    """The body rows of the first Markdown table under ``## heading``, as lists of cell texts."""
    section = text.split(f"\n## {heading}\n", 1)[1].split("\n## ", 1)[0]
    lines = [line.strip() for line in section.splitlines() if line.strip().startswith("|")]
    return [[cell.strip() for cell in line.strip("|").split("|")] for line in lines[2:]]


def _spans(cell: str) -> tuple[str, ...]:
    return tuple(re.findall(r"`([^`]+)`", cell))


def read_parts(text: str) -> list[Part]:
    parts = []
    for name, where, may_import, never in _rows(text, "Parts and who may import what"):
        allowed = frozenset(item.strip() for item in may_import.split(",") if item.strip() not in ("", "—"))
        parts.append(Part(name, _spans(where), allowed, _spans(never)))
    return parts


def read_libraries(text: str) -> dict[str, tuple[str, ...]]:
    return {
        library: _spans(places)
        for cell, places in _rows(text, "Libraries kept in their place")
        for library in _spans(cell)
    }


@functools.cache
def _document() -> str:
    return ARCHITECTURE.read_text(encoding="utf-8")


# -- the import graph --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Import:
    """One imported name, as written (relative imports resolved), where it stands."""

    name: str
    line: int


def module_name(root: Path, path: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _files(root: Path, folders: Iterable[str]) -> list[Path]:
    return sorted(path for folder in folders if (root / folder).is_dir() for path in (root / folder).rglob("*.py"))


def imports(root: Path, path: Path, known: Mapping[str, Path] | None = None) -> list[Import]:
    """Every import of ``path``: at the top, in a function, under ``TYPE_CHECKING`` alike.

    ``from x import y`` names ``x.y`` when that is a module of ``known`` (a submodule), else ``x``.
    """
    me = module_name(root, path)
    package = me if path.name == "__init__.py" else me.rpartition(".")[0]
    found: list[Import] = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            found += [Import(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, *([node.module] if node.module else [])])
            for alias in node.names:
                child = f"{base}.{alias.name}"
                found.append(Import(child if known is not None and child in known else base, node.lineno))
    return found


def harness_modules(root: Path) -> dict[str, Path]:
    return {module_name(root, path): path for path in _files(root, ["harness"])}


def _module_of(name: str, known: Mapping[str, Path]) -> str | None:
    """The module of ``known`` an imported name lands in (its longest prefix that is one)."""
    while name and name not in known:
        name = name.rpartition(".")[0]
    return name or None


def import_graph(root: Path) -> dict[str, set[str]]:
    """Module -> the harness modules it imports (itself left out)."""
    known = harness_modules(root)
    graph: dict[str, set[str]] = {}
    for name, path in known.items():
        targets = {_module_of(found.name, known) for found in imports(root, path, known)}
        graph[name] = {target for target in targets if target is not None and target != name}
    return graph


def package_of(module: str) -> str:
    """The top-level part of ``harness`` a module belongs to (``harness.ble.protocol._x`` -> ``harness.ble``)."""
    return ".".join(module.split(".")[:2])


def package_graph(graph: Mapping[str, set[str]]) -> dict[str, set[str]]:
    packages: dict[str, set[str]] = {}
    for module, targets in graph.items():
        mine = package_of(module)
        packages.setdefault(mine, set()).update(package_of(t) for t in targets if package_of(t) != mine)
    return packages


def circle(graph: Mapping[str, set[str]]) -> list[str]:
    """One import circle of ``graph`` (its modules, the first repeated at the end), or ``[]``."""
    try:
        graphlib.TopologicalSorter(graph).prepare()
    except graphlib.CycleError as cycle:
        return list(cycle.args[1])
    return []


# -- the rules ----------------------------------------------------------------------------------------


def _owner(path: str, parts: Iterable[Part]) -> Part | None:
    """The most specific part whose ``where`` holds the file ``path`` (relative, posix)."""
    matches = [
        (len(where), part)
        for part in parts
        for where in part.where
        if path == where or (where.endswith("/") and path.startswith(where))
    ]
    return max(matches, key=lambda match: match[0])[1] if matches else None


def _matches(name: str, library: str) -> bool:
    return name == library or name.startswith(library + ".")


def part_violations(root: Path, parts: list[Part]) -> list[str]:
    """Rule 1: every harness module imports only its own part and the parts its row may import."""
    known = harness_modules(root)
    found = []
    for module, path in known.items():
        relative = path.relative_to(root).as_posix()
        mine = _owner(relative, parts)
        if mine is None:
            found.append(f"{relative} belongs to no part of the table")
            continue
        for imported in imports(root, path, known):
            for library in mine.never:
                if _matches(imported.name, library):
                    found.append(f"{relative}:{imported.line} imports {imported.name}, which {mine.name} never imports")
            target = _module_of(imported.name, known)
            if target is None or target == module:
                continue
            theirs = _owner(known[target].relative_to(root).as_posix(), parts)
            if theirs is not None and theirs is not mine and theirs.name not in mine.may_import:
                found.append(f"{relative}:{imported.line} imports {target} ({theirs.name}): {mine.name} may not")
    return found


def library_violations(root: Path, libraries: Mapping[str, tuple[str, ...]]) -> list[str]:
    """Rule 2: a library of the table is imported only under the paths of its row."""
    found = []
    for path in _files(root, CODE_FOLDERS):
        relative = path.relative_to(root).as_posix()
        for imported in imports(root, path):
            for library, places in libraries.items():
                allowed = any(
                    relative == place or (place.endswith("/") and relative.startswith(place)) for place in places
                )
                if _matches(imported.name, library) and not allowed:
                    found.append(f"{relative}:{imported.line} imports {imported.name} (only in {', '.join(places)})")
    return found


def private_violations(root: Path, folders: Iterable[str] = PUBLIC_FOLDERS) -> list[str]:
    """Rule 5: ``harness.X._y`` is imported only by modules of ``harness.X``."""
    found = []
    for path in _files(root, folders):
        me = module_name(root, path)
        for imported in imports(root, path, harness_modules(root)):
            parts = imported.name.split(".")
            if parts[0] != "harness":
                continue
            private = next(
                (i for i, part in enumerate(parts) if part.startswith("_") and not part.startswith("__")), None
            )
            if private is None:
                continue
            owner = ".".join(parts[:private])
            if me != owner and not me.startswith(owner + "."):
                found.append(
                    f"{path.relative_to(root).as_posix()}:{imported.line} imports {imported.name}, private to {owner}"
                )
    return found


# -- the repository keeps them ---------------------------------------------------------------------


def test_the_document_names_every_module_and_every_part_it_refers_to() -> None:
    """Each module of harness/ has a part, each part's place exists, each "may import" names a part."""
    parts = read_parts(_document())
    names = {part.name for part in parts}
    assert len(names) == len(parts) and len(parts) >= 20
    assert [f"{p.name}: {w}" for p in parts for w in p.where if not (ROOT / w).exists()] == []
    assert [f"{p.name}: {other}" for p in parts for other in p.may_import if other not in names] == []
    libraries = read_libraries(_document())
    assert {"locust", "gevent", "bleak", "bumble", "fastapi"} <= set(libraries)


def test_every_part_keeps_to_its_imports() -> None:
    """Rule 1: no harness module imports a part or a library its row of the parts table does not allow."""
    assert part_violations(ROOT, read_parts(_document())) == []


def test_libraries_stay_in_their_place() -> None:
    """Rule 2: locust and gevent never where pytest can reach, bleak and bumble where the table says, ..."""
    assert library_violations(ROOT, read_libraries(_document())) == []


def test_no_import_circle_among_modules() -> None:
    """Rule 3: the harness's modules import each other without a circle (every import counts)."""
    assert circle(import_graph(ROOT)) == []


def test_no_import_circle_among_packages() -> None:
    """Rule 4: the harness's packages (api, ble, cli, load, run, sim, targets...) import each other without a circle."""
    assert circle(package_graph(import_graph(ROOT))) == []


def test_no_private_module_is_imported_from_outside_its_package() -> None:
    """Rule 5: ``harness.X._y`` is imported by ``harness.X`` alone; contracts, rigs, locustfiles and benchmarks too."""
    assert private_violations(ROOT) == []


def test_run_load_testing_and_the_plugin_never_import_the_command_line() -> None:
    """The wiring layer stands below the command line: nothing but the command line imports it."""
    graph = import_graph(ROOT)
    assert (
        sorted(
            m
            for m, targets in graph.items()
            if package_of(m) != "harness.cli" and any(package_of(t) == "harness.cli" for t in targets)
        )
        == []
    )


# -- each rule can fail: a planted module tree breaks it, and the same checker says so -----------------


def plant(root: Path, files: Mapping[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return root


_PLANTED_TABLE = """
## Parts and who may import what

| part | where | may import | never imports |
|---|---|---|---|
| low | `harness/low.py` | — | `httpx` |
| high | `harness/high/` | low | — |

## Libraries kept in their place

| library | only in |
|---|---|
| `locust` | `loadtests/` |
"""


def test_a_planted_import_against_the_table_is_caught(tmp_path: Path) -> None:
    """A leaf importing the part above it, and a library its row forbids inside a function, are both named."""
    root = plant(
        tmp_path,
        {
            "harness/__init__.py": "",
            "harness/low.py": "def f():\n    import httpx\n    from harness.high import g\n",
            "harness/high/__init__.py": "from harness import low\n",
            "harness/stray.py": "",
        },
    )
    found = part_violations(root, read_parts(_PLANTED_TABLE))
    assert "harness/low.py:2 imports httpx, which low never imports" in found
    assert "harness/low.py:3 imports harness.high (high): low may not" in found
    assert "harness/stray.py belongs to no part of the table" in found
    assert not [line for line in found if line.startswith("harness/high")]  # high may import low


def test_a_planted_library_out_of_its_place_is_caught(tmp_path: Path) -> None:
    """locust imported by a test module, even under TYPE_CHECKING, is named; in loadtests/ it is allowed."""
    root = plant(
        tmp_path,
        {
            "loadtests/locustfile.py": "import locust\n",
            "tests/test_x.py": "import typing\nif typing.TYPE_CHECKING:\n    from locust.env import Environment\n",
        },
    )
    assert library_violations(root, read_libraries(_PLANTED_TABLE)) == [
        "tests/test_x.py:3 imports locust.env (only in loadtests/)"
    ]


def test_a_planted_module_circle_is_caught(tmp_path: Path) -> None:
    """Two modules that import each other, one of them only for type checking, make a circle."""
    root = plant(
        tmp_path,
        {
            "harness/__init__.py": "",
            "harness/a.py": "from harness.b import B\n",
            "harness/b.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from harness.a import A\nB = 1\n",
            "harness/c.py": "from harness import a\n",
        },
    )
    found = circle(import_graph(root))
    assert set(found) == {"harness.a", "harness.b"} and found[0] == found[-1]


def test_a_planted_package_circle_is_caught(tmp_path: Path) -> None:
    """p.x imports q.y and q.y imports p.z: no module circle, a package circle p -> q -> p."""
    root = plant(
        tmp_path,
        {
            "harness/__init__.py": "",
            "harness/p/__init__.py": "",
            "harness/p/x.py": "from harness.q import y\n",
            "harness/p/z.py": "",
            "harness/q/__init__.py": "",
            "harness/q/y.py": "def late():\n    from harness.p import z\n",
        },
    )
    graph = import_graph(root)
    assert circle(graph) == []
    assert set(circle(package_graph(graph))) == {"harness.p", "harness.q"}


def test_a_planted_private_import_is_caught(tmp_path: Path) -> None:
    """``harness.p._inner`` may be imported within ``harness.p`` only: from another package or a suite, it is named."""
    root = plant(
        tmp_path,
        {
            "harness/__init__.py": "",
            "harness/p/__init__.py": "from harness.p._inner import thing\n",
            "harness/p/_inner.py": "thing = 1\n",
            "harness/p/sub/__init__.py": "from harness.p import _inner\n",
            "harness/r.py": "from harness.p._inner import thing\n",
            "contracts/conftest.py": "import harness.p._inner\n",
        },
    )
    assert private_violations(root) == [
        "contracts/conftest.py:1 imports harness.p._inner, private to harness.p",
        "harness/r.py:1 imports harness.p._inner, private to harness.p",
    ]


# -- what importing the sandbox loads at run time (an __init__ pulls in more than its file says) ----

#: Modules ``import harness.sim`` (and its radio) must never load: the client it tests, and bleak.
_CLIENT_SIDE = ("harness.ble._", "harness.api", "harness.flow", "harness.targets", "bleak")
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
    """Rule 6: importing harness.sim and its radio loads no BLE client module, API client, flow or bleak."""
    loaded = _loaded_by_the_sandbox()
    assert "harness.ble.protocol" in loaded  # the codec the sandbox shares, and nothing more of harness.ble
    assert _matching(loaded, _CLIENT_SIDE) == []


def test_the_sandbox_loads_no_configuration_or_error_tree() -> None:
    """Rule 6: importing harness.sim loads neither the harness's configuration nor its error tree."""
    assert _matching(_loaded_by_the_sandbox(), _ROOT_EAGER) == []
