"""The command line's bad inputs: one line on stderr, the documented exit code, never a traceback.

These cases fail before any sandbox or network is needed; the ones that need a running target
(wrong credentials, unknown tower, unreachable host) are in tests/integration/cli.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from harness.cli import app
from harness.cli._common import Output, run_command
from harness.config import ENVIRONMENT
from harness.redaction import Redactor

NO_HARBOR_ENV: dict[str, str | None] = dict.fromkeys(ENVIRONMENT)


@pytest.fixture(autouse=True)
def _in_empty_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # no config file is found unless a test writes one


def invoke(args: list[str], env: dict[str, str] | None = None) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, args, env={**NO_HARBOR_ENV, **(env or {})})
    return result.exit_code, result.stdout, result.stderr


CASES = [
    ("sandbox without credentials", ["smoke", "--target", "sandbox", "--tower", "0100000000000014"], {}, 2,
     "target sandbox needs credentials: set HARBOR_CLIENT_ID and HARBOR_CLIENT_SECRET"),
    ("sandbox without secret", ["smoke", "--target", "sandbox"], {"HARBOR_CLIENT_ID": "me"}, 2,
     "set HARBOR_CLIENT_SECRET"),
    ("sandbox without tower", ["smoke", "--target", "sandbox"], {"HARBOR_CLIENT_ID": "me", "HARBOR_CLIENT_SECRET": "x"},
     2, "no tower for target sandbox: pass --tower or set HARBOR_TOWER_ID"),
    ("unknown target name", ["smoke", "--target", "staging"], {}, 2, "unknown target 'staging'"),
    ("malformed URL", ["smoke", "--target", "http://"], {}, 2, "is not a valid URL"),
    ("malformed URL port", ["smoke", "--target", "https://host:70000"], {}, 2, "is not a valid URL"),
    ("malformed URL from env", ["smoke"], {"HARBOR_TARGET": "ftp://x"}, 2,
     "HARBOR_TARGET 'ftp://x' is not a valid URL"),
    ("production write without opt-in", ["smoke", "--target", "production"], {}, 2,
     "refusing to run a delivery (it reserves a locker and creates tokens) on production: "
     "pass --i-understand-this-writes-to-production"),
    ("production opt-in misspelled", ["smoke", "--target", "production"], {"HARBOR_ALLOW_PRODUCTION_WRITES": "yes"},
     2, "must be exactly yes-write-to-production"),
    ("bad tower id", ["smoke", "--tower", "xyz"], {}, 2, "--tower 'xyz' is not a tower id"),
    ("bad tower id from env", ["smoke"], {"HARBOR_TOWER_ID": "12"}, 2, "HARBOR_TOWER_ID '12' is not a tower id"),
    ("unknown locker type", ["smoke", "--locker-type", "huge"], {}, 2, "unknown locker type 'huge'"),
    ("bad status timeout", ["smoke", "--status-timeout", "0"], {}, 2, "must be more than 0"),
    ("missing config file", ["smoke", "--config", "nope.toml"], {}, 2, "configuration file nope.toml does not exist"),
    ("sim bug on a remote target", ["smoke", "--target", "sandbox", "--sim-bug", "double_booking"],
     {"HARBOR_CLIENT_ID": "me", "HARBOR_CLIENT_SECRET": "x", "HARBOR_TOWER_ID": "0100000000000014"}, 2,
     "--sim-bug, --sim-fault and --sim-dialect apply to --target local only"),
    ("sim dialect on a remote target", ["contract", "--target", "sandbox", "--sim-dialect", "create_200"],
     {"HARBOR_CLIENT_ID": "me", "HARBOR_CLIENT_SECRET": "x", "HARBOR_TOWER_ID": "0100000000000014"}, 2,
     "--sim-bug and --sim-dialect apply to --target local only"),
    ("probe in a dialect on a remote target", ["probe", "--target", "sandbox", "--sim-dialect", "create_200"],
     {"HARBOR_CLIENT_ID": "me", "HARBOR_CLIENT_SECRET": "x", "HARBOR_TOWER_ID": "0100000000000014"}, 2,
     "--sim-dialect applies to --target local only"),
    ("unknown sim dialect", ["smoke", "--sim-dialect", "spoken_french"], {}, 2,
     "the virtual sandbox refused the dialect: unknown dialect(s): spoken_french"),
    ("sim on a public address", ["sim", "--host", "0.0.0.0"], {}, 2, "refusing to serve on 0.0.0.0"),
    ("sim in an unknown dialect", ["sim", "--dialect", "spoken_french"], {}, 2, "--dialect: unknown dialect(s)"),
    ("sim webhook off loopback", ["sim", "--webhook", "http://example.com/hook"], {}, 2,
     "--webhook: webhook URL 'http://example.com/hook' is not on loopback"),
    ("sim on a host name", ["sim", "--host", "example.com"], {}, 2, "refusing to serve on example.com"),
]  # fmt: skip


@pytest.mark.parametrize(("args", "env", "code", "message"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_is_one_line_and_an_exit_code(args: list[str], env: dict[str, str], code: int, message: str) -> None:
    """Each bad input prints exactly one line on stderr, naming the fix, and exits with its code."""
    exit_code, stdout, stderr = invoke(args, env)
    assert exit_code == code, stderr
    assert stderr.count("\n") == 1, stderr
    assert stderr.startswith("error: ")
    assert message in stderr
    assert "Traceback" not in stdout + stderr


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('client_secret = "oops"', "client_secret found in"),
        ("target = [", "is not valid TOML"),
        ("colour = 1", "unknown key 'colour'"),
    ],
)
def test_bad_config_file_is_one_line(tmp_path: Path, text: str, message: str) -> None:
    """A config file with a secret, bad TOML or an unknown key stops the command with one line and exit 2."""
    (tmp_path / "locker-harness.toml").write_text(text + "\n")
    exit_code, stdout, stderr = invoke(["smoke"])
    assert exit_code == 2
    assert stderr.count("\n") == 1 and message in stderr
    assert "oops" not in stdout + stderr
    assert "Traceback" not in stdout + stderr


def test_secret_from_environment_never_printed_on_error() -> None:
    """A configuration error never echoes the client secret given in the environment."""
    env = {"HARBOR_CLIENT_ID": "me", "HARBOR_CLIENT_SECRET": "do-not-print-me", "HARBOR_TARGET": "sandbox"}
    exit_code, stdout, stderr = invoke(["smoke", "--verbose"], env)
    assert exit_code == 2
    assert "do-not-print-me" not in stdout + stderr


def test_help_lists_the_commands() -> None:
    """``--help`` shows smoke and sim."""
    result = CliRunner().invoke(app, ["--help"])
    assert result.exit_code == 0
    assert "smoke" in result.stdout and "sim" in result.stdout


def test_log_records_are_redacted(monkeypatch: pytest.MonkeyPatch) -> None:
    """Whatever a part logs during a command reaches stderr through the redactor."""
    redactor = Redactor(["log-secret-value"])
    monkeypatch.setattr("harness.cli._common.redactor", lambda: redactor)

    def body(out: Output) -> int:
        logging.getLogger("harness.test").warning("token %s refused", "log-secret-value")
        return 0

    app_ = typer.Typer()
    app_.command()(lambda: run_command(body, "logs", verbose=False))
    result = CliRunner().invoke(app_, [])
    assert result.exit_code == 0
    assert "WARNING harness.test: token [REDACTED] refused" in result.stderr
    assert "log-secret-value" not in result.stderr
