"""Targets: where on the R-D curve a cell should land.

Written on the command line and in plugin records as strings:

* ``R=2``       the distortion at which the source's exact R(D) is 2 bits per realization
                (needs a source with a known R(D));
* ``D=0.5``     a distortion, in the source's distortion units per realization;
* ``D/Dmax=0.3`` a fraction of the source's D_max (needs D_max);
* ``slope=4``   a Lagrangian slope |dR/dD|, in bits per unit of distortion, for methods that
                sweep the curve by slope (the cell's distortion is then what the method reaches).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from rdbench.interfaces import Source

TargetKind = Literal["rate", "distortion", "dmax_fraction", "slope"]
_PREFIXES: dict[str, TargetKind] = {
    "R": "rate",
    "D": "distortion",
    "D/Dmax": "dmax_fraction",
    "slope": "slope",
}
_SYNTAX = "R=<bits>, D=<distortion>, D/Dmax=<fraction in (0, 1]> or slope=<bits per unit distortion>"


class TargetError(ValueError):
    """A target that cannot be parsed or cannot be resolved for a source."""


@dataclass(frozen=True)
class Target:
    """A parsed target; ``distortion`` is filled in by :meth:`resolve`."""

    kind: TargetKind
    value: float
    distortion: float | None = None

    @classmethod
    def parse(cls, text: str) -> Target:
        key, sep, raw = str(text).replace(" ", "").partition("=")
        if not sep or key not in _PREFIXES:
            raise TargetError(f"cannot read target {text!r}: write {_SYNTAX}")
        try:
            value = float(raw)
        except ValueError:
            raise TargetError(f"target {text!r}: {raw!r} is not a number") from None
        kind = _PREFIXES[key]
        if not math.isfinite(value) or value < 0 or (kind != "rate" and value == 0):
            raise TargetError(f"target {text!r}: the value must be a finite positive number")
        if kind == "dmax_fraction" and value > 1:
            raise TargetError(f"target {text!r}: D/Dmax must lie in (0, 1]")
        return cls(kind, value)

    def __str__(self) -> str:
        """The canonical text, lossless: ``Target.parse(str(t)) == t`` (``R=2``, ``D=0.12345678``)."""
        key = {v: k for k, v in _PREFIXES.items()}[self.kind]
        text = repr(self.value)
        return f"{key}={text[:-2] if text.endswith('.0') else text}"

    def resolve(self, source: Source) -> Target:
        """This target with ``distortion`` set for ``source`` (None for slope targets)."""
        if self.kind == "distortion":
            d = self.value
        elif self.kind == "slope":
            return self
        elif self.kind == "dmax_fraction":
            if source.d_max is None:
                raise TargetError(f"target {self}: the source has no known D_max; use D=<distortion>")
            d = self.value * float(source.d_max)
        else:
            if not source.has_exact_rd:
                raise TargetError(
                    f"target {self}: the source has no exact R(D) to turn a rate into a "
                    "distortion; use D=<distortion> or D/Dmax=<fraction>"
                )
            d = source.distortion_at_rate(self.value)
            if d is None:
                raise TargetError(f"target {self}: the source's R(D) never reaches {self.value:g} bits")
        return Target(self.kind, self.value, float(d))


def highest_rate_first(resolved: Sequence[Target]) -> list[int]:
    """Indices of resolved targets from the highest rate down (distortion targets by increasing
    distortion, then slope targets by decreasing slope): the order in which a method that
    cannot rank slopes and distortions together walks a curve."""
    return sorted(range(len(resolved)), key=lambda i: _rate_order(resolved[i]))


def _rate_order(target: Target) -> tuple[int, float]:
    return (1, -target.value) if target.kind == "slope" else (0, float(target.distortion))
