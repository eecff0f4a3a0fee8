"""A proxy in the environment (``HTTP_PROXY`` and kin, no ``NO_PROXY``) never carries what goes to this
machine: plain http is allowed to loopback only because nothing leaves it, and a proxy would take the
client secret and tokens, in clear, to wherever it runs. Seen at a capturing proxy."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.config import ENVIRONMENT
from harness.sim import VirtualSandbox

from .capture_proxy import CaptureProxy

LOCKER_HARNESS = Path(sys.executable).with_name("locker-harness")
DEMO = {"HARBOR_CLIENT_ID": "demo-provider", "HARBOR_CLIENT_SECRET": "demo-secret"}


@pytest.fixture
def proxy(tmp_path: Path) -> Iterator[CaptureProxy]:
    with CaptureProxy(tmp_path) as running:
        yield running


@pytest.mark.parametrize("where", ["local", "url"])
def test_a_proxy_in_the_environment_never_carries_loopback_traffic(
    proxy: CaptureProxy, tmp_path: Path, where: str
) -> None:
    """``smoke`` on the embedded sandbox, and on a sandbox URL on loopback, with every proxy variable set
    and none bypassed: the delivery passes, and the proxy saw nothing (it had seen the secret before)."""
    proxies = {key: value for key, value in proxy.environment().items() if key.lower() != "no_proxy"}
    env = {key: value for key, value in os.environ.items() if key not in ENVIRONMENT and key.lower() != "no_proxy"}
    env |= proxies | {"ALL_PROXY": proxy.url, "HARBOR_STATE_DIR": str(tmp_path / "state")}
    with VirtualSandbox() as sandbox:
        url = ["--target", sandbox.url, "--tower", "0100000000000014"]
        args = ["smoke", "-q"] if where == "local" else ["smoke", "-q", *url]
        done = subprocess.run(
            [str(LOCKER_HARNESS), *args],
            cwd=tmp_path,
            env=env | ({} if where == "local" else DEMO),
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    assert done.returncode == 0, done.stdout + done.stderr
    assert proxy.captured == []
