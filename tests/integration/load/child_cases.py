"""Running a child script of cases (``stop_points.py``, ``give_back_points.py``) from pytest.

The load users import gevent, which must stay out of the pytest process: each script runs them in
a process of its own against one embedded sandbox and prints one JSON line per case.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any, Final

from harness.sim import VirtualSandbox

DEMO: Final = {"HARBOR_CLIENT_ID": "demo-provider", "HARBOR_CLIENT_SECRET": "demo-secret"}


def run_cases(child: Path, folder: Path) -> list[dict[str, Any]]:
    """Every case's outcome: ``child`` run in ``folder`` (its ledger there too) against a fresh sandbox."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("HARBOR_")}
    env |= DEMO | {"HARBOR_STATE_DIR": str(folder / ".locker-harness")}
    with VirtualSandbox() as sandbox:
        done = subprocess.run(
            [sys.executable, str(child), sandbox.url],
            cwd=folder,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    assert done.returncode == 0, done.stderr[-3000:]
    return [json.loads(line) for line in done.stdout.splitlines() if line.strip()]
