"""``LoadPlan``: what a load run will do, validated once, from ``[load]`` configuration and options.

Every run is bounded: a duration of at most an hour, at most 1,000 users or arrivals per second,
and against Harbor's sandbox a request budget (``sandbox_max_rps``, 2 per second unless
configured) that caps the rate whatever the users do. Load against production is refused.

``[tool.locker-harness.load]`` in ``pyproject.toml`` (or ``[load]`` in ``locker-harness.toml``)::

    users = 10                  # closed model: users running flows back to back
    spawn_rate = 2.0            # users started per second (ramp-up; default: all in the first second)
    rate = 5.0                  # open model instead: deliveries arriving per second
    duration = 30               # seconds of load
    processes = 1               # Locust worker processes on this host
    think = [0.5, 2.0]          # seconds between a user's flows (or one number)
    weights = { delivery = 3, browsing = 1, contention = 1 }
    contention_lockers = 3      # how many lockers the contention users fight over
    sandbox_max_rps = 2.0       # request budget against Harbor's sandbox
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from harness.config import Settings, TargetKind, file_table
from harness.errors import UsageError

__all__ = [
    "DEFAULT_DURATION_S",
    "DEFAULT_USERS",
    "MAX_DURATION_S",
    "SANDBOX_MAX_RPS",
    "USER_KINDS",
    "LoadPlan",
    "requests_per_delivery",
]

DEFAULT_USERS: Final = 10
DEFAULT_DURATION_S: Final = 10.0
MAX_DURATION_S: Final = 3600.0
MAX_USERS: Final = 1000
MAX_RATE: Final = 1000.0
#: Locust worker processes on one host: two per core (each is one gevent loop on one core; more
#: only contend for the cores and start slower than the harness waits), at most 64.
MAX_PROCESSES: Final = min(64, 2 * (os.cpu_count() or 1))
#: Requests per second allowed against Harbor's sandbox unless ``sandbox_max_rps`` says otherwise:
#: small, because the sandbox is shared and nobody has told us what it can take.
SANDBOX_MAX_RPS: Final = 2.0
#: The users and their default weights: deliveries dominate, as in a courier's day.
USER_KINDS: Final = {"delivery": 3, "browsing": 1, "contention": 1}
_LOAD_KEYS: Final = frozenset(
    {
        "users",
        "spawn_rate",
        "rate",
        "duration",
        "processes",
        "think",
        "weights",
        "contention_lockers",
        "sandbox_max_rps",
    }
)


def requests_per_delivery(doors: bool) -> int:
    """Requests one delivery makes: list, reserve, token, then 5 door steps or 2 releases."""
    return 8 if doors else 5


@dataclass(frozen=True, slots=True)
class LoadPlan:
    """A bounded load run: closed model (``users``) or open model (``rate`` deliveries per second)."""

    users: int = DEFAULT_USERS
    rate: float | None = None
    duration_s: float = DEFAULT_DURATION_S
    processes: int = 1
    think_s: tuple[float, float] = (0.0, 0.0)
    weights: Mapping[str, int] = dataclasses.field(default_factory=lambda: dict(USER_KINDS))
    contention_lockers: int = 3
    #: Requests per second for the whole run; ``None``: as fast as the users go.
    max_rps: float | None = None
    #: Users started per second (Locust's ramp-up); ``None``: all of them at once (at most 100 a second).
    spawn_rate: float | None = None

    def __post_init__(self) -> None:
        _check_range("users", self.users, 1, MAX_USERS)
        _check_range("duration", self.duration_s, 1, MAX_DURATION_S)
        _check_range("processes", self.processes, 1, MAX_PROCESSES)
        _check_range("contention_lockers", self.contention_lockers, 1, 100)
        if self.rate is not None:
            _check_range("rate", self.rate, 0.01, MAX_RATE)
        low, high = self.think_s
        if not (math.isfinite(low) and math.isfinite(high) and 0 <= low <= high <= 600):
            raise UsageError(f"think times must be 0 <= MIN <= MAX <= 600 seconds, not {low:g},{high:g}")
        unknown = sorted(set(self.weights) - set(USER_KINDS))
        if unknown:
            raise UsageError(f"unknown user kind(s) in weights: {', '.join(unknown)}; known: {', '.join(USER_KINDS)}")
        if any(weight < 0 for weight in self.weights.values()) or not any(self.weights.values()):
            raise UsageError("weights must be whole numbers >= 0, at least one of them above 0")
        if self.max_rps is not None:
            _check_range("the request budget", self.max_rps, 0.01, 100_000)
        if self.spawn_rate is not None:
            _check_range("spawn_rate", self.spawn_rate, 0.01, MAX_USERS)

    @property
    def mode(self) -> str:
        """``open`` (arrivals per second) or ``closed`` (users)."""
        return "closed" if self.rate is None else "open"

    @property
    def user_classes(self) -> tuple[str, ...]:
        """The locustfile's user classes this plan runs (the open model runs deliveries only)."""
        if self.rate is not None:
            return ("DeliveryUser",)
        return tuple(f"{kind.capitalize()}User" for kind, weight in self.weights.items() if weight > 0)

    def with_budget(self, budget_rps: float, *, doors: bool) -> tuple[LoadPlan, str | None]:
        """This plan held to ``budget_rps`` requests per second, and a note if that lowered it."""
        note = None
        rate = self.rate
        if rate is not None and rate * requests_per_delivery(doors) > budget_rps:
            rate = budget_rps / requests_per_delivery(doors)
            note = (
                f"--rate lowered to {rate:.3g} deliveries/s: the request budget is {budget_rps:g}/s "
                "(sandbox_max_rps in [load])"
            )
        max_rps = budget_rps if self.max_rps is None else min(self.max_rps, budget_rps)
        return dataclasses.replace(self, rate=rate, max_rps=max_rps), note

    def as_dict(self) -> dict[str, Any]:
        return {
            "mode": self.mode,
            "users": self.users,
            "rate": self.rate,
            "duration_s": self.duration_s,
            "processes": self.processes,
            "think_s": list(self.think_s),
            "weights": dict(self.weights),
            "contention_lockers": self.contention_lockers,
            "max_rps": self.max_rps,
            "spawn_rate": self.spawn_rate,
        }

    @classmethod
    def resolve(
        cls,
        settings: Settings,
        *,
        users: int | None = None,
        rate: float | None = None,
        duration_s: float | None = None,
        processes: int | None = None,
        think: str | None = None,
        weights: str | None = None,
        contention_lockers: int | None = None,
        max_rps: float | None = None,
        spawn_rate: float | None = None,
    ) -> tuple[LoadPlan, str | None]:
        """The plan from options (``None``: not given) over ``[load]`` over the defaults, held to
        the sandbox budget on Harbor's sandbox; and a note when the budget lowered the rate."""
        if settings.target.is_production:
            raise UsageError("load against production is refused: use --target local, sandbox or a URL")
        table, where = file_table(settings, "load")
        unknown = sorted(set(table) - _LOAD_KEYS)
        if unknown:
            raise UsageError(f"unknown key(s) in {where}: {', '.join(unknown)}; known: {', '.join(sorted(_LOAD_KEYS))}")

        def pick(option: Any, key: str, kind: type) -> Any:
            if option is not None:
                value, source = option, f"--{key.replace('_', '-')}"
            elif key not in table:
                return None
            else:
                value, source = table[key], f"{key} in {where}"
                if kind is float and isinstance(value, int) and not isinstance(value, bool):
                    value = float(value)
                if not isinstance(value, kind) or isinstance(value, bool):
                    raise UsageError(f"{source} must be a {kind.__name__}, not {value!r}")
            if isinstance(value, float) and not math.isfinite(value):  # nan and inf pass every comparison
                raise UsageError(f"{source} must be a finite number, not {value!r}")
            return value

        if max_rps is not None and not math.isfinite(max_rps):
            raise UsageError(f"--max-rps must be a finite number, not {max_rps!r}")

        chosen_rate = pick(rate, "rate", float)
        chosen_users = pick(users, "users", int)
        if chosen_users is None:
            chosen_users = DEFAULT_USERS if chosen_rate is None else _pool_for(chosen_rate)
        budget = pick(None, "sandbox_max_rps", float) or SANDBOX_MAX_RPS
        plan = cls(
            users=chosen_users,
            rate=chosen_rate,
            duration_s=pick(duration_s, "duration", float) or DEFAULT_DURATION_S,
            processes=pick(processes, "processes", int) or 1,
            think_s=_think(think if think is not None else table.get("think"), where),
            weights=_weights(weights if weights is not None else table.get("weights"), where),
            contention_lockers=pick(contention_lockers, "contention_lockers", int) or 3,
            max_rps=max_rps,
            spawn_rate=pick(spawn_rate, "spawn_rate", float),
        )
        if settings.target.kind is TargetKind.SANDBOX:
            return plan.with_budget(budget, doors=False)
        return plan, None


def _pool_for(rate: float) -> int:
    """Users to serve ``rate`` arrivals per second: enough to ride out a second-long stall."""
    return min(max(DEFAULT_USERS, math.ceil(rate * 2)), MAX_USERS)


def _check_range(name: str, value: float, low: float, high: float) -> None:
    if isinstance(value, bool) or not math.isfinite(value) or not low <= value <= high:
        raise UsageError(f"{name} must be between {low:g} and {high:g}, not {value!r}")


def _think(value: Any, where: str) -> tuple[float, float]:
    """``0.5``, ``"0.5,2"`` or ``[0.5, 2]`` as (min, max) seconds."""
    if value is None:
        return (0.0, 0.0)
    parts: list[Any]
    if isinstance(value, str):
        parts = [part for part in value.split(",") if part.strip()]
    elif isinstance(value, list):
        parts = value
    else:
        parts = [value]
    try:
        numbers = [float(part) for part in parts]
    except (TypeError, ValueError):
        raise UsageError(f"think times must be SECONDS or MIN,MAX, not {value!r} ({where})") from None
    if len(numbers) not in (1, 2):
        raise UsageError(f"think times must be SECONDS or MIN,MAX, not {value!r} ({where})")
    return (numbers[0], numbers[-1])


def _weights(value: Any, where: str) -> dict[str, int]:
    """``delivery=3,browsing=1`` or a table; kinds not named get weight 0 once any is named."""
    if value is None:
        return dict(USER_KINDS)
    items: dict[str, Any]
    if isinstance(value, str):
        items = {}
        for item in filter(None, (part.strip() for part in value.split(","))):
            name, sep, number = item.partition("=")
            if not sep:
                raise UsageError(f"weights must look like delivery=3,browsing=1, not {value!r}")
            items[name.strip()] = number.strip()
    elif isinstance(value, dict):
        items = value
    else:
        raise UsageError(f"weights in {where} must be a table like {{ delivery = 3 }}, not {value!r}")
    weights = dict.fromkeys(USER_KINDS, 0)
    for name, number in items.items():
        try:
            weights[name] = int(number)
        except (TypeError, ValueError):
            raise UsageError(f"weight of {name} must be a whole number, not {number!r}") from None
    return weights
