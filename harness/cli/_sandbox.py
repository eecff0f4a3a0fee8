"""The embedded virtual sandbox for ``--target local``: started in a thread, with throwaway identities.

Every run gets fresh random credentials, handed to both sides in memory and registered with the
redactor: nothing to configure, nothing that outlives the run. Credentials given in the
environment (``HARBOR_CLIENT_ID``/``_SECRET``, the ``SECOND`` pair) are used as the sandbox's
identities instead. Bug switches and fault profiles
(``--sim-bug``, ``--sim-fault``) are set through the sandbox's control plane before the run.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

from harness.config import Credentials, Secret, Settings
from harness.errors import InfrastructureError, UsageError
from harness.redaction import redactor

__all__ = ["EmbeddedSandbox", "embedded_sandbox"]


@dataclass(frozen=True, slots=True)
class EmbeddedSandbox:
    """A running embedded sandbox and the settings that point at it."""

    url: str
    settings: Settings
    #: The virtual BLE radio's link, put on the air on first call (for the BLE door opener).
    radio_link: Callable[[], object] | None = None


def _throwaway(role: str) -> Credentials:
    secret = Secret(secrets.token_urlsafe(24))
    redactor().register(secret)
    return Credentials(f"harness-{role}-{secrets.token_hex(3)}", secret)


def _given(client_id: str | None, secret: Secret | None) -> Credentials | None:
    if client_id is None or secret is None:
        return None
    redactor().register(secret)
    return Credentials(client_id, secret)


@contextmanager
def embedded_sandbox(
    settings: Settings,
    *,
    bugs: Sequence[str] = (),
    faults: Sequence[str] = (),
    subprocess: bool = False,
    mtu: int | None = None,
) -> Iterator[EmbeddedSandbox]:
    """Start the virtual sandbox for this run, in a thread (or a child process with ``subprocess``:
    load runs, so the sandbox does not share a GIL with the harness); stop it afterwards. ``mtu``:
    the ATT MTU its virtual towers grant (in-thread only: the radio lives in the sandbox's process)."""
    # The sandbox (fastapi, uvicorn) is imported only when a local run needs it.
    from harness.sim import ControlError, Identity, SandboxNotRunning, SimSettings, VirtualSandbox, parse_fault_spec

    # Identities given in the environment are the sandbox's own (a canary run, a team's fixed ids);
    # otherwise throwaway ones.
    main = _given(settings.client_id, settings.client_secret) or _throwaway("main")
    second = _given(settings.second_client_id, settings.second_client_secret) or _throwaway("second")
    if second.client_id == main.client_id:
        second = _throwaway("second")
    identities = tuple(Identity(c.client_id, c.client_secret.reveal()) for c in (main, second))
    sandbox = VirtualSandbox(SimSettings(identities=identities))
    try:
        sandbox.start_subprocess() if subprocess else sandbox.start_in_thread()
    except SandboxNotRunning as exc:
        raise InfrastructureError(f"the embedded virtual sandbox did not start: {exc}") from None
    try:
        try:
            if bugs:
                sandbox.control.set_bugs(dict.fromkeys(bugs, True))
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
        target = settings.target.running_at(sandbox.url)
        yield EmbeddedSandbox(
            sandbox.url,
            settings.with_target(target).with_credentials(main, second),
            None if subprocess else lambda: sandbox.radio.link,  # the radio lives in the sandbox's process
        )
    finally:
        sandbox.stop()
