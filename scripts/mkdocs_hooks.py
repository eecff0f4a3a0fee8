"""MkDocs hooks: the parts of the docs that are generated from the code, so they cannot drift.

- ``<!-- cli: COMMAND -->`` in a page becomes that command's usage, arguments and options, written
  by Typer's own Markdown generator (``typer.cli.get_docs_for_click``) from ``harness.cli:app``.
  A page that has such markers must name every command of the app exactly once, so a new command
  without its section (or a section of a command that is gone) fails the build.
- ``<!-- model: transitions -->`` becomes the table of ``harness.model.TRANSITIONS``.
- ``<!-- assumptions: AREA,AREA -->`` becomes the table of the assumptions registry's entries of
  those areas (``harness.assumptions.ASSUMPTIONS``): id, mark, value, ``[assume]`` key and
  variable, what a real target would show if it is wrong, the files that use it.

Why not mkdocs-click or mkdocs-typer2: the Typer this project installs carries its own copy of
click, whose parameters are not ``click.Option``s; mkdocs-click 0.9 then drops every option in
silence and mkdocs-typer2 0.4 (native engine) fails on them, while its legacy engine shells out
to a ``typer`` found on ``PATH`` and renders nothing if that fails. Typer's own generator is the
one kept in step with Typer.
"""

from __future__ import annotations

import re
from typing import Any

from mkdocs.exceptions import PluginError

_CLI_MARKER = re.compile(r"^<!-- cli: ([\w-]+) -->$", re.MULTILINE)
_MODEL_MARKER = "<!-- model: transitions -->"
_ASSUMPTIONS_MARKER = re.compile(r"^<!-- assumptions: ([\w,]+) -->$", re.MULTILINE)
PROGRAM = "locker-harness"


class DocsError(PluginError):
    """A page and the code disagree; MkDocs reports it and the build fails."""


def cli_sections() -> dict[str, str]:
    """Each command's generated Markdown (usage, arguments, options), without its own heading."""
    import typer
    import typer.main
    from typer.cli import get_docs_for_click  # Typer's `typer MODULE utils docs`, as a function

    from harness.cli import app

    group = typer.main.get_command(app)
    context = typer.Context(group, info_name=PROGRAM)
    sections = {}
    for name in group.list_commands(context):  # type: ignore[attr-defined]
        command = group.get_command(context, name)  # type: ignore[attr-defined]
        sub = typer.Context(command, parent=context, info_name=name)
        text = get_docs_for_click(obj=command, ctx=sub, name=f"{PROGRAM} {name}", indent=2)
        # Typer writes the heading and the one-line help; the page has its own heading.
        sections[name] = text.split("\n", 1)[1].strip() + "\n"
    return sections


def transitions_table() -> str:
    """``harness.model.TRANSITIONS`` as a Markdown table, in life-cycle order."""
    from harness.model import TRANSITIONS

    rows = sorted(TRANSITIONS, key=lambda row: (row[0].value, row[1], row[2].value))
    lines = ["| from | event | to |", "|---|---|---|"]
    for before, event, after in rows:
        lines.append(f"| `{before.wire_name}` | {event.replace('_', ' ')} | `{after.wire_name}` |")
    return "\n".join(lines) + "\n"


def _cell(text: str) -> str:
    return " ".join(str(text).split()).replace("|", "\\|")


def assumptions_table(areas: list[str]) -> str:
    """The registry's entries of ``areas`` as a Markdown table, in the registry's order."""
    from harness.assumptions import ASSUMPTIONS, render_value

    entries = [entry for entry in ASSUMPTIONS.values() if entry.area.value in areas]
    if not entries:
        raise DocsError(f"no assumption of areas {areas}")
    lines = [
        "| id | mark | assumed | adopt another value with | wrong if a target shows | used by |",
        "|---|---|---|---|---|---|",
    ]
    for entry in entries:
        if entry.key is not None:
            adopt = f"`[assume] {entry.key}`, `{entry.env}`"
        elif entry.constant:
            adopt = f"the constant `{entry.constant}`"
        else:
            adopt = "a fact: a target that differs breaks a promise"
        value = render_value(entry.value)
        used = ", ".join(f"`{path}`" for path in entry.used_by)
        lines.append(
            f"| `{entry.id}` | {entry.mark} | {_cell(entry.chosen)} (`{_cell(value)}`) | {adopt} | "
            f"{_cell(entry.wrong_if) or '-'} | {used} |"
        )
    return "\n".join(lines) + "\n"


def expand_cli(markdown: str, sections: dict[str, str], where: str) -> str:
    """Replace every ``<!-- cli: NAME -->``; every command must have exactly one marker."""
    named = _CLI_MARKER.findall(markdown)
    unknown = sorted(set(named) - set(sections))
    missing = sorted(set(sections) - set(named))
    twice = sorted({name for name in named if named.count(name) > 1})
    if unknown or missing or twice:
        raise DocsError(
            f"{where}: CLI reference out of step with harness.cli:app "
            f"(no such command: {unknown}; undocumented: {missing}; twice: {twice})"
        )
    return _CLI_MARKER.sub(lambda match: sections[match.group(1)], markdown)


def on_page_markdown(markdown: str, page: Any, **_: Any) -> str:
    where = page.file.src_uri
    if _CLI_MARKER.search(markdown):
        markdown = expand_cli(markdown, cli_sections(), where)
    if _MODEL_MARKER in markdown:
        markdown = markdown.replace(_MODEL_MARKER, transitions_table())
    markdown = _ASSUMPTIONS_MARKER.sub(lambda match: assumptions_table(match.group(1).split(",")), markdown)
    return markdown
