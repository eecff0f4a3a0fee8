"""``LoadPlan``: bounded runs, configuration under options, the sandbox budget, production refused."""

from __future__ import annotations

import ast
import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from harness.cli import app
from harness.config import ENVIRONMENT, load_settings
from harness.errors import UsageError
from harness.load import KNOWN_STEPS, LoadPlan
from harness.load._locust import STOP_GRACE_S, LocustFiles, harness_arguments, locust_command, read_stats, stop_timeout

ROOT = Path(__file__).resolve().parents[3]


def _settings(tmp_path: Path, target: str = "local", toml: str = "") -> object:
    if toml:
        (tmp_path / "locker-harness.toml").write_text(toml, encoding="utf-8")
    env = {"HARBOR_TOWER_ID": "0100000000000014"} if target != "local" else {}
    return load_settings({"target": target}, cwd=tmp_path, environ=env)


def test_defaults_are_a_short_closed_run(tmp_path: Path) -> None:
    """Without options: 10 users, 10 seconds, the default user mix, no request cap."""
    plan, note = LoadPlan.resolve(_settings(tmp_path))  # type: ignore[arg-type]
    assert (plan.mode, plan.users, plan.duration_s, plan.max_rps, note) == ("closed", 10, 10.0, None, None)
    assert plan.user_classes == ("DeliveryUser", "BrowsingUser", "ContentionUser")


def test_rate_is_the_open_model_of_deliveries_only(tmp_path: Path) -> None:
    """``--rate`` runs deliveries at that rate with a pool of users big enough for a stall."""
    plan, _ = LoadPlan.resolve(_settings(tmp_path), rate=25.0)  # type: ignore[arg-type]
    assert (plan.mode, plan.user_classes, plan.users) == ("open", ("DeliveryUser",), 50)


def test_options_win_over_the_load_table(tmp_path: Path) -> None:
    """``[load]`` sets the plan; an option given on the command line replaces its key."""
    toml = "[load]\nusers = 4\nduration = 30\nthink = [0.5, 2]\nweights = { delivery = 1 }\n"
    plan, _ = LoadPlan.resolve(_settings(tmp_path, toml=toml), duration_s=5.0)  # type: ignore[arg-type]
    assert (plan.users, plan.duration_s, plan.think_s) == (4, 5.0, (0.5, 2.0))
    assert plan.user_classes == ("DeliveryUser",)


@pytest.mark.parametrize(
    "options",
    [{"duration_s": 3601.0}, {"users": 0}, {"users": 1001}, {"rate": 0.0}, {"think": "3,1"},
     {"weights": "courier=1"}, {"weights": "delivery=0"}, {"processes": 65},
     {"processes": 2 * (os.cpu_count() or 1) + 1}, {"rate": float("nan")}, {"rate": float("inf")}],
)  # fmt: skip
def test_unbounded_or_malformed_plans_are_usage_errors(tmp_path: Path, options: dict[str, object]) -> None:
    """Every run is bounded in time and size; a plan outside the bounds is refused in one line."""
    with pytest.raises(UsageError):
        LoadPlan.resolve(_settings(tmp_path), **options)  # type: ignore[arg-type]


def test_production_is_refused(tmp_path: Path) -> None:
    """Load against production is refused outright, opt-in or not."""
    with pytest.raises(UsageError, match="production is refused"):
        LoadPlan.resolve(_settings(tmp_path, target="production"))  # type: ignore[arg-type]


def test_load_command_refuses_production_with_exit_2_in_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``locker-harness load --target production`` exits 2 with one error line, before anything starts."""
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, ["load", "--target", "production"], env=dict.fromkeys(ENVIRONMENT))
    assert result.exit_code == 2
    assert result.stderr.strip().splitlines() == [
        "error: load against production is refused: use --target local, sandbox or a URL"
    ]


def test_harbor_sandbox_caps_requests_by_the_budget(tmp_path: Path) -> None:
    """On Harbor's sandbox the plan is capped at ``sandbox_max_rps`` (2/s unless configured), rate included."""
    plan, note = LoadPlan.resolve(_settings(tmp_path, target="sandbox"), rate=5.0)  # type: ignore[arg-type]
    assert plan.max_rps == 2.0
    assert plan.rate == pytest.approx(0.4)  # 5 requests per delivery without doors
    assert note is not None and "sandbox_max_rps" in note
    plan, note = LoadPlan.resolve(_settings(tmp_path, target="sandbox", toml="[load]\nsandbox_max_rps = 10\n"))  # type: ignore[arg-type]
    assert (plan.max_rps, note) == (10.0, None)


def test_locust_command_runs_headless_with_every_output(tmp_path: Path) -> None:
    """The child's command line: headless, users and processes, HTML and CSV, the record, a backstop -t."""
    plan = LoadPlan(users=8, rate=4.0, duration_s=20.0, processes=2, max_rps=100.0)
    files = LocustFiles(tmp_path)
    command = locust_command(
        ROOT / "loadtests" / "locustfile.py",
        host="http://127.0.0.1:1",
        users=plan.users,
        duration_s=plan.duration_s,
        files=files,
        user_classes=plan.user_classes,
        processes=plan.processes,
        harness_args=harness_arguments(plan, "0100000000000014", doors=True, timeout_s=10.0),
    )
    text = " ".join(command)
    for expected in ("-m locust", "--headless", "-u 8", "--processes 2", "--harness-mode open", "--harness-rate 4.0",
                     "--harness-max-rps 100.0", "--harness-doors control-plane", f"--html {files.html}",
                     f"--csv {files.csv_prefix}", f"--harness-result {files.record}", "-t 65s"):  # fmt: skip
        assert expected in text
    assert command[-1] == "DeliveryUser"
    assert "secret" not in text.lower()  # credentials travel in the environment only


def test_a_stopping_user_gets_time_to_finish_its_request_and_give_back(tmp_path: Path) -> None:
    """Locust gets a stop timeout (three request timeouts, within the harness's grace) so a user is
    never killed with a request on the wire at a normal stop."""
    assert (stop_timeout(10.0), stop_timeout(0.5), stop_timeout(60.0)) == (30, 2, STOP_GRACE_S - 15)
    files = LocustFiles(tmp_path)
    command = locust_command(
        ROOT / "loadtests" / "locustfile.py", host="http://127.0.0.1:1", users=1, duration_s=1.0, files=files,
        stop_timeout_s=stop_timeout(10.0),
    )  # fmt: skip
    assert command[command.index("--stop-timeout") + 1] == "30"


def test_locust_stats_are_read_from_its_csv(tmp_path: Path) -> None:
    """Progress and the bare benchmarks read Locust's aggregated CSV row; a missing file reads as zero."""
    files = LocustFiles(tmp_path)
    assert read_stats(files).requests == 0
    files.stats_csv.write_text(
        "Type,Name,Request Count,Failure Count,Requests/s,50%,95%,99%\n"
        "POST,reserve,10,1,5.0,3,9,12\n,Aggregated,30,2,15.5,4,10,N/A\n",
        encoding="utf-8",
    )
    stats = read_stats(files)
    assert (stats.requests, stats.failures, stats.requests_per_s, stats.p95_ms, stats.p99_ms) == (
        30,
        2,
        15.5,
        10.0,
        0.0,
    )


def _step_names(path: Path) -> set[str]:
    """String literals passed as the step of a request in the load users' source."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr in {"send", "_send", "_act", "reserve", "_token", "_door", "_release"}
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            names.add(node.args[0].value)
    return names


def test_every_step_the_users_name_is_known_to_the_gates() -> None:
    """The gates know every step name the locustfile uses (read from its source; locust is never imported)."""
    used = _step_names(ROOT / "loadtests" / "load_flows.py")
    assert {"reserve", "dropoff_token", "open_for_pickup", "contend_reserve", "cleanup_release"} <= used
    assert used <= set(KNOWN_STEPS)


def test_forked_workers_meet_their_master_on_a_free_loopback_port(tmp_path: Path) -> None:
    """``--processes N``: the master binds loopback on a free port and its forked workers connect there,
    never Locust's default (every interface, 5557), where two runs on one machine took each other's workers."""
    files = LocustFiles(tmp_path)
    command = locust_command(ROOT / "loadtests" / "locustfile.py", host="http://127.0.0.1:1", users=4,
                             duration_s=1.0, files=files, processes=2)  # fmt: skip
    port = command[command.index("--master-bind-port") + 1]
    assert command[command.index("--master-bind-host") + 1] == "127.0.0.1"
    assert command[command.index("--master-port") + 1] == port and port != "5557"
    single = locust_command(ROOT / "loadtests" / "locustfile.py", host="http://127.0.0.1:1", users=4,
                            duration_s=1.0, files=files)  # fmt: skip
    assert "--master-bind-port" not in single and "--processes" not in single
