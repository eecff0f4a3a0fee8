"""The hardware rig's fixtures: the same tests on the virtual radio (default) or a bench tower.

Virtual (default): an embedded sandbox in this process with its virtual radio; the wrong-token
tests use its clock and its second tower. The whole rig runs once per ATT MTU of ``--hw-mtu``
(23 and 247 by default: small-MTU chunking is exercised on every run).

Bench: ``HARBOR_BLE=bleak`` (or ``--hw-ble=bleak``), a tower id (``--harbor-tower`` /
``HARBOR_TOWER_ID``), a target and credentials from the usual ``HARBOR_*`` variables.
``hw_tests/README.md`` says how to run it on a bench.

A virtual sandbox's URL (``locker-harness sim``) that serves its towers' radio to other processes
(``GET /_sim/radio``) is treated as a bench whose towers are reached over that radio: its first
tower unless one is named, its second as the other tower, credentials from ``HARBOR_*``, and
nothing reset or switched on it (it may be someone else's).

Without a bench tower the rig skips, saying why: a Harbor target with no tower id, or (unless
``bleak`` was asked for) no Bluetooth adapter, or ``HARBOR_BLE=none``. Asked for ``bleak`` on a
machine without Bluetooth, it stops at once with one line and exit code 4.

Thresholds come from options or environment variables (``HARBOR_HW_*``), defaults below. Every
reservation and token goes to the cleanup ledger (``HARBOR_STATE_DIR``), under the parent run's
id when there is one; the BLE phases go to ``$LOCKER_HARNESS_LATENCIES_DIR`` when it is set.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pytest
from hw_rig import Rig, RigConfig, until

from harness.ble import Radio
from harness.config import Credentials, TargetKind, load_settings
from harness.errors import BluetoothUnavailable, HarnessError, InfrastructureError, ProductDefect, UsageError
from harness.ledger import ledger_holds
from harness.model import InvalidTowerId, TowerId
from harness.redaction import Secret

if TYPE_CHECKING:
    from harness.sim import VirtualSandbox
    from harness.targets import AnnouncedRadio

#: (option, environment variable, default, help)
_OPTIONS: tuple[tuple[str, str, str, str], ...] = (
    ("--hw-ble", "HARBOR_BLE", "", "virtual (default on local), bleak (a bench tower) or none (skip the rig)"),
    ("--hw-cycles", "HARBOR_HW_CYCLES", "3", "deliveries in the open-latency test (2 opens each)"),
    ("--hw-open-p95-ms", "HARBOR_HW_OPEN_P95_MS", "1000", "p95 bound of OPEN_LOCKER_WITH_TOKEN -> LOCKER_OPENED"),
    ("--hw-door-p95-ms", "HARBOR_HW_DOOR_P95_MS", "", "p95 bound of door open -> closed (default: none)"),
    ("--hw-available-within", "HARBOR_HW_AVAILABLE_WITHIN", "10", "seconds for the API to show available"),
    ("--hw-other-tower", "HARBOR_HW_OTHER_TOWER", "", "a second tower for the cross-tower token test"),
    ("--hw-response-timeout", "HARBOR_HW_RESPONSE_TIMEOUT", "20", "seconds to wait for a tower's reply"),
    ("--hw-sim-bug", "HARBOR_HW_SIM_BUG", "", "local only: sandbox bug switches to turn on (comma-separated)"),
    ("--hw-sim-dialect", "HARBOR_HW_SIM_DIALECT", "", "local only: sandbox dialects to speak (comma-separated)"),
    (
        "--hw-sim-fault",
        "HARBOR_HW_SIM_FAULT",
        "",
        "local only: sandbox fault profiles, ';'-separated, each name:key=value,... (e.g. ble_busy:count=1)",
    ),
    (
        "--hw-retries",
        "HARBOR_HW_RETRIES",
        "0",
        "link failures a delivery survives by reconnecting and resuming, as a person with a phone would",
    ),
    (
        "--hw-mtu",
        "HARBOR_HW_MTU",
        "23,247",
        "local only: the ATT MTUs the virtual towers grant, comma-separated; the whole rig runs at each",
    ),
)

#: The virtual sandbox's identity the local rig acts as (the sandbox's demo provider).
_LOCAL_IDENTITY = Credentials("demo-provider", Secret("demo-secret"))


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("locker-harness hardware rig")
    for option, env, default, text in _OPTIONS:
        group.addoption(option, default=None, help=f"{text}. Env: {env}. Default: {default or 'none'}.")


def _option(config: pytest.Config, option: str) -> str:
    for name, env, default, _ in _OPTIONS:
        if name == option:
            value = config.getoption(option.lstrip("-").replace("-", "_"))
            return str(value) if value is not None else os.environ.get(env, default)
    raise KeyError(option)


def _radio_asked(config: pytest.Config) -> str:
    """The radio the user named (``--hw-ble``, the plugin's ``--harbor-ble``, ``HARBOR_BLE``), or ''."""
    named = config.getoption("hw_ble") or config.getoption("harbor_ble", default=None)
    return str(named or os.environ.get("HARBOR_BLE", "")).strip().lower()


def _sim_faults(config: pytest.Config) -> tuple[tuple[str, dict[str, object]], ...]:
    from harness.sim import parse_fault_spec

    specs = filter(None, (spec.strip() for spec in _option(config, "--hw-sim-fault").split(";")))
    try:
        return tuple(parse_fault_spec(spec) for spec in specs)
    except ValueError as exc:
        raise UsageError(f"--hw-sim-fault: {exc}") from None


def _is_local(config: pytest.Config) -> bool:
    target = (config.getoption("harbor_target") or os.environ.get("HARBOR_TARGET") or "local").strip().lower()
    return target == "local" and _radio_asked(config) in ("", "virtual")


def _mtus(config: pytest.Config) -> list[int]:
    """The MTUs asked for with ``--hw-mtu`` (each 23..247); ``UsageError`` naming what is wrong."""
    text = _option(config, "--hw-mtu")
    try:
        mtus = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise UsageError(f"--hw-mtu: {text!r} is not a comma-separated list of integers") from None
    if not mtus or not all(23 <= mtu <= 247 for mtu in mtus):
        raise UsageError(f"--hw-mtu: each MTU must be 23..247, not {text!r}")
    return mtus


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Local: the whole rig once per ``--hw-mtu`` (23 and 247 by default). A bench's MTU is the OS's."""
    if "rig_mtu" not in metafunc.fixturenames:
        return
    config = metafunc.config
    if not _is_local(config):
        metafunc.parametrize("rig_mtu", [None], ids=["os-mtu"], scope="session")
        return
    try:
        mtus: list[int | None] = list(_mtus(config))
    except UsageError:  # the rig fixture says so in one line (exit 2) before any test runs
        mtus = [None]
    metafunc.parametrize("rig_mtu", mtus, ids=[f"mtu{mtu or ''}" for mtu in mtus], scope="session")


def _rig_config(config: pytest.Config, *, other_tower: TowerId | None, local: bool) -> RigConfig:
    door = _option(config, "--hw-door-p95-ms")
    given = _option(config, "--hw-other-tower")
    try:
        other = TowerId(given) if given else other_tower
    except InvalidTowerId as exc:
        raise UsageError(f"--hw-other-tower {exc}") from None
    bugs = tuple(filter(None, (b.strip() for b in _option(config, "--hw-sim-bug").split(","))))
    dialects = tuple(filter(None, (d.strip() for d in _option(config, "--hw-sim-dialect").split(","))))
    return RigConfig(
        cycles=int(_option(config, "--hw-cycles")),
        open_p95_ms=float(_option(config, "--hw-open-p95-ms")),
        door_p95_ms=float(door) if door else None,
        available_within=float(_option(config, "--hw-available-within")),
        response_timeout=float(_option(config, "--hw-response-timeout")),
        other_tower=other,
        sim_bugs=bugs,
        sim_faults=_sim_faults(config) if local else (),
        retries=int(_option(config, "--hw-retries")),
        sim_dialects=dialects if local else (),
    )


async def _probe(backend: Radio) -> None:
    """Touch the radio once: a machine without Bluetooth fails here, before any test."""
    from harness.ble import discover_towers

    await discover_towers(backend, duration=0.0)


@pytest.fixture(scope="session")
def rig(pytestconfig: pytest.Config, rig_mtu: int | None) -> Iterator[Rig]:
    """The rig for this session (on local, one per MTU of ``--hw-mtu``): skips without a bench tower;
    with ``HARBOR_BLE=bleak`` and no adapter, the run stops at once. Writes the session's BLE phases
    for a parent run at the end."""
    radio = _radio_asked(pytestconfig)
    target = (pytestconfig.getoption("harbor_target") or os.environ.get("HARBOR_TARGET") or "local").strip()
    if radio == "none":
        pytest.skip("HARBOR_BLE=none: no radio to open doors with, and the rig opens every door over BLE")
    try:
        if target.lower() == "local" and radio in ("", "virtual"):
            _mtus(pytestconfig)  # a wrong --hw-mtu is a usage error, not a rig at the default MTU
            rigs = _local_rig(pytestconfig, rig_mtu)
        else:
            if pytestconfig.getoption("hw_mtu") or os.environ.get("HARBOR_HW_MTU"):
                raise UsageError(
                    "--hw-mtu sets the virtual radio's MTU (local target); a real radio negotiates its own"
                )
            rigs = _bench_rig(pytestconfig, target, radio)
        for session_rig in rigs:
            try:
                yield session_rig
            finally:
                session_rig.write_latencies()
    except HarnessError as exc:
        # One line and the harness's exit code (4: could not test; 2: usage), never a traceback.
        pytest.exit(f"hw rig: {exc}", returncode=int(exc.exit_code))


def _bench_rig(pytestconfig: pytest.Config, target: str, radio: str) -> Iterator[Rig]:
    """A bench tower over the OS's Bluetooth (or a sandbox URL's towers over the radio it serves);
    a skip with the reason when there is none to reach.

    ``radio`` is what the user named: ``bleak`` makes a missing adapter an error (exit 4), not a skip.
    """
    from harness.ble import choose_backend

    if radio in ("", "virtual"):
        served = _served_radio(target)
        if served is not None:
            yield from _served_radio_rig(pytestconfig, target, served)
            return
    if radio == "virtual":
        pytest.skip(
            "the virtual radio exists on local and on a sandbox URL that serves it (GET /_sim/radio, as "
            f"`locker-harness sim` does); target here: {target}. For a bench tower set HARBOR_BLE=bleak "
            "and HARBOR_TOWER_ID"
        )
    tower = pytestconfig.getoption("harbor_tower")
    settings = load_settings({"target": target, "tower_id": tower, "ble": "bleak"})  # off local, the only radio
    if settings.tower_id is None:
        pytest.skip(
            f"no bench tower for target {settings.target.name}: set HARBOR_TOWER_ID (or --harbor-tower) "
            "and HARBOR_BLE=bleak to open its doors (hw_tests/README.md)"
        )
    backend = choose_backend("bleak")
    try:
        asyncio.run(_probe(backend))
    except BluetoothUnavailable as exc:
        if radio == "bleak":
            raise  # asked for by name: a machine without Bluetooth is an error, not a skip
        pytest.skip(f"no bench tower reachable from here: {exc}")
    if settings.target.kind is not TargetKind.LOCAL:
        settings.credentials()
    config = _rig_config(pytestconfig, other_tower=None, local=False)
    yield Rig(settings, settings.tower(), backend, config, ledger_holds(settings))


def _served_radio(target: str) -> AnnouncedRadio | None:
    """The radio a virtual sandbox URL serves to other processes, or ``None`` (any other target)."""
    from harness.targets import announced_radio

    settings = load_settings({"target": target})
    if settings.target.kind is not TargetKind.URL or settings.target.api_url is None:
        return None
    return announced_radio(settings.target.api_url, policy=settings.wire_policy())


def _served_radio_rig(pytestconfig: pytest.Config, target: str, served: AnnouncedRadio) -> Iterator[Rig]:
    """A virtual sandbox URL's towers over the radio it serves, as a bench: nothing reset or switched on."""
    from harness.ble import choose_backend
    from harness.targets import with_served_tower

    named = pytestconfig.getoption("harbor_tower")
    settings = with_served_tower(load_settings({"target": target, "tower_id": named, "ble": "virtual"}))
    settings.credentials()  # name the missing variables before any test
    tower = settings.tower()
    config = _rig_config(pytestconfig, other_tower=next((t for t in served.towers if t != tower), None), local=False)
    backend = choose_backend("virtual", link=served.transport)
    yield Rig(settings, tower, backend, config, ledger_holds(settings))


def _local_rig(pytestconfig: pytest.Config, mtu: int | None) -> Iterator[Rig]:
    from harness.ble import choose_backend
    from harness.sim import ControlError, SimSettings, VirtualSandbox

    configured = load_settings({"target": "local", "tower_id": pytestconfig.getoption("harbor_tower")})
    # Towers report door events only through BLE sync (uplink off), as Harbor's do.
    with VirtualSandbox(SimSettings(uplink=False)) as sandbox:
        settings = configured.with_target(configured.target.running_at(sandbox.url)).with_credentials(_LOCAL_IDENTITY)
        tower = settings.tower()
        seeded = {TowerId(locker["tower_id"]) for locker in sandbox.control.state()["lockers"]}
        config = _rig_config(pytestconfig, other_tower=min(seeded - {tower}, default=None), local=True)
        if mtu is not None:
            sandbox.radio.configure(mtu=mtu)
            config = dataclasses.replace(config, mtu=mtu)
        try:  # the switches are set before every test; a wrong name is a usage error now, not a red test
            _switch_on(sandbox, config)
        except ControlError as exc:
            raise UsageError(
                f"the virtual sandbox refused --hw-sim-bug/--hw-sim-fault/--hw-sim-dialect: {exc.detail}"
            ) from None
        backend = choose_backend("virtual", link=sandbox.radio.link)
        yield Rig(settings, tower, backend, config, ledger_holds(settings), sandbox)


def _switch_on(sandbox: VirtualSandbox, config: RigConfig) -> None:
    if config.sim_bugs:
        sandbox.control.set_bugs(dict.fromkeys(config.sim_bugs, True))
    if config.sim_dialects:
        sandbox.control.set_dialects(dict.fromkeys(config.sim_dialects, True))
    for name, params in config.sim_faults:
        sandbox.control.set_faults(name, **params)


@pytest.fixture(autouse=True)
def fresh_world(rig: Rig) -> Iterator[None]:
    """Local: every test starts from the seeded world, with the session's bug switches, dialects and
    faults on, and leaves nothing held behind it that the cleanup ledger does not know of (whatever
    it met: a link fault included)."""
    if rig.virtual:
        rig.sandbox.world.reset()
        _switch_on(rig.sandbox, rig.config)
    yield
    if rig.virtual:
        held = asyncio.run(_held_after(rig))
        kept = {entry.locker_id for entry in rig.holds.ledger.entries(open_only=True, run_id=rig.holds.run_id)}
        lost = {locker_id: status for locker_id, status in held.items() if locker_id not in kept}
        assert not lost, f"the test left lockers held that the cleanup ledger does not know of: {lost}"
        if held:  # an item the test could not take back out (a link lost): `locker-harness cleanup` will
            print(f"kept for cleanup: {held}")


async def _held_after(rig: Rig, timeout: float = 5.0) -> dict[int, str]:
    """Lockers neither available nor out of service once the person has closed every door (polled)."""

    async def settled() -> bool:
        return not any(locker["door_open"] for locker in rig.sandbox.control.state()["lockers"])

    with contextlib.suppress(TimeoutError):  # a door left open is reported below with its locker
        await until(settled, timeout=timeout)
    return {
        locker["id"]: locker["status"]
        for locker in rig.sandbox.control.state()["lockers"]
        if locker["status"] not in ("available", "out_of_service") or locker["door_open"]
    }


#: Tests that failed because the harness could not test (a link lost, no reply): ``nodeid -> line``.
_COULD_NOT_TEST: dict[str, str] = {}


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()  # type: ignore[attr-defined]
    if report.failed and call.excinfo is not None:
        error = call.excinfo.value
        if isinstance(error, InfrastructureError) and not isinstance(error, ProductDefect):
            _COULD_NOT_TEST[item.nodeid] = str(error)
        else:
            _COULD_NOT_TEST.pop(item.nodeid, None)
            _COULD_NOT_TEST[f"verdict:{item.nodeid}"] = ""  # a product verdict: exit 1 stands


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """A rig whose every failure is "could not test" (a lost link, a silent tower) exits 4 with one
    line naming the phase, as the harness's other commands do; a product failure keeps exit 1."""
    if exitstatus != pytest.ExitCode.TESTS_FAILED or not _COULD_NOT_TEST:
        return
    if any(key.startswith("verdict:") for key in _COULD_NOT_TEST):
        return
    first = next(iter(_COULD_NOT_TEST.values()))
    _ENDING.append(f"hw rig: could not test ({len(_COULD_NOT_TEST)} test(s) failed so): {first}")
    session.exitstatus = int(InfrastructureError.exit_code)


#: The one line saying why the rig exits 4, written after pytest's summary.
_ENDING: list[str] = []


def pytest_terminal_summary(terminalreporter: Any) -> None:
    for line in _ENDING:
        terminalreporter.ensure_newline()
        terminalreporter.write_line(line)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "hw_tests" in item.nodeid.split("/")[0]:
            item.add_marker(pytest.mark.hw)
