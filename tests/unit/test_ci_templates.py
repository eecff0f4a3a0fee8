"""The CI templates under docs/ci stay true: valid YAML, and every harness command they call exists."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
import typer.main
import yaml

from harness.cli import app

TEMPLATES = sorted((Path(__file__).resolve().parents[2] / "docs" / "ci").glob("*.yml"))
CALL = re.compile(r"locker-harness (\w[\w-]*)([^\n#]*)")


def _shell_lines(node: object, key: str | None = None) -> list[str]:
    """The shell a template runs: GitHub's ``run`` values and GitLab's ``*script`` lists."""
    if isinstance(node, dict):
        return [line for k, v in node.items() for line in _shell_lines(v, str(k))]
    if isinstance(node, list):
        return [line for item in node for line in _shell_lines(item, key)]
    if isinstance(node, str) and key is not None and (key == "run" or key.endswith("script")):
        return node.splitlines()
    return []


def _calls(template: Path) -> list[tuple[str, list[str]]]:
    """Every ``locker-harness COMMAND ARGS`` the template's shell runs."""
    calls = []
    for line in _shell_lines(yaml.safe_load(template.read_text())):
        code = line.split(" #", 1)[0]
        for match in CALL.finditer(code):
            calls.append((match.group(1), shlex.split(match.group(2))))
    return calls


def test_there_is_a_github_and_a_gitlab_template() -> None:
    """docs/ci holds both templates issue 6 asks for."""
    assert {t.name for t in TEMPLATES} >= {"github-actions.yml", "gitlab-ci.yml"}


@pytest.mark.parametrize("template", TEMPLATES, ids=lambda t: t.name)
def test_template_is_yaml_and_calls_only_real_commands_and_options(template: Path) -> None:
    """A template that calls a command or option the CLI does not have would fail in someone's CI."""
    group = typer.main.get_command(app)
    calls = _calls(template)
    assert calls, "a template that never runs the harness"
    for name, args in calls:
        command = group.commands.get(name)  # type: ignore[attr-defined]
        assert command is not None, f"{template.name}: no command {name!r}"
        options = {opt for param in command.params for opt in param.opts}
        for arg in args:
            if arg.startswith("-"):
                assert arg.split("=", 1)[0] in options, f"{template.name}: {name} has no option {arg}"
