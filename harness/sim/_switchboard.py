"""``Switchboard``: named on/off switches, all off by default (the bug switches, the dialects)."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import ClassVar

__all__ = ["Switchboard"]


class Switchboard:
    """A dataclass of ``bool`` fields, each a switch; ``KIND`` names them in errors ("bug switch(es)")."""

    KIND: ClassVar[str]

    @classmethod
    def names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in dataclasses.fields(cls))  # type: ignore[arg-type]

    def update(self, flags: Mapping[str, bool]) -> None:
        """Set the named switches; raises ``KeyError`` naming an unknown one, changing nothing."""
        known = self.names()
        unknown = sorted(set(flags) - set(known))
        if unknown:
            raise KeyError(f"unknown {self.KIND}: {', '.join(unknown)}; known: {', '.join(known)}")
        for name, on in flags.items():
            setattr(self, name, bool(on))

    def as_dict(self) -> dict[str, bool]:
        return {name: bool(getattr(self, name)) for name in self.names()}

    def on(self) -> list[str]:
        """The names of the switches that are on."""
        return [name for name in self.names() if getattr(self, name)]

    def reset(self) -> None:
        self.update(dict.fromkeys(self.names(), False))
