"""Fault profiles: what the HTTP middleware and the virtual radio inject, set through ``/_sim/faults``.

===========================  ====================================================  ==============================
profile                      effect                                                parameters
===========================  ====================================================  ==============================
``latency``                  delay matching requests by ``ms``                     ``ms``, ``paths``
``http_5xx``                 answer ``status`` (503) instead of serving            trigger, ``status``, ``paths``
``rate_limit``               answer 429 with ``Retry-After: retry_after``          trigger, ``retry_after``,
                                                                                   ``paths``
``drop_connection``          close the connection without any response             trigger, ``paths``
``slow_token``               delay the token endpoint by ``ms``                    ``ms``
``stall``                    serve normally for ``every - seconds`` s, then hold   ``seconds``, ``every``
                             every request until ``seconds`` have passed, and
                             again (a coordinated-omission probe: 1 s every 10 s)
``ble_disconnect``           the radio drops the link                              trigger
``ble_supervision_timeout``  the in-session command in flight is lost on the air,  trigger, ``ms`` (100)
                             the link goes silent both ways, and ``ms`` later both
                             ends lose it (reason 0x08), as a supervision timeout
``ble_idle_timeout``         the towers drop a link on which nothing was written   ``ms`` (1000)
                             for ``ms`` (instead of the radio's idle timeout)
``ble_lost_notification``    the radio swallows a notification                     trigger
``ble_busy``                 a sync command (REQUEST_SYNC_STATUS, SYNC_PULL) is    trigger
                             answered SYS_SYNC_BUSY, so the phone asks again;
                             opening and door checks are served as ever
===========================  ====================================================  ==============================

A *trigger* is ``count`` (the next N matching requests), ``fraction`` (each with that
probability, from an RNG seeded by the sandbox's seed) or neither (every matching request).
``paths`` are path prefix  es; by default every path but ``/_sim``, which faults never touch.
The radio asks ``Faults.ble(name)``: true means "inject it now" (and spends one of a count).

On a command line or in an environment variable a profile is written ``name:key=value,...``
(``latency:ms=200``, ``ble_disconnect:count=1``, ``http_5xx:paths=/api/v1/towers``):
``parse_fault_spec`` read  s that form into the body ``/_sim/faults`` takes.
"""

from __future__ import annotations

import json
import random
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["BLE_FAULTS", "FAULT_NAMES", "TOKEN_PATH", "FaultAction", "Faults", "Trigger", "parse_fault_spec"]

TOKEN_PATH = "/realms/harbor/protocol/openid-connect/token"
BLE_FAULTS = ("ble_disconnect", "ble_supervision_timeout", "ble_idle_timeout", "ble_lost_notification", "ble_busy")
FAULT_NAMES = ("latency", "http_5xx", "rate_limit", "drop_connection", "slow_token", "stall", *BLE_FAULTS)
_TRIGGERED = ("http_5xx", "rate_limit", "drop_connection", *(f for f in BLE_FAULTS if f != "ble_idle_timeout"))


@dataclass(slots=True)
class Trigger:
    """When a fault fires: the next ``count`` times, with probability ``fraction``, or always."""

    count: int | None = None
    fraction: float | None = None

    def fire(self, rng: random.Random) -> bool:
        if self.count is not None:
            if self.count <= 0:
                return False
            self.count -= 1
            return True
        if self.fraction is not None:
            return rng.random() < self.fraction
        return True

    def as_dict(self) -> dict[str, Any]:
        return {"count": self.count, "fraction": self.fraction}


@dataclass(slots=True)
class _Profile:
    name: str
    trigger: Trigger = field(default_factory=Trigger)
    paths: tuple[str, ...] = ()
    ms: float = 0.0
    status: int = 503
    retry_after: float = 1.0
    seconds: float = 0.0
    every: float = 0.0
    started: float = 0.0  # wall clock, for ``stall``

    def matches(self, path: str) -> bool:
        return not self.paths or path.startswith(self.paths)

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"profile": self.name}
        if self.name in _TRIGGERED:
            out.update(self.trigger.as_dict())
        if self.name in ("latency", "http_5xx", "rate_limit", "drop_connection"):
            out["paths"] = list(self.paths)
        if self.name in ("latency", "slow_token", "ble_supervision_timeout", "ble_idle_timeout"):
            out["ms"] = self.ms
        if self.name == "http_5xx":
            out["status"] = self.status
        if self.name == "rate_limit":
            out["retry_after"] = self.retry_after
        if self.name == "stall":
            out.update(seconds=self.seconds, every=self.every)
        return out


@dataclass(frozen=True, slots=True)
class FaultAction:
    """What the middleware does to one request: wait ``delay`` s, then maybe answer or drop."""

    delay: float = 0.0
    drop: bool = False
    status: int | None = None
    retry_after: float | None = None


_NOTHING = FaultAction()


def _number(params: Mapping[str, Any], key: str, default: float, *, low: float, high: float) -> float:
    value = params.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
        raise ValueError(f"{key} must be a number in [{low}, {high}]")
    return float(value)


def parse_fault_spec(spec: str) -> tuple[str, dict[str, Any]]:
    """``name`` or ``name:key=value,key=value`` as (profile, parameters); values as JSON where they
    parse (``ms=200`` is a number), else as text; ``paths`` is always a list. ``ValueError`` if
    the form is wrong (the profile and its parameters are checked by ``Faults.set``)."""
    name, _, params = spec.partition(":")
    name = name.strip()
    if not name:
        raise ValueError(f"fault {spec!r}: expected name or name:key=value,key=value")
    body: dict[str, Any] = {}
    for item in filter(None, (part.strip() for part in params.split(","))):
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"fault {spec!r}: expected name:key=value,key=value")
        try:
            body[key.strip()] = json.loads(value)
        except json.JSONDecodeError:
            body[key.strip()] = value.strip()
    if isinstance(body.get("paths"), str):
        body["paths"] = [body["paths"]]
    return name, body


class Faults:
    """The active fault profiles; thread-safe (the radio reads it from its own thread)."""

    def __init__(self, seed: int = 0, wall: Callable[[], float] = time.monotonic) -> None:
        self._lock = threading.Lock()
        self._profiles: dict[str, _Profile] = {}
        self._rng = random.Random(seed)
        self._wall = wall
        #: Read without the lock on every request: the middleware's fast path when nothing is set.
        self.http_active = False

    def set(self, name: str, params: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Switch one profile on (replacing its earlier settings); ``none`` clears them all."""
        params = dict(params or {})
        if name == "none":
            self.clear()
            return {}
        if name not in FAULT_NAMES:
            raise ValueError(f"unknown fault profile {name!r}; known: none, {', '.join(FAULT_NAMES)}")
        profile = _Profile(name)
        if name in _TRIGGERED:
            count, fraction = params.pop("count", None), params.pop("fraction", None)
            if count is not None and (isinstance(count, bool) or not isinstance(count, int) or count < 0):
                raise ValueError("count must be a non-negative integer")
            if fraction is not None:
                fraction = _number({"fraction": fraction}, "fraction", 0, low=0, high=1)
            if count is not None and fraction is not None:
                raise ValueError("give count or fraction, not both")
            profile.trigger = Trigger(count, fraction)
        if name in ("latency", "http_5xx", "rate_limit", "drop_connection"):
            paths = params.pop("paths", [])
            if isinstance(paths, str):
                paths = [paths]
            if not isinstance(paths, list) or not all(isinstance(p, str) and p.startswith("/") for p in paths):
                raise ValueError("paths must be a list of path prefixes starting with /")
            profile.paths = tuple(paths)
        if name in ("latency", "slow_token"):
            profile.ms = _number(params, "ms", 0, low=0, high=600_000)
            params.pop("ms", None)
        if name == "ble_supervision_timeout":
            # A phone's supervision timeout is 0.1-32 s [Core spec]; the default keeps tests quick.
            profile.ms = _number(params, "ms", 100, low=0, high=32_000)
            params.pop("ms", None)
        if name == "ble_idle_timeout":
            profile.ms = _number(params, "ms", 1000, low=1, high=3_600_000)
            params.pop("ms", None)
        if name == "http_5xx":
            profile.status = int(_number(params, "status", 503, low=500, high=599))
            params.pop("status", None)
        if name == "rate_limit":
            profile.retry_after = _number(params, "retry_after", 1, low=0, high=3600)
            params.pop("retry_after", None)
        if name == "stall":
            profile.seconds = _number(params, "seconds", 1, low=0, high=600)
            profile.every = _number(params, "every", 10, low=0.001, high=3600)
            params.pop("seconds", None)
            params.pop("every", None)
            if profile.seconds >= profile.every:
                raise ValueError("a stall must be shorter than its period")
            profile.started = self._wall()
        if params:
            raise ValueError(f"unknown parameter(s) for {name}: {', '.join(sorted(params))}")
        with self._lock:
            self._profiles[name] = profile
            self.http_active = any(n not in BLE_FAULTS for n in self._profiles)
        return profile.as_dict()

    def clear(self) -> None:
        with self._lock:
            self._profiles.clear()
            self.http_active = False

    def reseed(self, seed: int) -> None:
        with self._lock:
            self._rng.seed(seed)

    def as_dict(self) -> dict[str, dict[str, Any]]:
        with self._lock:
            return {name: profile.as_dict() for name, profile in self._profiles.items()}

    def timing(self) -> dict[str, dict[str, float]]:
        """Where the time-bound profiles stand now: a ``stall``'s period, length and the seconds into
        its current period (it holds requests in the last ``seconds`` of each), so a client can mark
        the stall windows on its own clock."""
        with self._lock:
            stall = self._profiles.get("stall")
            if stall is None:
                return {}
            phase = (self._wall() - stall.started) % stall.every
            return {"stall": {"seconds": stall.seconds, "every": stall.every, "phase_s": round(phase, 6)}}

    def ble(self, name: str) -> bool:
        """Whether the radio should inject ``name`` now; spends one of a ``count``."""
        if name not in BLE_FAULTS:
            raise ValueError(f"not a BLE fault: {name!r}")
        with self._lock:
            profile = self._profiles.get(name)
            return profile is not None and profile.trigger.fire(self._rng)

    def idle_timeout(self) -> float | None:
        """The towers' idle timeout while ``ble_idle_timeout`` is on (s), else ``None``."""
        with self._lock:
            profile = self._profiles.get("ble_idle_timeout")
            return None if profile is None else profile.ms / 1000

    def supervision_timeout(self) -> float:
        """Seconds a ``ble_supervision_timeout`` link stays silent before it is lost."""
        with self._lock:
            profile = self._profiles.get("ble_supervision_timeout")
            return 0.0 if profile is None else profile.ms / 1000

    def for_request(self, path: str) -> FaultAction:
        """The middleware's decision for one request to ``path`` (never called for ``/_sim``)."""
        if not self.http_active:
            return _NOTHING
        delay = 0.0
        with self._lock:
            profiles = self._profiles
            stall = profiles.get("stall")
            if stall is not None:
                phase = (self._wall() - stall.started) % stall.every
                quiet = stall.every - stall.seconds
                if phase >= quiet:
                    delay += stall.every - phase
            latency = profiles.get("latency")
            if latency is not None and latency.matches(path):
                delay += latency.ms / 1000
            slow = profiles.get("slow_token")
            if slow is not None and path == TOKEN_PATH:
                delay += slow.ms / 1000
            drop = profiles.get("drop_connection")
            if drop is not None and drop.matches(path) and drop.trigger.fire(self._rng):
                return FaultAction(delay=delay, drop=True)
            limit = profiles.get("rate_limit")
            if limit is not None and limit.matches(path) and limit.trigger.fire(self._rng):
                return FaultAction(delay=delay, status=429, retry_after=limit.retry_after)
            failure = profiles.get("http_5xx")
            if failure is not None and failure.matches(path) and failure.trigger.fire(self._rng):
                return FaultAction(delay=delay, status=failure.status)
        return FaultAction(delay=delay) if delay else _NOTHING
