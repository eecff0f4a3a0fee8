"""The CI templates under docs/ci stay true: valid against their CI's schema, every harness command they call
exists, and their shell steps run green in a clean clone (offline: pip and npm from what this machine has)."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import sysconfig
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


# -- the templates run -------------------------------------------------------------------------------

ROOT = Path(__file__).resolve().parents[2]
GITHUB = ROOT / "docs" / "ci" / "github-actions.yml"
GITLAB = ROOT / "docs" / "ci" / "gitlab-ci.yml"
#: What a template's run is asked for here: the smoke stage only (a whole run takes minutes), no HTML
#: (the page is tested elsewhere); every other step runs as written.
RUN_ARGS = "--only smoke"
SCHEMAS = {GITHUB: "vendor.github-workflows", GITLAB: "vendor.gitlab-ci"}


def _flat(lines: object) -> list[str]:
    """A GitLab script list, its nested lists (YAML anchors) flattened as GitLab does."""
    if isinstance(lines, str):
        return [lines]
    return [line for item in lines or () for line in _flat(item)] if isinstance(lines, list) else []


def _github_job(job: str) -> tuple[dict[str, str], list[str]]:
    """The workflow's and the job's env, and the job's ``run`` steps in order (``uses`` steps are the
    runner's set-up: the test gives their equivalent)."""
    workflow = yaml.safe_load(GITHUB.read_text())
    steps = workflow["jobs"][job]["steps"]
    env = {**workflow.get("env", {}), **workflow["jobs"][job].get("env", {})}
    return {k: str(v) for k, v in env.items()}, [step["run"] for step in steps if "run" in step]


def _gitlab_job(job: str) -> tuple[dict[str, str], list[str], list[str]]:
    """The variables, the job's before_script with script, and its after_script (``extends`` resolved)."""
    pipeline = yaml.safe_load(GITLAB.read_text())
    definition = dict(pipeline[job])
    parent = pipeline.get(definition.get("extends", ""), {})
    merged = {**parent, **definition}
    variables = {**pipeline.get("variables", {}), **merged.get("variables", {})}
    return (
        {k: str(v) for k, v in variables.items()},
        _flat(merged.get("before_script")) + _flat(merged.get("script")),
        _flat(merged.get("after_script")),
    )


@pytest.fixture(scope="module")
def runner_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """What a CI runner gives a job, offline: a fresh Python with nothing of the harness installed whose
    pip finds this checkout's dependencies already there (no index), Node with npm's cache (no registry)."""
    if shutil.which("npm") is None or shutil.which("git") is None:
        pytest.skip("git and npm are needed to run the templates' steps")
    base = tmp_path_factory.mktemp("runner")
    venv = base / "python"
    subprocess.run([sys._base_executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    purelib = Path(sysconfig.get_paths(vars={"base": str(venv), "platbase": str(venv)})["purelib"])
    # The dependencies come from this checkout's environment (pip too), as the runner's cache would bring them.
    (purelib / "runner-dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("HARBOR_", "LOCKER_HARNESS_", "PIP_", "VIRTUAL_ENV"))
    }
    return env | {
        "PATH": f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}",
        "PIP_NO_INDEX": "1",
        "PIP_NO_BUILD_ISOLATION": "0",
        "PIP_DISABLE_PIP_VERSION_CHECK": "1",
        "npm_config_offline": "true",
        "CI": "true",
    }


def _clean_clone(destination: Path) -> str:
    """A clone of this repository with the working tree's changes to tracked files committed on top; its commit."""
    git = ["git", "-c", "user.name=ci-template-test", "-c", "user.email=ci@example.invalid"]
    subprocess.run(["git", "clone", "--quiet", "--no-hardlinks", str(ROOT), str(destination)], check=True)
    changed = subprocess.run(
        ["git", "-C", str(ROOT), "diff", "--name-only", "HEAD"], capture_output=True, text=True, check=True
    ).stdout.split()
    for name in changed:
        if (ROOT / name).is_file():
            shutil.copy2(ROOT / name, destination / name)
    subprocess.run(
        [*git, "-C", str(destination), "commit", "--quiet", "--allow-empty", "-am", "working tree"], check=True
    )
    return subprocess.run(
        ["git", "-C", str(destination), "rev-parse", "HEAD"], capture_output=True, text=True, check=True
    ).stdout.strip()


def _bash(script: str, *, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", script],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=240, check=False,
    )  # fmt: skip


def _succeeded(done: subprocess.CompletedProcess[str], script: str) -> None:
    """Assert a step ran green; a step that failed only because npm's cache lacks a package is a skip:
    offline, nothing else could bring it."""
    if done.returncode != 0 and "ENOTCACHED" in done.stdout + done.stderr:
        pytest.skip("npm's cache cannot install the pinned Allure offline: run `npm ci` once online")
    assert done.returncode == 0, f"{script}\n{done.stdout[-1500:]}\n{done.stderr[-1500:]}"


def _green_run(folder: Path) -> dict[str, object]:
    [run] = [path for path in (folder / "reports").iterdir() if (path / "summary.json").is_file()]
    assert (run / "summary.md").is_file()
    summary: dict[str, object] = json.loads((run / "summary.json").read_text())
    return summary


def test_the_github_template_s_steps_run_green_in_a_clean_clone(tmp_path: Path, runner_env: dict[str, str]) -> None:
    """The `local` job's shell steps, in order, in a clean clone (its own checkout is the harness): install
    from the checkout, npm ci, run; the summary lands in the step summary, the reports folder is there."""
    checkout = tmp_path / "checkout"
    _clean_clone(checkout)
    env, steps = _github_job("local")
    github_env, step_summary = tmp_path / "github_env", tmp_path / "step_summary.md"
    github_env.write_text("")
    env = runner_env | env | {"LOCKER_HARNESS_RUN_ARGS": RUN_ARGS, "GITHUB_ENV": str(github_env)}
    env |= {"GITHUB_STEP_SUMMARY": str(step_summary), "HARBOR_STATE_DIR": str(tmp_path / "state")}
    for script in steps:
        assert "${{" not in script, "a run step must read env, not expressions: the shell would see them"
        _succeeded(_bash(script, cwd=checkout, env=env), script)
        env |= dict(line.split("=", 1) for line in github_env.read_text().splitlines() if "=" in line)
    summary = _green_run(checkout)
    assert summary["verdict"] == "passed"
    assert "locker-harness run" in step_summary.read_text()


def test_the_gitlab_template_s_script_installs_a_pinned_commit_and_runs_green(
    tmp_path: Path, runner_env: dict[str, str]
) -> None:
    """The local job's before_script, script and after_script in a project that is not the harness, with
    LOCKER_HARNESS_REF naming a commit: the harness is fetched at that commit, installed, and runs green;
    after_script prints summary.md."""
    source = tmp_path / "harness"
    commit = _clean_clone(source)
    project = tmp_path / "project"
    project.mkdir()
    variables, script, after = _gitlab_job("locker-harness:local")
    env = runner_env | {"CI_PROJECT_DIR": str(project), "HARBOR_STATE_DIR": str(tmp_path / "state")}
    env |= {
        name: os.path.expandvars(value.replace("$CI_PROJECT_DIR", str(project))) for name, value in variables.items()
    }
    env |= {"LOCKER_HARNESS_GIT": source.as_uri(), "LOCKER_HARNESS_REF": commit, "LOCKER_HARNESS_RUN_ARGS": RUN_ARGS}
    env["npm_config_cache"] = runner_env.get("npm_config_cache", str(Path.home() / ".npm"))  # the runner's warm cache
    _succeeded(_bash("\n".join(script), cwd=project, env=env), "before_script and script")
    fetched = subprocess.run(
        ["git", "-C", str(project / "locker-harness-src"), "rev-parse", "HEAD"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert fetched.stdout.strip() == commit
    assert _green_run(project)["verdict"] == "passed"
    printed = _bash("\n".join(after), cwd=project, env=env)
    assert printed.returncode == 0 and "## locker-harness run" in printed.stdout


@pytest.mark.parametrize("template", [GITHUB, GITLAB], ids=lambda t: t.name)
def test_a_sandbox_job_without_the_second_identity_fails_loudly(template: Path, tmp_path: Path) -> None:
    """The sandbox job's first step stops it, naming what is missing, when the second identity is not set
    (the property checks cannot run, and the run would say so only at its end); with every variable set
    it goes on."""
    if template is GITHUB:
        _, steps = _github_job("sandbox")
        check = steps[0]
    else:
        _, script, _ = _gitlab_job("locker-harness:sandbox")
        check = script[0]
    given = {"HARBOR_CLIENT_ID": "a", "HARBOR_CLIENT_SECRET": "b", "HARBOR_TOWER_ID": "0100000000000014"}
    base = {"PATH": os.environ["PATH"]}
    refused = _bash(check, cwd=tmp_path, env=base | given)
    assert refused.returncode != 0
    assert "HARBOR_SECOND_CLIENT_ID" in refused.stdout + refused.stderr
    assert "HARBOR_SECOND_CLIENT_SECRET" in refused.stdout + refused.stderr
    second = {"HARBOR_SECOND_CLIENT_ID": "c", "HARBOR_SECOND_CLIENT_SECRET": "d"}
    assert _bash(check, cwd=tmp_path, env=base | given | second).returncode == 0


@pytest.mark.parametrize("template", [GITHUB, GITLAB], ids=lambda t: t.name)
def test_the_templates_pass_their_ci_schemas(template: Path, tmp_path: Path) -> None:
    """Each template validates against schemastore's schema for its CI (vendored by check-jsonschema: no
    network); a template with a misspelt key or a wrong value does not, so the check can fail."""
    checker = Path(sys.executable).with_name("check-jsonschema")
    assert checker.is_file(), "check-jsonschema comes with the dev extras"
    schema = ["--builtin-schema", SCHEMAS[template]]
    done = subprocess.run([str(checker), *schema, str(template)], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    broken = tmp_path / template.name
    wrong = ("    runs-on:", "    runs_on:") if template is GITHUB else ("\n  script:", "\n  scripts:")
    assert wrong[0] in template.read_text()
    broken.write_text(template.read_text().replace(*wrong, 1))
    refused = subprocess.run([str(checker), *schema, str(broken)], capture_output=True, text=True, check=False)
    assert refused.returncode != 0


def test_the_gitlab_sandbox_after_script_prints_the_summary_even_when_cleanup_fails(tmp_path: Path) -> None:
    """A failing after_script command ends after_script: the summary comes first, and a cleanup that
    cannot reach the sandbox (exit 4) is said, not fatal to what follows."""
    _, _, after = _gitlab_job("locker-harness:sandbox")
    run = tmp_path / "reports" / "20261207-000000-abcdef"
    run.mkdir(parents=True)
    (run / "summary.md").write_text("## locker-harness run\n")
    tools = tmp_path / "bin"
    tools.mkdir()
    fake = tools / "locker-harness"
    fake.write_text("#!/bin/sh\necho 'error: the sandbox did not answer' >&2\nexit 4\n")
    fake.chmod(0o755)
    env = {"PATH": f"{tools}{os.pathsep}{os.environ['PATH']}"}
    for command in after:  # GitLab runs each line; the first failing one ends after_script
        done = _bash(command, cwd=tmp_path, env=env)
        assert done.returncode == 0, (command, done.stdout, done.stderr)
        if "summary.md" in command:
            assert "## locker-harness run" in done.stdout
    assert "summary.md" in after[0]
