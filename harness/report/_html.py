"""One offline HTML file from a run's Allure results, with Allure 3 from the project's ``package.json``.

Allure 3 is pure Node and lives on the npm registry only, so it is installed into the project
(``npm ci`` against ``package-lock.json``), never globally, and only when someone asks for HTML:
everything else the harness does works without Node. The page it writes carries an analytics
script tag that fails offline and phones home online; it is stripped.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from harness.errors import InfrastructureError, UsageError
from harness.redaction import Redactor
from harness.report._allure_results import tidy_results

__all__ = [
    "MIN_NODE_MAJOR",
    "HtmlReport",
    "NodeProject",
    "build_html",
    "find_node_project",
    "redact_results",
    "strip_analytics",
]

MIN_NODE_MAJOR: Final = 20
_NPM_TIMEOUT_S: Final = 300.0
_GENERATE_TIMEOUT_S: Final = 180.0
_PROJECT_ENV: Final = "LOCKER_HARNESS_NODE_PROJECT"
#: allurerc.mjs reads the harness's categories from here (Allure 3 takes them from its config only).
CATEGORIES_ENV: Final = "LOCKER_HARNESS_ALLURE_CATEGORIES"

# An external script (analytics) and the inline snippet that configures it.
_EXTERNAL_SCRIPT = re.compile(r"<script\b[^>]*\bsrc=[\"']https?://[^\"']*[\"'][^>]*>\s*</script>\s*", re.I)
# Inline scripts are matched on ``gtag(`` and ``window.dataLayer``, which base64 data cannot contain.
_INLINE_ANALYTICS = re.compile(
    r"<script\b[^>]*>(?:(?!</script>)[\s\S])*?(?:\bgtag\(|window\.dataLayer)[\s\S]*?</script>\s*"
)
_TEXT_ATTACHMENT = frozenset({".txt", ".json", ".xml", ".html", ".svg", ".csv", ".yaml", ".yml", ".log", ".md", ".har"})


@dataclass(frozen=True, slots=True)
class NodeProject:
    """The folder holding ``package.json``, ``package-lock.json`` and ``allurerc.mjs``."""

    root: Path

    @property
    def config(self) -> Path:
        return self.root / "allurerc.mjs"

    @property
    def allure_cli(self) -> Path:
        return self.root / "node_modules" / "allure" / "cli.js"

    def pinned_allure(self) -> str | None:
        """The Allure version ``package.json`` pins, if it names one."""
        manifest = json.loads((self.root / "package.json").read_text(encoding="utf-8"))
        version = {**manifest.get("devDependencies", {}), **manifest.get("dependencies", {})}.get("allure")
        return version if isinstance(version, str) else None

    def installed_allure(self) -> str | None:
        manifest = self.root / "node_modules" / "allure" / "package.json"
        if not manifest.is_file():
            return None
        version = json.loads(manifest.read_text(encoding="utf-8")).get("version")
        return version if isinstance(version, str) else None


@dataclass(frozen=True, slots=True)
class HtmlReport:
    """The HTML file and the counts Allure computed for it."""

    path: Path
    total: int
    failed: int
    broken: int
    passed: int
    skipped: int


def _is_node_project(path: Path) -> bool:
    return (path / "package.json").is_file() and (path / "allurerc.mjs").is_file()


def find_node_project(explicit: Path | None = None, *, cwd: Path | None = None) -> NodeProject:
    """The project whose ``package.json`` pins Allure: explicit, ``$LOCKER_HARNESS_NODE_PROJECT``,
    the source checkout the harness runs from, or the working directory."""
    if explicit is None and os.environ.get(_PROJECT_ENV):
        explicit = Path(os.environ[_PROJECT_ENV])
    if explicit is not None:
        if not _is_node_project(explicit):
            raise UsageError(f"{explicit} has no package.json and allurerc.mjs for the HTML report")
        return NodeProject(explicit.resolve())
    checkout = Path(__file__).resolve().parents[2]
    for candidate in (checkout, (cwd or Path.cwd()).resolve()):
        if _is_node_project(candidate):
            return NodeProject(candidate)
    raise UsageError(
        f"the HTML report needs the harness's package.json and allurerc.mjs: run from a checkout or set {_PROJECT_ENV}"
    )


def _node() -> str:
    node = shutil.which("node")
    if node is None:
        raise UsageError(
            f"the HTML report needs Node.js {MIN_NODE_MAJOR} or later on PATH; everything else works without it"
        )
    version = subprocess.run([node, "--version"], capture_output=True, text=True, timeout=30, check=False).stdout
    match = re.match(r"v(\d+)\.", version.strip())
    if match is None or int(match.group(1)) < MIN_NODE_MAJOR:
        raise UsageError(f"the HTML report needs Node.js {MIN_NODE_MAJOR} or later, found {version.strip() or '?'}")
    return node


def _last_lines(text: str, count: int = 3) -> str:
    return " | ".join(line.strip() for line in text.strip().splitlines()[-count:])


def ensure_allure(project: NodeProject) -> None:
    """Install the pinned Allure into the project with ``npm ci`` unless it is there already."""
    pinned = project.pinned_allure()
    installed = project.installed_allure()
    if installed is not None and project.allure_cli.is_file() and (pinned is None or pinned == installed):
        return
    npm = shutil.which("npm")
    if npm is None:
        raise UsageError("the HTML report needs npm (it comes with Node.js) to install Allure 3")
    command = "ci" if (project.root / "package-lock.json").is_file() else "install"
    try:
        done = subprocess.run(
            [npm, command, "--no-audit", "--no-fund", "--loglevel=error"],
            cwd=project.root,
            capture_output=True,
            text=True,
            timeout=_NPM_TIMEOUT_S,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise InfrastructureError(f"npm {command} did not finish in {_NPM_TIMEOUT_S:.0f} s") from None
    if done.returncode != 0 or not project.allure_cli.is_file():
        why = _last_lines(done.stderr or done.stdout)
        raise InfrastructureError(f"npm {command} could not install Allure 3: {why}")


def strip_analytics(html: str) -> str:
    """The page without external scripts (analytics): it must open offline and call nobody."""
    return _INLINE_ANALYTICS.sub("", _EXTERNAL_SCRIPT.sub("", html))


def redact_results(results_dir: Path, *, redactor: Redactor) -> int:
    """Redact every text file of an Allure results folder in place (pytest stages wrote some of
    them without the harness's redactor); returns how many files changed."""
    changed = 0
    for path in sorted(results_dir.iterdir()):
        if not path.is_file() or path.suffix.lower() not in _TEXT_ATTACHMENT | {".properties"}:
            continue
        original = path.read_text(encoding="utf-8", errors="replace")
        if path.suffix.lower() == ".json":
            try:
                document = json.loads(original)
            except ValueError:
                redacted = redactor.text(original)
            else:
                # Unchanged documents keep their bytes: a rewrite is only for a real secret.
                masked = redactor.value(document)
                redacted = original if masked == document else json.dumps(masked, ensure_ascii=False)
        else:
            redacted = redactor.document(original, path.suffix)  # an HTML attachment keeps its script
        if redacted != original:
            path.write_text(redacted, encoding="utf-8")
            changed += 1
    return changed


def build_html(
    results_dir: Path,
    output_dir: Path,
    *,
    report_name: str,
    redactor: Redactor,
    project: NodeProject | None = None,
) -> HtmlReport:
    """Generate ``output_dir/index.html`` from ``results_dir`` with Allure 3: one file, offline."""
    if not results_dir.is_dir() or not any(results_dir.glob("*-result.json")):
        raise UsageError(f"{results_dir} holds no Allure results to turn into HTML")
    project = project or find_node_project()
    node = _node()
    ensure_allure(project)
    tidy_results(results_dir)  # a folder an older version wrote: name its teardowns
    redact_results(results_dir, redactor=redactor)
    if output_dir.exists():
        shutil.rmtree(output_dir)
    environment = {**os.environ, CATEGORIES_ENV: str((results_dir / "categories.json").resolve())}
    # No colours in captured output; no telemetry or update checks where a tool honours these.
    environment |= {"NO_COLOR": "1", "FORCE_COLOR": "0", "CI": environment.get("CI", "true")}
    command = [
        node,
        str(project.allure_cli),
        "generate",
        "--config",
        str(project.config),
        "--output",
        str(output_dir.resolve()),
        "--report-name",
        redactor.text(report_name),
        str(results_dir.resolve()),
    ]
    try:
        done = subprocess.run(
            command,
            cwd=project.root,
            env=environment,
            capture_output=True,
            text=True,
            timeout=_GENERATE_TIMEOUT_S,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise InfrastructureError(f"Allure did not write the HTML report in {_GENERATE_TIMEOUT_S:.0f} s") from None
    index = output_dir / "index.html"
    if done.returncode != 0 or not index.is_file():
        raise InfrastructureError(f"Allure could not write the HTML report: {_last_lines(done.stderr or done.stdout)}")
    index.write_text(strip_analytics(index.read_text(encoding="utf-8")), encoding="utf-8")
    stats = _stats(output_dir / "summary.json")
    return HtmlReport(
        path=index,
        total=stats.get("total", 0),
        failed=stats.get("failed", 0),
        broken=stats.get("broken", 0),
        passed=stats.get("passed", 0),
        skipped=stats.get("skipped", 0),
    )


def _stats(summary: Path) -> dict[str, int]:
    try:
        stats = json.loads(summary.read_text(encoding="utf-8")).get("stats", {})
    except (OSError, ValueError):
        return {}
    return {key: value for key, value in stats.items() if isinstance(value, int)}
