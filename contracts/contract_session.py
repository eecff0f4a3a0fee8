"""What test_contract.py needs before any fixture runs: the example budget, and later the live target.

Schemathesis builds one test per operation when the module is imported, so its configuration
(examples, seed) must be known then: the conftest's ``pytest_configure`` hands it over here. The
schema's hooks (real ids) run inside the tests, once the ``contract_target`` fixture is live.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

import schemathesis

from harness.pytest_plugin import DEFAULT_BUDGET_S, DEFAULT_RACE, HarborOptions

if TYPE_CHECKING:
    from contract_target import ContractTarget

__all__ = ["Budget", "active_target", "budget", "remember", "schemathesis_config", "serving"]

#: Examples at the default budget (``--harbor-budget``, 20 s): per operation and phase, stateful
#: scenarios and steps per scenario. Measured on two cores: the contract file takes about 15 s in a pytest session.
_EXAMPLES_PER_OPERATION: Final = 25
_STATEFUL_SCENARIOS: Final = 25
_STATEFUL_STEPS: Final = 12
#: Schemathesis's seed when none is given: the same cases every run, so ``make test`` is repeatable.
_DEFAULT_SEED: Final = 0


@dataclass(frozen=True, slots=True)
class Budget:
    options: HarborOptions
    seed: int | None  # --hypothesis-seed or the run's seed, if given
    #: Whether Hypothesis was given a seed (--hypothesis-seed): else the stateful phase is derandomized.
    hypothesis_seeded: bool = False

    @property
    def examples_per_operation(self) -> int:
        return self.options.scaled(_EXAMPLES_PER_OPERATION, minimum=2)

    @property
    def stateful_scenarios(self) -> int:
        return self.options.scaled(_STATEFUL_SCENARIOS, minimum=5)

    @property
    def stateful_steps(self) -> int:
        return _STATEFUL_STEPS


_BUDGET: list[Budget] = []
_TARGET: list[ContractTarget] = []


def remember(options: HarborOptions, seed: int | None, *, hypothesis_seeded: bool) -> None:
    """Called by the conftest at configure time."""
    _BUDGET[:] = [Budget(options, seed, hypothesis_seeded)]


def budget() -> Budget:
    """This run's budget (the defaults when the module is imported outside pytest)."""
    if _BUDGET:
        return _BUDGET[0]
    defaults = HarborOptions(None, None, None, DEFAULT_BUDGET_S, control_plane=True, race=DEFAULT_RACE)
    return Budget(defaults, None)


def schemathesis_config() -> schemathesis.Config:
    """All default checks and phases, positive and negative data, within this run's budget.

    Given explicitly so that a ``schemathesis.toml`` in the working directory (the CLI's) does not
    change what the suite runs.
    """
    chosen = budget()
    return schemathesis.Config.from_dict(
        {
            "seed": chosen.seed if chosen.seed is not None else _DEFAULT_SEED,
            "generation": {
                "mode": "all",
                "max-examples": chosen.examples_per_operation,
                "database": "none",
            },
            "phases": {"stateful": {"max-steps": chosen.stateful_steps}},
        }
    )


@contextmanager
def serving(target: ContractTarget) -> Iterator[ContractTarget]:
    """Make ``target`` the one the schema's hooks map ids onto while the block runs."""
    _TARGET.append(target)
    try:
        yield target
    finally:
        _TARGET.remove(target)


def active_target() -> ContractTarget | None:
    return _TARGET[-1] if _TARGET else None
