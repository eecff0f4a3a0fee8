"""``SimControl``: a small typed client of the control plane (``/_sim``)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from types import TracebackType
from typing import Any, Literal, Self

import httpx

from ._tls import tls_context
from .firmware import FirmwareRefusal

__all__ = ["ControlError", "SimControl"]


class ControlError(Exception):
    """The control plane refused a call (an unknown switch, locker or fault profile, events gone)."""

    def __init__(self, status_code: int, detail: Any, body: Any = None) -> None:
        super().__init__(f"/_sim answered {status_code}: {detail}")
        self.status_code = status_code
        self.detail = detail
        #: The whole answer: e.g. ``oldest`` and ``next`` of a 410 from ``events()``.
        self.body = body


class SimControl:
    """Drive a running sandbox: clock, bugs, dialects, faults, doors, snapshots and events."""

    def __init__(
        self,
        base_url: str,
        *,
        timeout: float = 10.0,
        transport: httpx.BaseTransport | None = None,
        event_hooks: Mapping[str, list[Callable[[httpx.Request], Any]]] | None = None,
    ) -> None:
        """``event_hooks``: httpx's request hooks (the harness passes its guard at the wire)."""
        # trust_env=False: a control plane is reached directly, never through a proxy the environment names.
        self._http = httpx.Client(
            base_url=base_url.rstrip("/") + "/_sim",
            timeout=timeout,
            transport=transport,
            event_hooks=event_hooks,
            trust_env=False,
            verify=tls_context(),
        )

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def _call(self, method: str, path: str, json: Any = None, params: dict[str, Any] | None = None) -> Any:
        response = self._http.request(method, path, json=json, params=params)
        body = response.json() if response.content else None
        if response.status_code >= 400:
            if isinstance(body, dict) and "code" in body:
                raise FirmwareRefusal(body["code"], body.get("detail", ""), http_status=response.status_code)
            raise ControlError(response.status_code, body.get("detail") if isinstance(body, dict) else body, body)
        return body

    # -- world --------------------------------------------------------------------------------

    def reset(self, seed: int | None = None) -> None:
        """The seeded world again; switches, dialects and faults off; clock offset 0."""
        self._call("POST", "/reset", {} if seed is None else {"seed": seed})

    def state(self) -> dict[str, Any]:
        """Snapshot: ``now``, every locker's model state, switches, faults."""
        snapshot: dict[str, Any] = self._call("GET", "/state")
        return snapshot

    def locker(self, locker_id: int) -> dict[str, Any]:
        """One locker's entry of ``state()``."""
        for entry in self.state()["lockers"]:
            if entry["id"] == locker_id:
                return dict(entry)
        raise ControlError(404, f"no locker {locker_id}")

    def advance_clock(self, seconds: float) -> float:
        """Move the virtual clock forward; the new sandbox time (epoch seconds)."""
        now: float = self._call("POST", "/clock/advance", {"seconds": seconds})["now"]
        return now

    def events(self, since: int = 0) -> list[dict[str, Any]]:
        """Webhook-shaped ``LOCKER_OPERATION`` events numbered ``since`` and later.

        ``ControlError`` 410 when the sandbox no longer keeps event ``since``; its ``body`` names the
        ``oldest`` it keeps.
        """
        events: list[dict[str, Any]] = self._call("GET", "/events", params={"since": since})["events"]
        return events

    # -- switches and faults ------------------------------------------------------------------

    def bugs(self) -> dict[str, bool]:
        flags: dict[str, bool] = self._call("GET", "/bugs")
        return flags

    def set_bugs(self, flags: dict[str, bool] | None = None, /, **named: bool) -> dict[str, bool]:
        """Switch bugs on or off, e.g. ``set_bugs(double_booking=True)``; all switches after."""
        result: dict[str, bool] = self._call("POST", "/bugs", {**(flags or {}), **named})
        return result

    def dialects(self) -> dict[str, bool]:
        flags: dict[str, bool] = self._call("GET", "/dialects")
        return flags

    def set_dialects(self, flags: dict[str, bool] | None = None, /, **named: bool) -> dict[str, bool]:
        """Switch dialects on or off, e.g. ``set_dialects(create_200=True)``; all dialects after."""
        result: dict[str, bool] = self._call("POST", "/dialects", {**(flags or {}), **named})
        return result

    def webhooks(self) -> list[dict[str, Any]]:
        """The webhook receivers: each one's ``url``, ``signed``, ``pending``, ``delivered``, ``retried``,
        ``failed`` and ``dropped`` (never its secret)."""
        receivers: list[dict[str, Any]] = self._call("GET", "/webhooks")["receivers"]
        return receivers

    def add_webhook(self, url: str, secret: str | None = None) -> list[dict[str, Any]]:
        """Deliver every locker operation event to ``url`` from now on, signed with ``secret`` if given."""
        body = {"url": url} | ({"secret": secret} if secret is not None else {})
        receivers: list[dict[str, Any]] = self._call("POST", "/webhooks", body)["receivers"]
        return receivers

    def remove_webhooks(self, url: str | None = None) -> list[dict[str, Any]]:
        """Stop delivering to ``url`` (``None``: to every receiver); the receivers left."""
        receivers: list[dict[str, Any]] = self._call(
            "DELETE", "/webhooks", params=None if url is None else {"url": url}
        )["receivers"]
        return receivers

    def faults(self) -> dict[str, Any]:
        profiles: dict[str, Any] = self._call("GET", "/faults")
        return profiles

    def set_faults(self, profile: str, **params: Any) -> dict[str, Any]:
        """Switch one fault profile on, e.g. ``set_faults("http_5xx", count=3)``; ``"none"`` clears."""
        result: dict[str, Any] = self._call("POST", "/faults", {"profile": profile, **params})
        return result

    def clear_faults(self) -> None:
        self.set_faults("none")

    # -- the virtual radio ----------------------------------------------------------------------

    def radio(self) -> dict[str, Any]:
        """Where the virtual radio is served (``transport``, ``None`` if only in its process), its
        towers, and what a link gets (``mtu``, ``idle_timeout``, ``connection_interval``, ``jitter``).
        ``ControlError`` 404 when the sandbox has no radio on the air."""
        described: dict[str, Any] = self._call("GET", "/radio")
        return described

    def configure_radio(
        self,
        *,
        mtu: int | None = None,
        idle_timeout: float | None = None,
        connection_interval: float | None = None,
        jitter: float | None = None,
    ) -> dict[str, Any]:
        """Set what the radio gives a link from the next connection (MTU, idle timeout in s) or packet
        (latency model, in s) on; what is not given stays. The radio as ``radio()`` describes it."""
        given = {"mtu": mtu, "idle_timeout": idle_timeout, "connection_interval": connection_interval, "jitter": jitter}
        described: dict[str, Any] = self._call(
            "POST", "/radio", {key: value for key, value in given.items() if value is not None}
        )
        return described

    # -- doors (the firmware without the radio) -----------------------------------------------

    def open_door(self, tower_id: str, locker_id: int, payload: str, payload_auth: str) -> int:
        """Present a token at a door; the locker id that opened, or ``FirmwareRefusal``."""
        body = self._call(
            "POST", f"/towers/{tower_id}/lockers/{locker_id}/open", {"payload": payload, "payload_auth": payload_auth}
        )
        opened: int = body["locker_id"]
        return opened

    def close_door(self, tower_id: str, locker_id: int) -> dict[str, Any]:
        """A person closes the door; the locker as the API shows it after."""
        locker: dict[str, Any] = self._call("POST", f"/towers/{tower_id}/lockers/{locker_id}/close")["locker"]
        return locker

    def door_state(self, tower_id: str, locker_id: int) -> bool:
        """Whether the door is open."""
        is_open: bool = self._call("GET", f"/towers/{tower_id}/lockers/{locker_id}/door")["door_open"]
        return is_open

    def force(self, tower_id: str, locker_id: int, status: Literal["available", "out_of_service"]) -> dict[str, Any]:
        """Staff force a status, as Harbor Console can; the locker after."""
        locker: dict[str, Any] = self._call(
            "POST", f"/towers/{tower_id}/lockers/{locker_id}/force", {"status": status}
        )["locker"]
        return locker
