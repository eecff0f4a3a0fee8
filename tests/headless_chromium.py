"""Headless Chromium for the tests that open a report page as a person would (Allure's, Locust's).

A test that needs it calls ``browser()`` first: without Chromium on PATH it skips with the reason,
so `make test` never depends on a browser. Each page opens in a fresh profile, offline flags on.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Final

import pytest

__all__ = ["FLAGS", "browser", "dump_dom", "rendered_text"]

_BROWSERS: Final = ("chromium", "chromium-browser", "google-chrome")
FLAGS: Final = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)
#: Milliseconds of virtual time a page's scripts get before the DOM is read.
_VIRTUAL_TIME_MS: Final = 10_000
_TIMEOUT_S: Final = 90
#: Reads of a page that has not drawn yet (``rendered_text``'s ``drawn``).
_READS: Final = 3


def browser() -> str:
    """Chromium's path, or a skip saying how to get it."""
    for name in _BROWSERS:
        path = shutil.which(name)
        if path is not None:
            return path
    pytest.skip("no Chromium on PATH (apt-get install chromium) to open the report page")


def dump_dom(browser_path: str, page: Path, *, fragment: str = "", screenshot: Path | None = None) -> str:
    """The page's DOM after its scripts ran (and, if asked, a screenshot of it first)."""
    with tempfile.TemporaryDirectory() as profile:
        command = [browser_path, *FLAGS, f"--user-data-dir={profile}", f"--virtual-time-budget={_VIRTUAL_TIME_MS}"]
        if screenshot is not None:
            done = subprocess.run(
                [*command, "--window-size=1280,900", f"--screenshot={screenshot}", page.as_uri()],
                capture_output=True,
                timeout=_TIMEOUT_S,
                check=False,
            )
            assert done.returncode == 0, done.stderr[-2000:]
        done = subprocess.run(
            [*command, "--dump-dom", page.as_uri() + fragment],
            capture_output=True,
            text=True,
            timeout=_TIMEOUT_S,
            check=False,
        )
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def rendered_text(
    browser_path: str, page: Path, *, fragment: str = "", screenshot: Path | None = None, drawn: str = ""
) -> str:
    """The page's visible text after its scripts ran, from Chromium's DOM dump.

    ``drawn``: a pattern the text shows once the page has drawn what the test reads. A page whose
    scripts work outside the virtual time (a busy machine, a report decompressing its data) is read
    again, up to ``_READS`` times in all, before its text is returned as it is."""
    text = ""
    for _ in range(_READS):
        dom = dump_dom(browser_path, page, fragment=fragment, screenshot=screenshot)
        body = re.sub(r"<(script|style)\b[\s\S]*?</\1>", " ", dom)
        text = " ".join(re.sub(r"<[^>]+>", " ", body).replace("&nbsp;", " ").split())
        if not drawn or re.search(drawn, text):
            break
    return text
