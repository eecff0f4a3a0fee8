"""The embedded virtual sandbox for ``local``, brought up one way for every caller.

It starts in a uvicorn thread (its virtual radio lives in this process: smoke, run, the pytest
plugin) or as a child process (load and soak: the sandbox gets a GIL and a memory of its own).
Each start gets fresh random identities, handed to both sides in memory and registered with the
redactor, so nothing needs configuring and nothing outlives the run; a caller may keep the
credentials its settings carry instead (a canary run, a team's fixed ids). Bug switches and fault
profiles are set through the control plane before anyone else calls the sandbox.
"""

from __future__ import annotations

import dataclasses
import secrets
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeAlias

from harness.config import DEFAULT_LOCAL_TOWER, Credentials, Secret, Settings, Target, TargetKind
from harness.errors import InfrastructureError, UsageError
from harness.redaction import redactor
from harness.targets._probe import with_served_tower

if TYPE_CHECKING:
    from harness.sim import SimControl, VirtualSandbox, Webhook, WebhookDelivery

__all__ = ["LocalTarget", "RadioLink", "RunningTarget", "embedded_sandbox", "open_target", "throwaway_credentials"]

#: The embedded sandbox's virtual radio link, put on the air on first call (for the BLE door opener).
RadioLink: TypeAlias = Callable[[], object]


def throwaway_credentials(role: str) -> Credentials:
    """Fresh credentials nobody else knows, registered with the redactor before anything can print them."""
    secret = Secret(secrets.token_urlsafe(24))
    redactor().register(secret)
    return Credentials(f"harness-{role}-{secrets.token_hex(3)}", secret)


@dataclass(frozen=True, slots=True)
class LocalTarget:
    """A running embedded sandbox and the settings that point at it (its two identities)."""

    sandbox: VirtualSandbox
    settings: Settings
    #: False when the sandbox runs as a child process: its world and radio are out of reach.
    in_process: bool = True

    @property
    def url(self) -> str:
        return self.sandbox.url

    @property
    def control(self) -> SimControl:
        """The sandbox's control plane (``/_sim``): clock, bug switches, faults, doors."""
        return self.sandbox.control

    @property
    def radio_link(self) -> RadioLink | None:
        """The virtual radio's link when the sandbox runs in this process, else ``None``."""
        if not self.in_process:
            return None
        sandbox = self.sandbox
        return lambda: sandbox.radio.link  # the radio goes on the air on first use


@dataclass(frozen=True, slots=True)
class RunningTarget:
    """Settings bound to a target that answers, and the embedded sandbox's radio when it runs here."""

    settings: Settings
    radio_link: RadioLink | None = None


def _identities(settings: Settings, *, keep_credentials: bool) -> tuple[Credentials, Credentials]:
    """The sandbox's two identities: the settings' own when kept and given, else throwaway ones."""

    def given(client_id: str | None, secret: Secret | None) -> Credentials | None:
        if not keep_credentials or client_id is None or secret is None:
            return None
        redactor().register(secret)
        return Credentials(client_id, secret)

    main = given(settings.client_id, settings.client_secret) or throwaway_credentials("main")
    second = given(settings.second_client_id, settings.second_client_secret) or throwaway_credentials("second")
    if second.client_id == main.client_id:
        second = throwaway_credentials("second")
    return main, second


@contextmanager
def embedded_sandbox(
    settings: Settings | None = None,
    *,
    bugs: Mapping[str, bool] | Iterable[str] = (),
    faults: Sequence[str] = (),
    dialects: Iterable[str] = (),
    webhooks: Iterable[str | Webhook] = (),
    webhook_delivery: WebhookDelivery | None = None,
    seed: int = 0,
    uplink: bool = True,
    subprocess: bool = False,
    keep_credentials: bool = False,
    mtu: int | None = None,
) -> Iterator[LocalTarget]:
    """Start the virtual sandbox (in a thread, or a child process with ``subprocess``); stop it after.

    ``settings`` (default: the defaults) keep their timeouts and folders; their target becomes the
    running sandbox, their tower the seeded one unless they name one, and their identities the
    sandbox's two (throwaway ones, or with ``keep_credentials`` the settings' own where given).
    ``bugs`` (names, or names to on/off) and ``faults`` (``name:key=value,...``) are set before the
    sandbox is handed over, ``dialects`` (names) from its start; one it refuses is a ``UsageError``.
    ``webhooks`` (URLs, or ``harness.sim.Webhook`` with a secret, registered with the redactor) get
    every locker operation event from the start, delivered as ``webhook_delivery`` says (default:
    5 tries, backoff from 0.1 s, loopback receivers only).
    ``mtu``: the ATT MTU its virtual towers grant (in-thread only: the radio lives in the sandbox's
    process). ``InfrastructureError`` if it does not start.
    """
    # The sandbox (fastapi, uvicorn) is imported only when a local run needs it.
    from harness.sim import (
        ControlError,
        Identity,
        SandboxNotRunning,
        SimSettings,
        VirtualSandbox,
        Webhook,
        WebhookDelivery,
        parse_fault_spec,
    )

    base = settings if settings is not None else Settings()
    main, second = _identities(base, keep_credentials=keep_credentials)
    identities = tuple(Identity(c.client_id, c.client_secret.reveal()) for c in (main, second))
    receivers = tuple(Webhook(hook) if isinstance(hook, str) else hook for hook in webhooks)
    for receiver in receivers:
        if receiver.secret:
            redactor().register(Secret(receiver.secret))
    try:
        sim_settings = SimSettings(seed=seed, identities=identities, uplink=uplink, dialects=frozenset(dialects))
    except ValueError as exc:  # an unknown dialect, named
        raise UsageError(f"the virtual sandbox refused the dialect: {exc}") from None
    try:
        sim_settings = dataclasses.replace(
            sim_settings, webhooks=receivers, webhook_delivery=webhook_delivery or WebhookDelivery()
        )
    except ValueError as exc:  # a receiver not on loopback, or not a URL
        raise UsageError(f"the virtual sandbox refused the webhook: {exc}") from None
    sandbox = VirtualSandbox(sim_settings)
    try:
        sandbox.start_subprocess() if subprocess else sandbox.start_in_thread()
    except SandboxNotRunning as exc:
        raise InfrastructureError(f"the embedded virtual sandbox did not start: {exc}") from None
    try:
        switches = dict(bugs) if isinstance(bugs, Mapping) else dict.fromkeys(bugs, True)
        try:
            if switches:
                sandbox.control.set_bugs(switches)
            for fault in faults:
                profile, parameters = parse_fault_spec(fault)
                sandbox.control.set_faults(profile, **parameters)
        except ValueError as exc:  # the form itself (name:key=value,...) is wrong
            raise UsageError(f"--sim-fault: {exc}") from None
        except ControlError as exc:
            raise UsageError(f"the virtual sandbox refused the switch: {exc.detail}") from None
        if mtu is not None and not subprocess:
            try:
                sandbox.radio.configure(mtu=mtu)
            except ValueError as exc:
                raise UsageError(f"--mtu: {exc}") from None
        bound = base.with_target(Target.local().running_at(sandbox.url)).with_credentials(main, second)
        if bound.tower_id is None:  # settings made for a Harbor target name no tower of the sandbox's
            bound = dataclasses.replace(bound, tower_id=DEFAULT_LOCAL_TOWER)
        yield LocalTarget(sandbox, bound, in_process=not subprocess)
    finally:
        sandbox.stop()


@contextmanager
def open_target(
    settings: Settings,
    *,
    bugs: Sequence[str] = (),
    faults: Sequence[str] = (),
    dialects: Sequence[str] = (),
    webhooks: Sequence[str | Webhook] = (),
    subprocess: bool = False,
    mtu: int | None = None,
) -> Iterator[RunningTarget]:
    """The target ``settings`` name, ready to test.

    On ``local`` the embedded sandbox, started here and stopped after, with the settings'
    credentials as its identities where given; any other target as it is, its credentials checked
    before anything starts; a virtual sandbox's URL that names no tower gets the first tower of the
    radio it serves (``with_served_tower``). Bug switches, fault profiles, dialects and webhook
    receivers exist on the embedded sandbox only.
    """
    if settings.target.kind is TargetKind.LOCAL:
        with embedded_sandbox(
            settings,
            bugs=bugs,
            faults=faults,
            dialects=dialects,
            webhooks=webhooks,
            subprocess=subprocess,
            keep_credentials=True,
            mtu=mtu,
        ) as local:
            yield RunningTarget(local.settings, local.radio_link)
        return
    if bugs or faults or dialects or webhooks:
        raise UsageError(
            "sandbox bug switches, fault profiles, dialects and webhook receivers apply to --target local only"
        )
    settings.credentials()  # name the missing variables before anything starts
    yield RunningTarget(with_served_tower(settings))
