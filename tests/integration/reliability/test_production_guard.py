"""No spelling of Harbor's production host gets a write out of any command, nor out of ``cleanup``
through a crafted ledger row, without the opt-in: seen at a capturing proxy that plays Harbor.

Each command runs as a child process whose every request goes through ``CaptureProxy`` (a
``CONNECT`` tunnel it opens with its own certificate), so the test sees the method, host and path
of what would have left this machine. The proxy answers like a friendly Harbor (a token, an
available locker), so a command the guard does not stop goes on to its writes, and is caught.
"""

from __future__ import annotations

import os
import sqlite3
import ssl
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from harness.config import ENVIRONMENT
from harness.hosts import HarborHost, harbor_host
from harness.ledger import Ledger
from harness.ledger._store import Intent

from .capture_proxy import Captured, CaptureProxy

LOCKER_HARNESS = Path(sys.executable).with_name("locker-harness")
PRODUCTION_TOWER = "1000000000000001"
#: The spelling an adversarial pass got writes through with, and others of the same kind.
SPELLINGS = [
    "https://api.harborlockers\uff0ecom",
    "https://api.harborlockers\u3002com",
    "https://API.HARBORLOCKERS.COM.",
    "https://api%2eharborlockers.com",
    "https://\uff41\uff50\uff49.harborlockers.com",
]
#: POSTs that change nothing on Harbor's side (a bearer token, a token check).
_READ_ONLY_POSTS = ("/realms/harbor/protocol/openid-connect/token", "/api/v1/login/test-token")


def _writes_to_production(captured: list[Captured]) -> list[Captured]:
    return [
        request
        for request in captured
        if harbor_host(request.host) is HarborHost.PRODUCTION
        and request.method not in ("GET", "HEAD", "OPTIONS")
        and not (request.method == "POST" and request.path.split("?")[0] in _READ_ONLY_POSTS)
    ]


@pytest.fixture
def proxy(tmp_path: Path) -> Iterator[CaptureProxy]:
    with CaptureProxy(tmp_path) as running:
        yield running


def _env(proxy: CaptureProxy, state: Path) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if key not in ENVIRONMENT}
    env |= proxy.environment()
    env |= {
        "HARBOR_CLIENT_ID": "captured-client",
        "HARBOR_CLIENT_SECRET": "captured-secret-0123456789",
        "HARBOR_SECOND_CLIENT_ID": "captured-second",
        "HARBOR_SECOND_CLIENT_SECRET": "captured-second-secret-0123456789",
        "HARBOR_STATE_DIR": str(state),
        "HARBOR_TIMEOUT": "3",
        "HARBOR_CONNECT_TIMEOUT": "3",
    }
    return env


def test_the_capturing_proxy_sees_an_unguarded_write(proxy: CaptureProxy) -> None:
    """The proxy can fail this file: a plain httpx POST to production reaches it, with its path."""
    with httpx.Client(verify=ssl.create_default_context(cafile=proxy.ca), proxy=proxy.url, timeout=5) as http:
        assert http.post(f"https://api.harborlockers.com/api/v1/towers/{PRODUCTION_TOWER}/lockers/959/reservations")
    assert _writes_to_production(proxy.captured) == [
        Captured(
            "POST", "https", "api.harborlockers.com", f"/api/v1/towers/{PRODUCTION_TOWER}/lockers/959/reservations"
        )
    ]


COMMANDS: list[tuple[str, list[str]]] = [
    ("smoke", ["smoke"]),
    ("props", ["props", "--budget", "20"]),
    ("contract", ["contract", "--budget", "20"]),
    ("hw", ["hw", "-n", "2"]),
    ("run", ["run", "--budget", "60"]),
    ("load", ["load", "-d", "2", "-u", "1"]),
]


#: Every command with the first spelling; every spelling with smoke and run.
CASES = [(argv, SPELLINGS[0]) for _, argv in COMMANDS] + [
    (argv, spelling) for name, argv in COMMANDS if name in ("smoke", "run") for spelling in SPELLINGS[1:]
]


@pytest.mark.parametrize(("argv", "spelling"), CASES, ids=[f"{argv[0]}-{spelling}" for argv, spelling in CASES])
def test_no_command_writes_to_production_however_it_is_spelt(
    proxy: CaptureProxy, tmp_path: Path, argv: list[str], spelling: str
) -> None:
    """Every command, given production under another spelling and no opt-in, sends no write there."""
    done = subprocess.run(
        [str(LOCKER_HARNESS), *argv, "--target", spelling, "--tower", PRODUCTION_TOWER],
        env=_env(proxy, tmp_path / "state"),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=150,
        check=False,
    )
    assert _writes_to_production(proxy.captured) == [], done.stdout + done.stderr
    assert done.returncode != 0, done.stdout + done.stderr


def _crafted_ledger(state: Path, rows: list[tuple[str, str, str]]) -> None:
    """Open ledger rows of a dead process: (label, API URL, token URL), each holding locker 959."""
    with Ledger.open(state) as ledger:
        for label, api_url, token_url in rows:
            ledger.intend(
                Intent(
                    run_id="crafted",
                    owner="crafted",
                    target=label,
                    api_url=api_url,
                    token_url=token_url,
                    client_id="captured-client",
                    kind="reservation",
                    tower_id=PRODUCTION_TOWER,
                    locker_id=959,
                    duration=300,
                )
            )
    with sqlite3.connect(state / "ledger.sqlite") as db:
        db.execute("UPDATE holds SET pid = 4194303, pid_started = 1.0")


@pytest.mark.parametrize(
    ("label", "api_url", "token_url"),
    [
        ("local", "https://api.harborlockers.com", "https://accounts.harborlockers.com/realms/harbor/protocol/openid-connect/token"),
        ("local", "https://api.harborlockers\uff0ecom", "http://127.0.0.1:9/realms/harbor/protocol/openid-connect/token"),
        ("sandbox", "https://api.harborlockers.com", "https://accounts.sandbox.harborlockers.com/realms/harbor/protocol/openid-connect/token"),
        ("https://staging.example", "https://api.harborlockers.com", "https://accounts.harborlockers.com/realms/harbor/protocol/openid-connect/token"),
        ("https://staging.example", "https://staging.example", "https://accounts.harborlockers.com/realms/harbor/protocol/openid-connect/token"),
        ("https://staging.example", "https://staging.example", "http://203.0.113.9/realms/harbor/protocol/openid-connect/token"),
        ("sandbox", "https://api.sandbox.harborlockers.com", "http://203.0.113.9/token"),
    ],
)  # fmt: skip
def test_cleanup_acts_on_no_row_it_cannot_trust(
    proxy: CaptureProxy, tmp_path: Path, label: str, api_url: str, token_url: str
) -> None:
    """A row whose labels and URLs disagree is shown and skipped: no secret to production's token
    host, none in clear, no write anywhere; and cleanup does not call that green."""
    state = tmp_path / "state"
    _crafted_ledger(state, [(label, api_url, token_url)])
    done = subprocess.run(
        [str(LOCKER_HARNESS), "cleanup", "--timeout", "30"],
        env=_env(proxy, state),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    output = done.stdout + done.stderr
    secret_bearing = [r for r in proxy.captured if r.path.endswith("/token")]
    assert secret_bearing == [], output
    assert _writes_to_production(proxy.captured) == [], output
    assert [r for r in proxy.captured if r.scheme == "http"] == [], output
    assert done.returncode != 0, output
    assert "untrusted" in output, output


def test_the_suites_called_by_pytest_refuse_production_before_any_request(proxy: CaptureProxy, tmp_path: Path) -> None:
    """``pytest contracts/test_contract.py --harbor-target <production, spelt around>``: the suites stop at
    once (exit 2) without the opt-in, as ``locker-harness contract`` does; nothing reaches the proxy (the
    fuzzed logins went there)."""
    root = Path(__file__).resolve().parents[3]
    env = _env(proxy, tmp_path / "state")
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "contracts/test_contract.py", "-q", "-p", "no:cacheprovider",
         "--harbor-target", SPELLINGS[0], "--harbor-tower", PRODUCTION_TOWER],
        cwd=root, env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 2, done.stdout[-2000:] + done.stderr[-2000:]
    assert "production" in done.stdout + done.stderr
    assert proxy.captured == []
