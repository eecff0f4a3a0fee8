"""The HTML page's post-processing: analytics stripped, the app's own scripts kept."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.errors import UsageError
from harness.redaction import Redactor
from harness.report import build_html, redact_results, strip_analytics

_PAGE = """<html><head>
<script>window.allureReportOptions = {"reportName":"r"};</script>
<script   src="data:text/javascript;base64,KGZ1bmN0aW9uKCl7fSkoKTs+gtag/dataLayer="></script>
<script async src="https://www.googletagmanager.com/gtag/js?id=G-XXXX"></script>
<script>
  window.dataLayer = window.dataLayer || [];
  function gtag(){dataLayer.push(arguments);}
  gtag('js', new Date());
</script>
<script async>window.allureReportData = {};</script>
</head><body></body></html>"""


def test_analytics_are_stripped_and_the_app_is_kept() -> None:
    """The external tag and its inline snippet go; inline app scripts and data: scripts stay."""
    page = strip_analytics(_PAGE)
    assert "googletagmanager" not in page and "gtag(" not in page
    assert "window.allureReportOptions" in page
    assert "data:text/javascript;base64,KGZ1bmN0aW9uKCl7fSkoKTs+gtag/dataLayer=" in page
    assert "window.allureReportData" in page


def test_results_written_by_pytest_are_redacted_in_place(tmp_path: Path, canary: str, redactor: Redactor) -> None:
    """Result JSON and text attachments from other writers lose their secrets before HTML is built."""
    (tmp_path / "a-result.json").write_text('{"name": "t", "statusDetails": {"message": "' + canary + '"}}')
    (tmp_path / "b-attachment.txt").write_text(f"Authorization: Bearer {canary}")
    (tmp_path / "c-attachment.png").write_bytes(b"\x89PNG" + canary.encode())
    assert redact_results(tmp_path, redactor=redactor) == 2
    assert canary not in (tmp_path / "a-result.json").read_text()
    assert canary not in (tmp_path / "b-attachment.txt").read_text()


def test_html_without_results_is_a_usage_error(tmp_path: Path) -> None:
    """Asking for HTML of a folder with no results says so in one line."""
    with pytest.raises(UsageError, match="no Allure results"):
        build_html(tmp_path, tmp_path / "out", report_name="r", redactor=Redactor())
