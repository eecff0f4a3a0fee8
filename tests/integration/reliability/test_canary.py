"""The redaction canary: a run with a distinctive secret leaves no secret in anything it wrote or printed."""

from __future__ import annotations

from pathlib import Path

from harness.api import HarborClient, Scope
from harness.config import Settings, Target
from harness.redaction import Secret
from harness.sim import SimSettings, VirtualSandbox

TOWER = "0100000000000014"


def read_issued(path: Path) -> dict[str, set[str]]:
    """The sandbox's issued-secrets log as ``{key: values}``."""
    issued: dict[str, set[str]] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        key, _, value = line.partition("\t")
        issued.setdefault(key, set()).add(value)
    return issued


def test_sandbox_lists_every_secret_it_issues(tmp_path: Path) -> None:
    """With the debug hook on, the sandbox logs each bearer token, payload_auth and session seed it hands out."""
    log = tmp_path / "issued.log"
    with VirtualSandbox(SimSettings(issued_log=str(log))) as sandbox:
        settings = Settings(
            target=Target.local().running_at(sandbox.url),
            client_id="demo-provider",
            client_secret=Secret("demo-secret"),
        )
        with HarborClient(settings) as api:
            api.authenticate()
            api.authenticate(Scope.TOWER_ACCESS)
            api.reserve(TOWER, 1401, 300)
            token = api.create_dropoff_token(TOWER, 1401, 600)
            session = api.create_session_token(TOWER, "1.2.3")
    issued = read_issued(log)
    assert len(issued["access_token"]) == 2
    assert issued["payload_auth"] == {token.payload_auth, session.payload_auth}
    assert issued["session_seed"] == {session.session_seed}
