"""The harness's pytest plugin (entry point ``pytest11``): point your own tests at a Harbor target.

Options (each also read from the environment, as the CLI reads it):

    --harbor-target    local (default: the embedded virtual sandbox), sandbox, production or a URL
    --harbor-tower     the tower to test (16 hex digits; default on local 0100000000000014)
    --harbor-ble       virtual, bleak (a bench tower), or none (no radio: tests that need one skip)
    --harbor-budget    seconds the generated tests (Schemathesis, Hypothesis) may spend
    --harbor-no-control-plane   act as if the target had no ``/_sim`` (as Harbor's own sandbox has none)
    --harbor-exclusive this run is the only user of the URL target's sandbox: it may reseed it and
                       move its clock (the embedded sandbox always is); without it those checks skip
    --harbor-race      parallel requests in the race tests (default 32)

Fixtures: ``harbor_target`` (resolved ``Settings``, bound to the running target),
``virtual_sandbox`` (only when the target is local), ``sim_control`` (the control plane, or a
skip saying why there is none; ``harbor_control_plane`` says either without skipping),
``harbor_api`` and ``harbor_second_api`` (sync clients of the two identities), ``tower``,
``available_locker``, ``delivery`` (one whole delivery, its timings), ``harbor_webhooks`` (a
loopback receiver of the embedded sandbox's webhooks, as an integrator's endpoint gets them).

A SIGTERM (a CI runner stopping the job) stops the session as Ctrl-C does, so fixtures tear down
and give back what they hold (unless a SIGTERM handler was installed already).

Kept light on purpose: loading it imports neither bleak, bumble, fastapi nor locust, and nothing
of the harness beyond its configuration; fixtures import what they need when they are used.
"""

from __future__ import annotations

import asyncio
import os
import re
from collections.abc import Generator, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

import pytest

from harness.assumptions import write_log
from harness.config import Settings, TargetKind, load_settings
from harness.errors import InfrastructureError, UsageError
from harness.redaction import MASK, SECRET_KEYS, redactor
from harness.stopping import stop_on_sigterm, watch_lifeline

if TYPE_CHECKING:
    from harness.api import HarborClient, Locker
    from harness.flow import Delivery
    from harness.model import TowerId
    from harness.sim import SimControl, VirtualSandbox
    from harness.targets import LocalTarget, RadioLink
    from harness.webhooks import WebhookReceiver

__all__ = ["DEFAULT_BUDGET_S", "DEFAULT_RACE", "ControlPlane", "HarborOptions", "redact_report_text"]

#: Seconds the generated tests may spend unless told otherwise: ``make test`` stays well inside its
#: five minutes on two cores.
DEFAULT_BUDGET_S: Final = 20.0
#: Parallel requests in a race test.
DEFAULT_RACE: Final = 32

_MARKERS: Final = {
    "contract": "Schemathesis contract tests of the locker API",
    "property": "Hypothesis state-machine tests of the locker flow",
    "hw": "the hardware rig (virtual radio by default, a bench tower on request)",
    "load": "runs Locust in a child process",
}
_OPTIONS_KEY = pytest.StashKey["HarborOptions"]()


@dataclass(frozen=True, slots=True)
class HarborOptions:
    """The plugin's options as given (``None``: not given), with the environment as fallback."""

    target: str | None
    tower: str | None
    ble: str | None  # virtual, bleak or none
    budget_s: float
    control_plane: bool  # False: act as if the target had no /_sim
    race: int
    #: The URL target's sandbox is this run's alone: it may be reseeded and its clock moved.
    exclusive: bool = False

    @classmethod
    def of(cls, config: pytest.Config) -> HarborOptions:
        """The options of this pytest run, read once (a conftest's ``pytest_configure`` may ask first)."""
        if _OPTIONS_KEY not in config.stash:
            config.stash[_OPTIONS_KEY] = _read_options(config)
        return config.stash[_OPTIONS_KEY]

    @property
    def radio(self) -> bool:
        """Whether tests may open doors over Bluetooth LE (``--harbor-ble none`` says no)."""
        return self.ble != "none"

    def scaled(self, count: int, *, minimum: int = 1) -> int:
        """``count`` examples at the default budget, scaled to this run's budget."""
        return max(minimum, round(count * self.budget_s / DEFAULT_BUDGET_S))


def _positive(text: str | None, what: str, kind: type[float] | type[int]) -> float | int | None:
    if text is None or str(text).strip() == "":
        return None
    try:
        value = kind(text)
    except ValueError:
        raise pytest.UsageError(f"{what} must be a positive number, not {text!r}") from None
    if value <= 0:
        raise pytest.UsageError(f"{what} must be a positive number, not {text!r}")
    return value


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("locker-harness", "Harbor Lockers harness")
    group.addoption(
        "--harbor-target", default=None, help="local (default), sandbox, production or a URL. Env: HARBOR_TARGET."
    )
    group.addoption("--harbor-tower", default=None, help="tower id (16 hex digits). Env: HARBOR_TOWER_ID.")
    group.addoption(
        "--harbor-ble",
        default=None,
        choices=("virtual", "bleak", "none"),
        help="how doors open over BLE: virtual (local), bleak (a bench tower) or none. Env: HARBOR_BLE.",
    )
    group.addoption(
        "--harbor-budget",
        default=None,
        help=f"seconds the generated tests may spend (default {DEFAULT_BUDGET_S:g}). Env: HARBOR_BUDGET.",
    )
    group.addoption(
        "--harbor-no-control-plane",
        action="store_true",
        default=False,
        help="act as if the target had no /_sim control plane (Harbor's own sandbox has none). "
        "Env: HARBOR_NO_CONTROL_PLANE=1.",
    )
    group.addoption(
        "--harbor-exclusive",
        action="store_true",
        default=False,
        help="this run is the only user of the URL target's sandbox: it may reseed it and move its clock "
        "(never done to a shared sandbox; the embedded one is always the run's own). Env: HARBOR_EXCLUSIVE=1.",
    )
    group.addoption(
        "--harbor-race",
        default=None,
        help=f"parallel requests in the race tests (default {DEFAULT_RACE}). Env: HARBOR_RACE.",
    )


def pytest_configure(config: pytest.Config) -> None:
    declared = {line.split(":", 1)[0].strip() for line in config.getini("markers")}
    for name, text in _MARKERS.items():
        if name not in declared:  # a project that installs the plugin gets the markers too
            config.addinivalue_line("markers", f"{name}: {text}")
    HarborOptions.of(config)  # bad option values are a usage error now, not in the middle of the run
    # A CI runner's SIGTERM stops the session as Ctrl-C does: fixtures tear down, holds go back.
    stop_on_sigterm()
    # A stage of a run that was killed stops the same way, rather than test on for nobody.
    watch_lifeline()
    if not config.option.fulltrace:
        config.pluginmanager.register(_ShortStopTraceback(), "locker-harness-short-stop-traceback")


class _ShortStopTraceback:
    """Keeps only the innermost entry of a stop's traceback unless ``--full-trace`` asks for all of it.

    pytest's terminal formats the whole traceback of a Ctrl-C (or a SIGTERM, or a run's stop) in its
    long style, reading and parsing the source of every file on the stack, then shows only the line
    where it stopped: through Hypothesis and Schemathesis that cost a stopped suite seconds of CPU."""

    @pytest.hookimpl(tryfirst=True)
    def pytest_keyboard_interrupt(self, excinfo: pytest.ExceptionInfo[BaseException]) -> None:
        entries = excinfo.traceback
        # From the innermost entry pytest shows (pytest.exit's own is hidden): the crash line it prints.
        for index in range(len(entries) - 1, -1, -1):
            if not entries[index].ishidden(excinfo):
                excinfo.traceback = entries[index:]
                return


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Leave what the suite's answers showed of the assumptions where the run reads it
    (``$LOCKER_HARNESS_FINDINGS_DIR``, set by ``locker-harness run`` for its pytest stages)."""
    write_log()


def _read_options(config: pytest.Config) -> HarborOptions:
    env = os.environ
    ble = config.getoption("harbor_ble") or env.get("HARBOR_BLE") or None
    if ble is not None and ble.strip().lower() not in ("virtual", "bleak", "none"):
        raise pytest.UsageError(f"HARBOR_BLE must be virtual, bleak or none, not {ble!r}")
    budget = _positive(config.getoption("harbor_budget") or env.get("HARBOR_BUDGET"), "--harbor-budget", float)
    race = _positive(config.getoption("harbor_race") or env.get("HARBOR_RACE"), "--harbor-race", int)
    return HarborOptions(
        target=config.getoption("harbor_target"),
        tower=config.getoption("harbor_tower"),
        ble=ble.strip().lower() if ble else None,
        budget_s=float(budget) if budget is not None else DEFAULT_BUDGET_S,
        control_plane=not config.getoption("harbor_no_control_plane")
        and env.get("HARBOR_NO_CONTROL_PLANE", "") in ("", "0"),
        race=int(race) if race is not None else DEFAULT_RACE,
        exclusive=config.getoption("harbor_exclusive") or env.get("HARBOR_EXCLUSIVE", "") not in ("", "0"),
    )


# -- no secret in a report ---------------------------------------------------------------------------

#: A secret key's quoted value, also when a report cut it short ("payload_auth":"ab89 // Output truncated...).
_SECRET_KEY_NAMES: Final = "|".join(re.escape(key) for key in sorted(SECRET_KEYS))
_CUT_SECRET: Final = re.compile(rf"""(?i)(["']?(?:{_SECRET_KEY_NAMES})["']?\s*:\s*")[^"\n]*"?""")


def redact_report_text(text: str) -> str:
    """``text`` with registered secrets, secret keys' values (cut short or not) and bearer tokens masked."""
    return redactor().text(_CUT_SECRET.sub(lambda match: f'{match.group(1)}{MASK}"', text))


def _redact_longrepr(longrepr: object) -> object:
    """A failure's report with its texts masked, its structure (crash line, entries) kept for the writers."""
    if isinstance(longrepr, str):
        return redact_report_text(longrepr)
    chain = getattr(longrepr, "chain", None)
    parts = [(tb, crash) for tb, crash, _ in chain] if isinstance(chain, list) else []
    if not parts:
        parts = [(getattr(longrepr, "reprtraceback", None), getattr(longrepr, "reprcrash", None))]
    for traceback, crash in parts:
        if crash is not None and isinstance(getattr(crash, "message", None), str):
            crash.message = redact_report_text(crash.message)
        for entry in getattr(traceback, "reprentries", ()):
            if isinstance(getattr(entry, "lines", None), list | tuple):
                entry.lines = [redact_report_text(line) for line in entry.lines]
    sections = getattr(longrepr, "sections", None)
    if isinstance(sections, list):
        longrepr.sections = [  # type: ignore[attr-defined]
            (name, redact_report_text(content), sep) for name, content, sep in sections
        ]
    return longrepr


@pytest.hookimpl(wrapper=True, trylast=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """Mask secrets in a failing test's report before any writer (terminal, JUnit, Allure) reads it.

    A failure shows request and response bodies (Schemathesis prints them): a drop-off token's
    ``payload_auth`` or a bearer token must not reach the report with them.
    """
    report = yield
    if report.longrepr is not None and not isinstance(report.longrepr, tuple):
        report.longrepr = _redact_longrepr(report.longrepr)  # type: ignore[assignment]
    report.sections = [(title, redact_report_text(content)) for title, content in report.sections]
    return report


# -- the target ------------------------------------------------------------------------------------


def _resolve(options: HarborOptions) -> Settings:
    """Options > ``HARBOR_*`` > config file, as the CLI resolves them; a usage error ends the session."""
    ble = options.ble if options.ble in ("virtual", "bleak") else None
    # "none" is the plugin's word (no radio at all); the configuration knows only radios.
    environ = {k: v for k, v in os.environ.items() if not (k == "HARBOR_BLE" and v.strip().lower() == "none")}
    try:
        return load_settings({"target": options.target, "tower_id": options.tower, "ble": ble}, environ=environ)
    except UsageError as exc:
        pytest.exit(f"locker-harness: {exc}", returncode=int(exc.exit_code))


@pytest.fixture(scope="session")
def harbor_options(pytestconfig: pytest.Config) -> HarborOptions:
    """The plugin's options for this run."""
    return HarborOptions.of(pytestconfig)


@pytest.fixture(scope="session")
def _harbor_settings(harbor_options: HarborOptions) -> Settings:
    return _resolve(harbor_options)


@pytest.fixture(scope="session")
def _harbor_local(_harbor_settings: Settings) -> Iterator[LocalTarget]:
    from harness.targets import embedded_sandbox

    if _harbor_settings.target.kind is not TargetKind.LOCAL:
        pytest.skip(f"the target is {_harbor_settings.target.name}, not the embedded virtual sandbox")
    try:
        with embedded_sandbox(_harbor_settings) as target:
            yield target
    except InfrastructureError as exc:
        pytest.exit(f"locker-harness: {exc}", returncode=int(exc.exit_code))


@pytest.fixture(scope="session")
def virtual_sandbox(_harbor_local: LocalTarget) -> VirtualSandbox:
    """The embedded virtual sandbox of this session (a uvicorn thread); skips unless the target is local."""
    return _harbor_local.sandbox


@pytest.fixture(scope="session")
def harbor_target(_harbor_settings: Settings, request: pytest.FixtureRequest) -> Settings:
    """Where the tests point: settings bound to a running target, with its identities.

    On ``local`` the embedded sandbox is started for the session with two throwaway identities;
    elsewhere the credentials come from ``HARBOR_CLIENT_ID`` / ``HARBOR_CLIENT_SECRET``.
    """
    if _harbor_settings.target.kind is TargetKind.LOCAL:
        local: LocalTarget = request.getfixturevalue("_harbor_local")
        return local.settings
    try:
        _harbor_settings.credentials()
    except UsageError as exc:
        pytest.exit(f"locker-harness: {exc}", returncode=int(exc.exit_code))
    return _harbor_settings


@dataclass(frozen=True, slots=True)
class ControlPlane:
    """The target's ``/_sim`` control plane, or why it has none; and whether it is this run's alone.

    A shared sandbox (a URL others may use, without ``--harbor-exclusive``) still opens doors and
    shows its state, but is never reseeded and its clock never moved: other tenants' holds live
    there. ``clock`` is the control plane only when it may be."""

    control: SimControl | None
    missing: str = ""  # why there is none, for a skip
    exclusive: bool = False

    @property
    def clock(self) -> SimControl | None:
        """The control plane, if this run may reseed the sandbox and move its clock."""
        return self.control if self.exclusive else None

    @property
    def shared(self) -> str:
        """Why the sandbox may not be reseeded nor its clock moved (for a skip), or ``""``."""
        if self.control is None:
            return self.missing
        if self.exclusive:
            return ""
        return (
            "the target's sandbox may be shared: it is never reseeded and its clock never moved "
            "(pass --exclusive, or --harbor-exclusive to pytest, if this run is its only user)"
        )


@pytest.fixture(scope="session")
def harbor_control_plane(
    harbor_target: Settings, harbor_options: HarborOptions, request: pytest.FixtureRequest
) -> Iterator[ControlPlane]:
    """The control plane if the target has one (local, or a virtual sandbox's URL), else the reason why not."""
    from harness.api import guard_hooks
    from harness.sim import SimControl
    from harness.targets import serves_control_plane

    name = harbor_target.target.name
    url, kind = harbor_target.target.api_url, harbor_target.target.kind
    if not harbor_options.control_plane:
        yield ControlPlane(None, f"{name} is treated as having no /_sim control plane (--harbor-no-control-plane)")
    elif kind is TargetKind.LOCAL:
        sandbox: VirtualSandbox = request.getfixturevalue("virtual_sandbox")
        yield ControlPlane(sandbox.control, exclusive=True)
    elif kind is not TargetKind.URL or url is None:
        yield ControlPlane(None, f"{name} has no /_sim control plane (only a virtual sandbox has one)")
    else:
        try:
            serves = serves_control_plane(url, policy=harbor_target.wire_policy())
        except InfrastructureError as exc:
            pytest.exit(f"locker-harness: {exc}", returncode=int(exc.exit_code))
        if not serves:
            yield ControlPlane(None, f"{name} answers no /_sim control plane (only a virtual sandbox has one)")
        else:
            with SimControl(url, event_hooks=guard_hooks(harbor_target.wire_policy())) as control:
                yield ControlPlane(control, exclusive=harbor_options.exclusive)


@pytest.fixture(scope="session")
def sim_control(harbor_control_plane: ControlPlane) -> SimControl:
    """The target's control plane (``/_sim``: clock, doors, bug switches); skips, saying why, without one."""
    if harbor_control_plane.control is None:
        pytest.skip(harbor_control_plane.missing)
    return harbor_control_plane.control


@pytest.fixture(scope="session")
def tower(harbor_target: Settings) -> TowerId:
    """The tower under test (a ``TowerId``: 16 upper-case hex digits); skips when none is configured."""
    if harbor_target.tower_id is None:
        pytest.skip(f"no tower for {harbor_target.target.name}: pass --harbor-tower or set HARBOR_TOWER_ID")
    return harbor_target.tower_id


# -- clients and the flow --------------------------------------------------------------------------


@pytest.fixture
def harbor_api(harbor_target: Settings) -> Iterator[HarborClient]:
    """A blocking API client of the main identity."""
    from harness.api import HarborClient

    with HarborClient(harbor_target) as client:
        yield client


@pytest.fixture
def harbor_second_api(harbor_target: Settings) -> Iterator[HarborClient]:
    """A blocking API client of the second identity (another service provider); skips without one."""
    from harness.api import HarborClient

    try:
        credentials = harbor_target.second_credentials()
    except UsageError as exc:
        pytest.skip(f"no second identity: {exc}")
    with HarborClient(harbor_target, credentials=credentials) as client:
        yield client


@pytest.fixture
def available_locker(harbor_api: HarborClient, tower: TowerId) -> Locker:
    """An available locker of the tower (the lowest id); skips when none is free to test with."""
    from harness.model import LockerStatus

    free = sorted(
        (locker for locker in harbor_api.list_lockers(tower) if locker.status is LockerStatus.AVAILABLE),
        key=lambda locker: locker.id,
    )
    if not free:
        pytest.skip(f"tower {tower} has no available locker to test with")
    return free[0]


@pytest.fixture
def delivery(
    harbor_target: Settings, harbor_options: HarborOptions, tower: TowerId, request: pytest.FixtureRequest
) -> Delivery:
    """One complete delivery on the tower (the seed's twelve steps), timed; fails on the first broken promise.

    Doors open over BLE on the embedded sandbox's virtual radio (``--harbor-ble none``: through its
    control plane), through the control plane of a sandbox URL, or over BLE at a bench tower.
    """
    if not harbor_options.radio and not harbor_options.control_plane:
        pytest.skip("no way to open a door: --harbor-ble none and no control plane (--harbor-no-control-plane)")
    radio_link: RadioLink | None = None
    if harbor_target.target.kind is TargetKind.LOCAL and harbor_options.radio:
        local: LocalTarget = request.getfixturevalue("_harbor_local")
        radio_link = local.radio_link
    try:
        return asyncio.run(_deliver(harbor_target, tower, radio_link, ble=harbor_options.radio))
    except UsageError as exc:
        if not harbor_options.radio:
            pytest.skip(f"no door to open on {harbor_target.target.name} without a radio (--harbor-ble none): {exc}")
        raise


async def _deliver(settings: Settings, tower: TowerId, radio_link: RadioLink | None, *, ble: bool) -> Delivery:
    from harness.api import AsyncHarborClient
    from harness.flow import run_delivery
    from harness.targets import door_opener

    async with AsyncHarborClient(settings) as client:
        # Without the client the opener may use a sandbox's control plane only, never a radio.
        doors = door_opener(settings, client=client if ble else None, radio_link=radio_link)
        async with doors as opener:
            return await run_delivery(client, opener, tower_id=tower)


@pytest.fixture(scope="session")
def harbor_webhooks(virtual_sandbox: VirtualSandbox, harbor_target: Settings) -> Iterator[WebhookReceiver]:
    """A receiver on loopback that the embedded sandbox delivers its webhooks to, for the session.

    ``.events`` are the envelopes received (``{"timestamp", "event": "LOCKER_OPERATION", "data"}``),
    in arrival order, for every locker: filter by ``data.locker_id``. Deliveries are asynchronous:
    ``.wait_for(lambda events: ..., timeout=...)`` waits, bounded, for what a test expects. Skips
    on a target other than local, and on a sandbox that delivers no webhooks.
    """
    import secrets

    from harness.targets import WebhooksNotDelivered, subscribe_webhooks
    from harness.webhooks import WebhookReceiver

    secret = secrets.token_hex(16)
    redactor().register(secret)
    with WebhookReceiver(secret=secret, assumed=harbor_target.assume) as receiver:
        try:
            subscribe_webhooks(virtual_sandbox.url, receiver.url, secret=secret, policy=harbor_target.wire_policy())
        except WebhooksNotDelivered as exc:
            pytest.skip(str(exc))
        yield receiver
