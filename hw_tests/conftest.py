"""The hardware rig's fixtures: the same tests on the virtual radio (default) or a bench tower.

Virtual (default): an embedded sandbox in this process with its virtual radio; the wrong-token
tests use its clock and its second tower. Bench: ``HARBOR_BLE=bleak`` (or ``--hw-ble=bleak``), a
tower id (``--harbor-tower`` / ``HARBOR_TOWER_ID``), a target and credentials from the usual
``HARBOR_*`` variables. ``hw_tests/README.md`` says how to run it on a bench.

Thresholds come from options or environment variables (``HARBOR_HW_*``), defaults below.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from typing import Any

import pytest
from hw_rig import LOCAL_OTHER_TOWER, LOCAL_TOWER, Rig, RigConfig

from harness.config import BleBackend, Settings, Target, load_settings
from harness.errors import HarnessError
from harness.redaction import Secret

#: (option, environment variable, default, help)
_OPTIONS: tuple[tuple[str, str, str, str], ...] = (
    ("--hw-ble", "HARBOR_BLE", "", "virtual (default on local) or bleak (a bench tower)"),
    ("--hw-cycles", "HARBOR_HW_CYCLES", "5", "deliveries in the open-latency test (2 opens each)"),
    ("--hw-open-p95-ms", "HARBOR_HW_OPEN_P95_MS", "1000", "p95 bound of OPEN_LOCKER_WITH_TOKEN -> LOCKER_OPENED"),
    ("--hw-door-p95-ms", "HARBOR_HW_DOOR_P95_MS", "", "p95 bound of door open -> closed (default: none)"),
    ("--hw-available-within", "HARBOR_HW_AVAILABLE_WITHIN", "10", "seconds for the API to show available"),
    ("--hw-other-tower", "HARBOR_HW_OTHER_TOWER", "", "a second tower for the cross-tower token test"),
    ("--hw-response-timeout", "HARBOR_HW_RESPONSE_TIMEOUT", "20", "seconds to wait for a tower's reply"),
    ("--hw-sim-bug", "HARBOR_HW_SIM_BUG", "", "local only: sandbox bug switches to turn on (comma-separated)"),
)


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


def _rig_config(config: pytest.Config, local: bool) -> RigConfig:
    door = _option(config, "--hw-door-p95-ms")
    other = _option(config, "--hw-other-tower") or (LOCAL_OTHER_TOWER if local else "")
    bugs = tuple(filter(None, (b.strip() for b in _option(config, "--hw-sim-bug").split(","))))
    return RigConfig(
        cycles=int(_option(config, "--hw-cycles")),
        open_p95_ms=float(_option(config, "--hw-open-p95-ms")),
        door_p95_ms=float(door) if door else None,
        available_within=float(_option(config, "--hw-available-within")),
        response_timeout=float(_option(config, "--hw-response-timeout")),
        other_tower=other.upper() or None,
        sim_bugs=bugs,
    )


async def _probe(backend: Any) -> None:
    """Touch the radio once: a machine without Bluetooth fails here, before any test."""
    from harness.ble import discover_towers

    await discover_towers(backend, duration=0.0)


@pytest.fixture(scope="session")
def rig(pytestconfig: pytest.Config) -> Iterator[Rig]:
    """The rig for this session; with ``HARBOR_BLE=bleak`` and no adapter, the run stops at once."""
    from harness.ble import choose_backend

    ble = (_option(pytestconfig, "--hw-ble") or "").strip().lower()
    target = pytestconfig.getoption("harbor_target") or os.environ.get("HARBOR_TARGET") or "local"
    try:
        if target == "local" and ble in ("", "virtual"):
            yield from _local_rig(pytestconfig)
            return
        settings = load_settings(
            {"target": target, "tower_id": pytestconfig.getoption("harbor_tower"), "ble": ble or "bleak"}
        )
        if settings.ble is not BleBackend.BLEAK:
            raise pytest.UsageError("a bench run needs HARBOR_BLE=bleak: the virtual radio exists only on local")
        backend = choose_backend("bleak")
        asyncio.run(_probe(backend))
        if settings.target.kind.value != "local":
            settings.credentials()
        yield Rig(settings, settings.tower(), backend, _rig_config(pytestconfig, local=False))
    except HarnessError as exc:
        # One line and the harness's exit code (4: could not test), never a traceback.
        pytest.exit(f"hw rig: {exc}", returncode=int(exc.exit_code))


def _local_rig(pytestconfig: pytest.Config) -> Iterator[Rig]:
    from harness.ble import choose_backend
    from harness.sim import SimSettings, VirtualSandbox

    config = _rig_config(pytestconfig, local=True)
    tower = (pytestconfig.getoption("harbor_tower") or LOCAL_TOWER).upper()
    # Towers report door events only through BLE sync (uplink off), as Harbor's do.
    with VirtualSandbox(SimSettings(uplink=False)) as sandbox:
        settings = Settings(
            target=Target.local().running_at(sandbox.url),
            client_id="demo-provider",
            client_secret=Secret("demo-secret"),
            tower_id=tower,
        )
        backend = choose_backend("virtual", link=sandbox.radio.link)
        yield Rig(settings, tower, backend, config, sandbox)


@pytest.fixture(autouse=True)
def fresh_world(rig: Rig) -> Iterator[None]:
    """Local: every test starts from the seeded world, with the session's bug switches on."""
    if rig.virtual:
        rig.sandbox.world.reset()
        if rig.config.sim_bugs:
            rig.sandbox.control.set_bugs(dict.fromkeys(rig.config.sim_bugs, True))
    yield


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "hw_tests" in item.nodeid.split("/")[0]:
            item.add_marker(pytest.mark.hw)
