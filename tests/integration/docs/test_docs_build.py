"""The documentation site: it builds with ``--strict`` (no broken link or anchor), and it documents
every command, option, ``HARBOR_*`` variable, bug switch and fault profile the code has.

The lists are derived from the code, so adding an option, a variable or a switch without its
documentation turns this red.
"""

from __future__ import annotations

import ast
import importlib.util
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from types import ModuleType
from typing import Annotated, Any

import pytest
import typer
import typer.main

from harness.cli import app
from harness.config import ENVIRONMENT, FILE_KEYS

ROOT = Path(__file__).resolve().parents[3]
DOCS = ROOT / "docs"
#: Where the code reads the environment: the package, the rig, the suites, the load users.
CODE = ("harness", "hw_tests", "contracts", "loadtests", "benchmarks")
VARIABLE = re.compile(r"\b(?:HARBOR|LOCKER_HARNESS)_[A-Z0-9_]*[A-Z0-9]\b")
#: Seconds the build may take: it runs in every `make test` (about 2 s on 2 idle cores).
BUILD_BUDGET_S = 60


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The site, built once for this module with ``mkdocs build --strict`` into a temporary folder."""
    out = tmp_path_factory.mktemp("site")
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=BUILD_BUDGET_S * 2,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
    )
    assert result.returncode == 0, f"mkdocs build --strict failed:\n{result.stderr[-4000:]}"
    assert time.monotonic() - started < BUILD_BUDGET_S
    return out


def _hooks() -> ModuleType:
    """``scripts/mkdocs_hooks.py``, loaded as MkDocs loads it (by path, not as a package)."""
    spec = importlib.util.spec_from_file_location("mkdocs_hooks", ROOT / "scripts" / "mkdocs_hooks.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _commands(typer_app: typer.Typer) -> dict[str, list[Any]]:
    """Each command of the app and its parameters (options and arguments)."""
    group = typer.main.get_command(typer_app)
    return {name: list(command.params) for name, command in group.commands.items()}  # type: ignore[attr-defined]


def _section(html: str, command: str) -> str:
    """The CLI reference's section of one command: from its heading to the next one."""
    start = html.find(f'id="locker-harness-{command}"')
    if start < 0:
        return ""
    end = html.find("<h2", start + 1)
    return html[start : end if end > 0 else len(html)]


def undocumented(typer_app: typer.Typer, html: str) -> list[str]:
    """Commands, options and arguments of the app missing from the built CLI reference, or without help."""
    missing = []
    for name, params in _commands(typer_app).items():
        section = _section(html, name)
        if not section:
            missing.append(name)
            continue
        for param in params:
            names = [*param.opts, *param.secondary_opts] if param.param_type_name == "option" else [param.name]
            missing += [f"{name} {flag}" for flag in names if flag not in section]
            if not (param.help or "").strip():
                missing.append(f"{name} {names[0]} (no help text)")
    return missing


def test_site_builds_strict_with_every_page(site: Path) -> None:
    """``mkdocs build --strict`` passes (no broken link or anchor) and writes a page per Markdown file."""
    pages = [path for path in DOCS.rglob("*.md")]
    for page in pages:
        relative = page.relative_to(DOCS).with_suffix("")
        built = site / (relative.parent if relative.name == "index" else relative) / "index.html"
        assert built.is_file(), f"{page} was not built"


def test_every_command_and_option_is_in_the_cli_reference(site: Path) -> None:
    """Every command of ``harness.cli:app``, and every option and argument of each, is on the reference page."""
    html = (site / "reference" / "cli" / "index.html").read_text(encoding="utf-8")
    assert len(_commands(app)) >= 13
    assert undocumented(app, html) == []


def test_an_option_without_docs_is_caught(site: Path) -> None:
    """The check fails for a command or option the reference does not show, or one without help text."""
    html = (site / "reference" / "cli" / "index.html").read_text(encoding="utf-8")
    planted = typer.Typer()

    @planted.command("smoke")
    def smoke(
        tower: Annotated[str, typer.Option("--tower", help="documented")] = "",
        secret_knob: Annotated[int, typer.Option("--secret-knob")] = 0,
    ) -> None:
        """A command of the real app, with an option the reference lacks."""

    @planted.command("teleport")
    def teleport() -> None:
        """A command nobody documented."""

    assert undocumented(planted, html) == ["smoke --secret-knob", "smoke --secret-knob (no help text)", "teleport"]


def test_the_build_refuses_a_command_without_its_section() -> None:
    """The hook stops the build when the reference page and the app disagree on the commands."""
    hooks = _hooks()
    sections = {"smoke": "usage of smoke\n", "hw": "usage of hw\n"}
    assert hooks.expand_cli("<!-- cli: smoke -->\n<!-- cli: hw -->", sections, "cli.md") == (
        "usage of smoke\n\nusage of hw\n"
    )
    with pytest.raises(hooks.DocsError, match=r"undocumented: \['hw'\]"):
        hooks.expand_cli("<!-- cli: smoke -->", sections, "cli.md")
    with pytest.raises(hooks.DocsError, match=r"no such command: \['teleport'\]"):
        hooks.expand_cli("<!-- cli: smoke -->\n<!-- cli: hw -->\n<!-- cli: teleport -->", sections, "cli.md")


def _variables_in_code() -> set[str]:
    """Every ``HARBOR_*`` and ``LOCKER_HARNESS_*`` name in a string of the code (not in ``__all__``)."""
    found: set[str] = set()
    for folder in CODE:
        for path in (ROOT / folder).rglob("*.py"):
            tree = ast.parse(path.read_text(encoding="utf-8"))
            exported = {
                id(element)
                for node in ast.walk(tree)
                if isinstance(node, ast.Assign) and any(getattr(t, "id", "") == "__all__" for t in node.targets)
                for element in ast.walk(node.value)
            }
            for node in ast.walk(tree):
                if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in exported:
                    found |= set(VARIABLE.findall(node.value))
    return found


def test_every_environment_variable_is_in_the_configuration_reference() -> None:
    """Each variable the code reads or sets, and each configuration file key, is in reference/configuration.md."""
    page = (DOCS / "reference" / "configuration.md").read_text(encoding="utf-8")
    variables = _variables_in_code() | set(ENVIRONMENT)
    assert {"HARBOR_TARGET", "HARBOR_HW_CYCLES", "HARBOR_SIM_IDENTITIES", "LOCKER_HARNESS_RUN_ID"} <= variables
    assert sorted(name for name in variables if f"`{name}`" not in page) == []
    assert sorted(key for key in FILE_KEYS if f"`{key}`" not in page) == []


def test_every_bug_switch_and_fault_profile_is_in_the_guide() -> None:
    """Each bug switch and fault profile of the sandbox has its row in guides/bug-switches.md."""
    from harness.sim import BUG_NAMES, FAULT_NAMES

    page = (DOCS / "guides" / "bug-switches.md").read_text(encoding="utf-8")
    assert len(BUG_NAMES) >= 12 and len(FAULT_NAMES) >= 9
    assert [name for name in (*BUG_NAMES, *FAULT_NAMES) if f"| `{name}` |" not in page] == []


def test_readme_is_short_and_its_links_resolve() -> None:
    """The README stays a front page (at most about 150 lines, the two commands first) and links to files that exist."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert len(readme.splitlines()) <= 150
    first_block = readme.split("```sh\n", 1)[1].split("```", 1)[0]
    assert first_block.startswith("make run") and "make test" in first_block
    targets = re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", readme)
    assert targets
    assert [target for target in targets if "://" not in target and not (ROOT / target).exists()] == []


def test_every_assumption_is_on_the_registry_page(site: Path) -> None:
    """The registry page lists every entry (generated from ``harness.assumptions``), and the configuration
    reference every ``HARBOR_ASSUME_*`` variable that adopts one."""
    from harness.assumptions import ASSUMPTIONS

    html = (site / "reference" / "assumptions" / "index.html").read_text(encoding="utf-8")
    assert [entry.id for entry in ASSUMPTIONS.values() if f"<code>{entry.id}</code>" not in html] == []
    page = (DOCS / "reference" / "configuration.md").read_text(encoding="utf-8")
    adoptable = [entry for entry in ASSUMPTIONS.values() if entry.env is not None]
    assert len(adoptable) >= 9
    assert [e.env for e in adoptable if f"`{e.env}`" not in page or f"`{e.key}`" not in page] == []
