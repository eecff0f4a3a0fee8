"""The CLI in this process, as a user's shell would call it: no ``HARBOR_*`` of the machine's leaks in."""

from __future__ import annotations

from typer.testing import CliRunner

from harness.cli import app
from harness.config import ENVIRONMENT

NO_HARBOR_ENV: dict[str, str | None] = dict.fromkeys(ENVIRONMENT)
#: The sandbox's demo identity.
DEMO = {"HARBOR_CLIENT_ID": "demo-provider", "HARBOR_CLIENT_SECRET": "demo-secret"}


def invoke(args: list[str], env: dict[str, str] | None = None) -> tuple[int, str, str]:
    """``locker-harness ARGS``: its exit code, stdout and stderr."""
    result = CliRunner().invoke(app, args, env={**NO_HARBOR_ENV, **(env or {})})
    return result.exit_code, result.stdout, result.stderr
