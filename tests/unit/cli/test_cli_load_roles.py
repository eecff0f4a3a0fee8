"""``locker-harness load --master`` / ``--worker``: options that do not fit the role are one line and exit 2."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from harness.cli import app
from harness.config import ENVIRONMENT

NO_HARBOR_ENV: dict[str, str | None] = dict.fromkeys(ENVIRONMENT)
DEMO = {"HARBOR_CLIENT_ID": "demo-provider", "HARBOR_CLIENT_SECRET": "demo-secret"}


@pytest.fixture(autouse=True)
def _in_empty_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)


@pytest.mark.parametrize(
    ("args", "env", "message"),
    [
        (["--master", "--worker", "--master-host", "h"], {}, "--master and --worker exclude each other"),
        (["--expect-workers", "2"], {}, "--expect-workers applies to a distributed master: add --master"),
        (["--master-bind-port", "6000"], {}, "--master-bind-port applies to a distributed master"),
        (["--master-host", "h"], {}, "--master-host applies to a worker: add --worker"),
        (["--worker"], DEMO, "a worker needs --master-host"),
        (["--worker", "--master-host", "h", "--users", "5"], DEMO,
         "a worker takes its plan and target from the master: leave out --users"),
        (["--worker", "--master-host", "h", "--target", "sandbox", "--slo", "p99=1"], DEMO,
         "leave out --target, --slo"),
        (["--worker", "--master-host", "h"], {}, "set HARBOR_CLIENT_ID and HARBOR_CLIENT_SECRET"),
        (["--master", "--processes", "2"], DEMO, "--processes forks workers on this host"),
        (["--master", "--expect-workers", "2"], {},
         "a distributed run on local needs HARBOR_CLIENT_ID and HARBOR_CLIENT_SECRET set here and on each worker"),
    ],
)  # fmt: skip
def test_a_role_and_an_option_that_does_not_fit_it_is_a_usage_error(
    args: list[str], env: dict[str, str], message: str
) -> None:
    """Nothing starts (no sandbox, no Locust): one line on stderr naming what to change, exit 2."""
    result = CliRunner().invoke(app, ["load", *args], env={**NO_HARBOR_ENV, **env})
    assert result.exit_code == 2, result.stdout + result.stderr
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
