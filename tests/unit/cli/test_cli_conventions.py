"""The conventions every CLI has: ``--version``, shell completion, ``-q``, and a checked ``--run-id``."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from harness import __version__
from harness.cli import app
from harness.config import ENVIRONMENT

LOCKER_HARNESS = Path(sys.executable).with_name("locker-harness")
NO_HARBOR_ENV: dict[str, str | None] = dict.fromkeys(ENVIRONMENT)


@pytest.fixture(autouse=True)
def _in_empty_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)


def invoke(args: list[str]) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, args, env=NO_HARBOR_ENV)
    return result.exit_code, result.stdout, result.stderr


def test_version_prints_the_version_and_exits_0() -> None:
    """``locker-harness --version``: one line, the package's version, nothing started."""
    code, stdout, _ = invoke(["--version"])
    assert code == 0
    assert stdout.startswith(f"locker-harness {__version__} (Python ")
    assert len(stdout.splitlines()) == 1


def test_shell_completion_is_offered_and_completes_commands_and_options() -> None:
    """``--install-completion``/``--show-completion`` exist, and the completion names commands and options."""
    _, help_text, _ = invoke(["--help"])
    assert "--install-completion" in help_text and "--show-completion" in help_text
    environment = {key: value for key, value in os.environ.items() if not key.startswith("HARBOR_")}

    def complete(words: str, index: int) -> str:
        done = subprocess.run(
            [str(LOCKER_HARNESS)],
            env=environment
            | {"_LOCKER_HARNESS_COMPLETE": "complete_bash", "COMP_WORDS": words, "COMP_CWORD": str(index)},
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, done.stderr
        return done.stdout

    assert complete("locker-harness ru", 1).split() == ["run"]
    assert "--spawn-rate" in complete("locker-harness load --spa", 2).split()
    assert "--junit-xml" in complete("locker-harness props --ju", 2).split()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["smoke", "-q", "-v"], "--quiet and --verbose exclude each other"),
        (["run", "--run-id", "../elsewhere"], "--run-id '../elsewhere': use 1 to 100 letters"),
        (["load", "--run-id", "a b"], "--run-id 'a b'"),
        (["smoke", "--run-id", "-x"], "--run-id"),
    ],
)
def test_conflicting_or_unsafe_convention_options_are_usage_errors(args: list[str], message: str) -> None:
    """``-q`` with ``-v``, or a run id that cannot name a folder: one line, exit 2, nothing started."""
    code, _, stderr = invoke(args)
    assert code == 2, stderr
    assert message in stderr
    assert not Path("reports").exists()


def test_junit_xml_must_be_a_file_path(tmp_path: Path) -> None:
    """``--junit-xml`` naming a folder is refused before anything runs."""
    (tmp_path / "folder").mkdir()
    code, _, stderr = invoke(["run", "--junit-xml", "folder"])
    assert code == 2 and "--junit-xml" in stderr


@pytest.mark.parametrize("command", [["run", "--only", "smoke"], ["load", "-d", "1"], ["smoke"], ["hw"], ["probe"]])
@pytest.mark.parametrize("where", ["a-file/x.xml", "a-folder", "bad\0name.xml"])
def test_a_junit_path_that_cannot_be_written_is_refused_before_the_run(
    tmp_path: Path, command: list[str], where: str
) -> None:
    """``--junit-xml`` under a file, onto a folder, or with a NUL: one line and exit 2 before anything
    runs (found only at the end, it had cost the run and turned a passed one into exit 4)."""
    (tmp_path / "a-file").write_text("")
    (tmp_path / "a-folder").mkdir()
    code, stdout, stderr = invoke([*command, "--junit-xml", where])
    assert code == 2, stdout + stderr
    assert "--junit-xml" in stderr and stderr.count("\n") == 1, stderr
    assert not (tmp_path / "reports").exists()
