"""The layout of ``reports/<run-id>/`` and the reports written once a run's stages are done."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Final

from harness.errors import UsageError
from harness.redaction import Redactor
from harness.report._allure import AllureWriter, environment_properties, write_categories, write_environment
from harness.report._allure_results import allure_totals, tidy_results
from harness.report._allure_stage import harness_suites, stage_tests
from harness.report._findings import ASSUMPTIONS_SUITE, finding_cases, finding_tests
from harness.report._html import redact_results
from harness.report._junit import write_junit
from harness.report._plots import OVERVIEW, plot_latencies, plot_name, plot_overview, write_page
from harness.report._results import RunResult
from harness.report._run_ids import new_run_id
from harness.report._summary import write_summaries

__all__ = ["MIN_SAMPLES_TO_PLOT", "RunFolder", "finish_reports"]

#: A percentile curve through fewer samples says nothing a table does not: one delivery is a row.
MIN_SAMPLES_TO_PLOT: Final = 5
#: New ids tried before giving up; with 24 random bits a second, the second try is already rare.
_CLAIM_ATTEMPTS: Final = 8


@dataclass(frozen=True, slots=True)
class RunFolder:
    """Where a run's evidence goes; every path a stage writes to comes from here."""

    root: Path  # reports/<run-id>

    @classmethod
    def create(cls, reports_dir: Path, run_id: str | None = None) -> RunFolder:
        """The folder of ``run_id``, or (by default) of a new run id that no other run has taken."""
        try:
            reports_dir.mkdir(parents=True, exist_ok=True)
            folder = cls._claim(reports_dir, run_id)
            folder.allure_results.mkdir(parents=True, exist_ok=True)
            folder.junit_dir.mkdir(parents=True, exist_ok=True)
            probe = folder.root / ".writable"
            probe.write_bytes(b"")  # a folder one may enter but not write to fails here, not mid-run
            probe.unlink()
        except OSError as exc:
            raise UsageError(
                f"cannot write reports under {reports_dir}: {exc.strerror or exc}; "
                "choose another folder (HARBOR_REPORTS_DIR)"
            ) from None
        return folder

    @classmethod
    def _claim(cls, reports_dir: Path, run_id: str | None) -> RunFolder:
        # Absolute: child processes (pytest, Locust) write here from their own working directory.
        if run_id is not None:
            folder = cls((reports_dir / run_id).resolve())
            folder.root.mkdir(exist_ok=True)
            return folder
        for _ in range(_CLAIM_ATTEMPTS):
            folder = cls((reports_dir / new_run_id()).resolve())
            try:
                folder.root.mkdir()  # exclusive: two runs started in the same second never share a folder
            except FileExistsError:
                continue
            return folder
        raise UsageError(f"cannot pick a new run id under {reports_dir}: {_CLAIM_ATTEMPTS} were taken")

    @property
    def run_id(self) -> str:
        return self.root.name

    @property
    def allure_results(self) -> Path:
        """Allure results of every stage: pytest stages pass it as ``--alluredir``."""
        return self.root / "allure-results"

    @property
    def junit_dir(self) -> Path:
        return self.root / "junit"

    def junit(self, stage: str) -> Path:
        """The JUnit file of a stage: pytest stages pass it as ``--junitxml``."""
        return self.junit_dir / f"{stage}.xml"

    @property
    def plots_dir(self) -> Path:
        return self.root / "plots"

    @property
    def html_dir(self) -> Path:
        return self.root / "allure-report"

    def stage_dir(self, stage: str) -> Path:
        """A folder for a stage's own reports (Schemathesis, Locust HTML and CSV, frame dumps)."""
        path = self.root / stage
        path.mkdir(parents=True, exist_ok=True)
        return path


def finish_reports(run: RunResult, folder: RunFolder, *, redactor: Redactor) -> list[Path]:
    """Plots, JUnit of the stages that had cases, Allure tests of the stages that wrote none, Allure
    environment and categories, summaries.

    Called once the stages are done (pytest stages would have deleted the Allure extras with
    ``--clean-alluredir``); returns the files written.
    """
    written: list[Path] = []
    in_allure = harness_suites(folder.allure_results)
    allure = AllureWriter(folder.allure_results, redactor=redactor)
    curves: list[tuple[str, Path]] = []
    overview: Path | None = None
    for stage in run.stages:
        plots = plot_latencies(
            stage.latencies, folder.plots_dir, stage=stage.name, target=run.target.name, min_count=MIN_SAMPLES_TO_PLOT
        )
        by_file = {path.name: path for path in plots}
        step_plots = {
            name: by_file[plot_name(stage.name, name)]
            for name in stage.latencies.names()
            if plot_name(stage.name, name) in by_file
        }
        curves += [(f"{stage.name}: {name}", path) for name, path in step_plots.items()]
        stage_overview = None
        if overview is None and stage.timeline:  # one figure over time a run: its load stage's
            stage_overview = overview = plot_overview(
                stage.timeline,
                folder.plots_dir / OVERVIEW,
                title=f"{stage.name} over time against {run.target.name} (run {run.run_id})",
                limits=stage.limits,
                windows=stage.windows,
            )
        stage.artefacts.extend([*plots, *([stage_overview] if stage_overview is not None else [])])
        written += plots
        if stage.cases and stage.name not in in_allure:
            # A stage that wrote no Allure test of its own (the load stage) is in the report all the same.
            for test in stage_tests(stage, plots=step_plots, overview=stage_overview):
                allure.write(test)
        if stage.cases:
            junit = write_junit(
                folder.junit(stage.name),
                stage.name,
                stage.cases,
                redactor=redactor,
                timestamp=run.started_at.isoformat(timespec="seconds"),
            )
            if junit not in stage.artefacts:
                stage.artefacts.append(junit)
            written.append(junit)
    refuted = run.findings()
    if refuted:
        for test in finding_tests(refuted, strict=run.strict_assumptions):
            allure.write(test)
        written.append(
            write_junit(
                folder.junit(ASSUMPTIONS_SUITE),
                ASSUMPTIONS_SUITE,
                finding_cases(refuted, strict=run.strict_assumptions),
                redactor=redactor,
                timestamp=run.started_at.isoformat(timespec="seconds"),
            )
        )
    if overview is not None:
        written.append(overview)
    if overview is not None or curves:
        written.append(
            write_page(folder.plots_dir, title=f"locker-harness run {run.run_id}", overview=overview, curves=curves)
        )
    properties = environment_properties(
        run_id=run.run_id,
        target=run.target.name,
        url=run.target.url,
        tower=run.target.tower,
        firmware=run.target.firmware,
        seed=run.seed,
        extra=run.environment,
    )
    written.append(write_environment(folder.allure_results, properties, redactor=redactor))
    written.append(write_categories(folder.allure_results))
    tidy_results(folder.allure_results)
    redact_results(folder.allure_results, redactor=redactor)
    totals = allure_totals(folder.allure_results).as_dict()
    written += write_summaries(run, folder.root, redactor=redactor, allure=totals)
    return written
