"""What the CLI's end-to-end tests share: each runs in an empty folder of its own, and a virtual
sandbox with the demo identities reached as a URL target."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest


@pytest.fixture(autouse=True)
def _in_empty_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)


@pytest.fixture(scope="module")
def demo_sandbox() -> Iterator[Any]:
    """A virtual sandbox with the demo identities, reached as a URL target."""
    from harness.sim import VirtualSandbox

    with VirtualSandbox() as sandbox:
        yield sandbox
