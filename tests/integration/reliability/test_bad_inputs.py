"""Bad inputs, run as the real command line: one clear line, the documented exit code, no traceback, nothing held.

Rows that reach a sandbox use one served on loopback (as a URL target) and check its state afterwards; rows on
``local`` check the cleanup ledger instead (the embedded sandbox ends with the command). The pure usage cases
that need no target at all are also pinned in ``tests/unit/cli``; here each row proves nothing was left held.
"""

from __future__ import annotations

import itertools
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from typer.testing import CliRunner

from harness.cli import app
from harness.config import ENVIRONMENT
from harness.errors import ExitCode
from harness.ledger import LEDGER_FILE, Ledger
from harness.sim import VirtualSandbox

TOWER = "0100000000000014"
LOCKER_HARNESS = Path(sys.executable).with_name("locker-harness")
DEMO = {"HARBOR_CLIENT_ID": "demo-provider", "HARBOR_CLIENT_SECRET": "demo-secret", "HARBOR_TOWER_ID": TOWER}


@pytest.fixture(scope="module")
def sandbox() -> Iterator[VirtualSandbox]:
    with VirtualSandbox() as running:
        yield running


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _tokens_expire_at_once(sandbox: VirtualSandbox) -> Callable[[], None]:
    """The sandbox's bearer tokens expire before their first use: its clock leaps 400 s at every look."""
    authority = sandbox.app.authority
    leaps = itertools.count()
    original = authority._wall
    authority._wall = lambda: time.time() + 400 * next(leaps)
    return lambda: setattr(authority, "_wall", original)


@dataclass(frozen=True)
class Bad:
    """One bad input: the command, its environment and files, and what it must answer."""

    name: str
    args: list[str]
    code: int
    message: str
    env: dict[str, str] = field(default_factory=dict)
    files: dict[str, str] = field(default_factory=dict)
    #: Reaches the loopback sandbox (``{url}`` in args): its lockers are checked afterwards.
    sandbox: bool = False
    setup: Callable[[VirtualSandbox], Callable[[], None]] | None = None


CASES = [
    Bad("malformed config file", ["smoke"], 2, "locker-harness.toml is not valid TOML",
        files={"locker-harness.toml": "target = [\n"}),
    Bad("secret in the config file", ["smoke"], 2, "client_secret found in ",
        files={"locker-harness.toml": 'client_secret = "s3cr3t-from-a-file"\n'}),
    Bad("unknown option", ["smoke", "--frobnicate"], 2, "No such option: --frobnicate"),
    Bad("unknown command", ["smokee"], 2, "No such command 'smokee'. Did you mean 'smoke'"),
    Bad("bad URL", ["smoke", "--target", "http://"], 2, "--target 'http://' is not a valid URL"),
    Bad("unreachable host", ["smoke", "--target", "{closed}"], 4, "does not answer", env=DEMO),
    Bad("wrong credentials", ["smoke", "--target", "{url}"], 2, "refused client 'demo-provider'",
        env=DEMO | {"HARBOR_CLIENT_SECRET": "not-the-secret"}, sandbox=True),
    Bad("expired bearer token", ["smoke", "--target", "{url}"], 1, "answered 401 Unauthorized", env=DEMO,
        sandbox=True, setup=_tokens_expire_at_once),
    Bad("unknown tower", ["smoke", "--target", "{url}", "--tower", "0100000000000099"], 2,
        "tower 0100000000000099 is not known to target", env=DEMO, sandbox=True),
    Bad("locker id that is a door label", ["smoke", "--target", "{url}", "--locker", "14"], 2,
        "14 is the door label of locker 1414, pass its id", env=DEMO, sandbox=True),
    Bad("locker id that is not a number", ["smoke", "--locker", "A14"], 2, "Invalid value for '--locker'"),
    Bad("negative duration", ["smoke", "--status-timeout", "-1"], 2, "must be more than 0"),
    Bad("negative budget", ["run", "--budget", "-5"], 2, "Invalid value for '--budget'"),
    Bad("huge duration", ["smoke", "--status-timeout", "1e9"], 2, "at most 600 seconds"),
    Bad("huge load duration", ["load", "--duration", "1e9"], 2, "duration must be between 1 and 3600"),
    Bad("client_info too long", ["smoke", "--client-info", "x" * 501], 2, "--client-info is 501 characters"),
    Bad("client_info option without its value", ["smoke", "--client-info"], 2,
        "Option '--client-info' requires an argument"),
    Bad("empty client_info is what Harbor asks for", ["smoke", "--target", "{url}", "--client-info", ""], 0, "",
        env=DEMO, sandbox=True),
    Bad("BLE unavailable", ["smoke"], 4, "no Bluetooth adapter is reachable", env={"HARBOR_BLE": "bleak"}),
    Bad("read-only report folder", ["run", "--only", "smoke"], 2, "cannot write reports under blocked/reports",
        env={"HARBOR_REPORTS_DIR": "blocked/reports"}, files={"blocked": ""}),
    Bad("unwritable state folder", ["smoke"], 2, "cannot open the cleanup ledger",
        env={"HARBOR_STATE_DIR": "blocked/state"}, files={"blocked": ""}),
    Bad("unknown target name", ["smoke", "--target", "staging"], 2, "unknown target 'staging'"),
    Bad("production write without opt-in", ["smoke", "--target", "production"], 2,
        "refusing to run a delivery (it reserves a locker and creates tokens) on production"),
    Bad("load against production", ["load", "--target", "production"], 2, "load against production is refused"),
    Bad("non-loopback sim host", ["sim", "--host", "0.0.0.0"], 2, "refusing to serve on 0.0.0.0"),
    Bad("unknown bug switch", ["smoke", "--sim-bug", "no_such_bug"], 2, "unknown bug switch(es): no_such_bug"),
    Bad("unknown fault profile", ["smoke", "--sim-fault", "nope"], 2, "unknown fault profile 'nope'"),
    Bad("sandbox without credentials", ["smoke", "--target", "sandbox", "--tower", TOWER], 2,
        "target sandbox needs credentials: set HARBOR_CLIENT_ID and HARBOR_CLIENT_SECRET"),
    Bad("timeout that is not a number", ["smoke"], 2, "HARBOR_TIMEOUT must be a number of seconds",
        env={"HARBOR_TIMEOUT": "soon"}),
    Bad("unknown stage", ["run", "--only", "bogus"], 2, "stage 'bogus' is not a stage"),
    Bad("empty --only", ["run", "--only", ""], 2, "--only names no stage"),
    Bad("rate that is not a number", ["load", "--rate", "nan"], 2, "--rate must be a finite number, not nan"),
    Bad("infinite rate", ["load", "--rate", "inf"], 2, "--rate must be a finite number, not inf"),
    Bad("history limit beyond reason", ["history", "-n", "99999999999999999999"], 2, "Invalid value for '--limit'"),
    Bad("open gate that is not a number", ["hw", "--open-p95-ms", "nan"], 2, "--open-p95-ms must be a finite"),
    Bad("open gate below zero", ["hw", "--open-p95-ms", "-1"], 2, "--open-p95-ms must be a finite"),
    Bad("infinite run budget", ["run", "--budget", "inf"], 2, "Invalid value for '--budget'"),
    Bad("infinite soak memory margin", ["soak", "--rss-margin", "inf"], 2,
        "--rss-margin must be a finite fraction of 0 or more, not inf"),
    Bad("soak memory margin that is not a number", ["soak", "--rss-margin", "nan"], 2,
        "Invalid value for '--rss-margin'"),
    Bad("report of a file that is no run", ["report", "/etc/passwd"], 2, "/etc/passwd is not a run folder"),
    Bad("tool that is not a table", ["smoke"], 2, "tool in", files={"pyproject.toml": "tool = 5\n"}),
    Bad("config nested too deep", ["smoke"], 2, "nested too deeply",
        files={"locker-harness.toml": "a = " + "[" * 5000 + "]" * 5000 + "\n"}),
    Bad("config that is a device", ["smoke"], 2, "/dev/zero is not a regular file", env={"HARBOR_CONFIG": "/dev/zero"}),
    Bad("config that is a folder", ["smoke"], 2, "configuration file . is a folder", env={"HARBOR_CONFIG": "."}),
    Bad("NUL in the state folder", ["smoke"], 2, "holds a control character",
        files={"locker-harness.toml": 'state_dir = "a\\u0000b"\n'}),
    Bad("too many Locust processes", ["load", "--processes", "100000"], 2, "processes must be between 1 and"),
    Bad("production spelt with an IDNA dot", ["smoke", "--target", "https://api.harborlockers\uff0ecom"], 2,
        "refusing to run a delivery (it reserves a locker and creates tokens) on production"),
]  # fmt: skip


def _held(sandbox: VirtualSandbox) -> dict[int, str]:
    return {
        x["id"]: x["status"]
        for x in sandbox.control.state()["lockers"]
        if x["status"] not in ("available", "out_of_service") or x["door_open"]
    }


def _open_ledger_rows(workdir: Path) -> list[int]:
    path = workdir / ".locker-harness" / LEDGER_FILE
    if not path.is_file():
        return []
    with Ledger(path) as ledger:
        return [row.id for row in ledger.entries(open_only=True)]


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_bad_input(case: Bad, sandbox: VirtualSandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each bad input prints one line on stderr, exits with its documented code, shows no traceback, and leaves
    no locker held."""
    monkeypatch.chdir(tmp_path)
    for name, text in case.files.items():
        (tmp_path / name).write_text(text)
    sandbox.control.reset()
    undo = case.setup(sandbox) if case.setup is not None else None
    args = [a.format(url=sandbox.url, closed=f"http://127.0.0.1:{_closed_port()}") for a in case.args]
    try:
        result = CliRunner().invoke(app, args, env={**dict.fromkeys(ENVIRONMENT), **case.env})
    finally:
        if undo is not None:
            undo()
    stdout, stderr = result.stdout, result.stderr
    assert result.exit_code == case.code, stdout + stderr
    assert "Traceback" not in stdout + stderr
    if case.code == ExitCode.OK:
        assert stderr == ""
    else:
        assert stderr.count("\n") == 1 and stderr.startswith("error: "), stderr
        assert case.message in stderr
    assert "s3cr3t-from-a-file" not in stdout + stderr
    if case.sandbox:
        assert _held(sandbox) == {}
    assert _open_ledger_rows(tmp_path) == []


def test_table_has_the_issue_s_rows() -> None:
    """The table holds at least twenty bad inputs, each a distinct case."""
    assert len(CASES) >= 20
    assert len({case.name for case in CASES}) == len(CASES)


def test_interrupted_run_gives_back_and_exits_130(sandbox: VirtualSandbox, tmp_path: Path) -> None:
    """Ctrl-C while the drop-off token is being asked for: one line, exit 130, the reservation given back."""
    sandbox.control.reset()
    sandbox.control.set_faults("latency", ms=1500, paths=[f"/api/v1/towers/{TOWER}/lockers/1401/dropoff-locker-tokens"])
    env = {k: v for k, v in os.environ.items() if k not in ENVIRONMENT} | DEMO
    ledger = tmp_path / ".locker-harness" / LEDGER_FILE
    with subprocess.Popen(
        [str(LOCKER_HARNESS), "smoke", "--target", sandbox.url],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as run:
        deadline = time.monotonic() + 30
        while not _asked_for_dropoff(ledger):
            assert run.poll() is None and time.monotonic() < deadline, "the run never asked for a drop-off token"
            time.sleep(0.02)  # the pace of a bounded poll of another process's file
        run.send_signal(signal.SIGINT)
        stdout, stderr = run.communicate(timeout=30)
    sandbox.control.clear_faults()
    assert run.returncode == ExitCode.INTERRUPTED, stdout + stderr
    assert "Traceback" not in stdout + stderr
    assert stderr.count("\n") == 1 and stderr.startswith("error: interrupted"), stderr
    assert "cleanup: locker 1401 given back (cancelled reservation" in stdout
    assert _held(sandbox) == {}
    assert _open_ledger_rows(tmp_path) == []


def _asked_for_dropoff(ledger: Path) -> bool:
    try:
        with sqlite3.connect(ledger) as db:
            return db.execute("SELECT COUNT(*) FROM holds WHERE kind = 'dropoff_token'").fetchone()[0] > 0
    except sqlite3.Error:
        return False
