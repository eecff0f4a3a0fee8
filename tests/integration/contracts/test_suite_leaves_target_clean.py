"""The suites leave a shared target as they found it: the next stage of a run (load) shares it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from harness.testing import local_target

ROOT = Path(__file__).resolve().parents[3]


def test_the_properties_suite_leaves_no_locker_held() -> None:
    """After the property suite (machines, races, token oracles) every locker is as seeded."""
    with local_target() as target:
        settings = target.settings
        main, second = settings.credentials(), settings.second_credentials()
        env = {
            **os.environ,
            "HARBOR_TARGET": target.sandbox.url,
            "HARBOR_TOWER_ID": settings.tower(),
            "HARBOR_CLIENT_ID": main.client_id,
            "HARBOR_CLIENT_SECRET": main.client_secret.reveal(),
            "HARBOR_SECOND_CLIENT_ID": second.client_id,
            "HARBOR_SECOND_CLIENT_SECRET": second.client_secret.reveal(),
        }
        suite = subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "contracts/test_properties.py"],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=180,
        )
        assert suite.returncode == 0, suite.stdout[-2000:]
        held = [
            (locker["id"], locker["status"])
            for locker in target.control.state()["lockers"]
            if locker["status"] not in ("available", "out_of_service") or locker["door_open"]
        ]
        assert held == [], f"the suite left lockers held: {held}"
