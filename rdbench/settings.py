"""Settings checks: the one validator of a plugin's settings (types, ranges, unknown keys).

A record's ``defaults`` give each setting's name, default and type (an override must have the
default's JSON type; a default of None takes any value); its ``checks`` add what values are
allowed::

    from rdbench.settings import choice, number, whole

    EstimatorRecord(..., defaults={"steps": 2000, "lr": 1e-3, "mode": "fast"},
                    checks={"steps": whole(minimum=1), "lr": number(above=0), "mode": choice("fast", "exact")})

The runner validates every cell's fully resolved settings at plan time, so a bad ``--set``
fails before any cell runs, with one line naming the setting and what it accepts. Plugin
authors may call :func:`validate` from their own code too.
"""

from __future__ import annotations

import difflib
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Check:
    """The values one setting accepts beyond its default's type: numbers within bounds
    (``minimum`` / ``maximum`` inclusive, ``above`` / ``below`` exclusive), whole numbers,
    or one of ``choices``; None passes where ``nullable`` (or the default is None)."""

    minimum: float | None = None
    maximum: float | None = None
    above: float | None = None
    below: float | None = None
    whole: bool = False
    choices: tuple[Any, ...] | None = None
    nullable: bool = False

    def problem(self, value: Any) -> str | None:
        """What is wrong with ``value`` ("must be ..."), or None when it is allowed."""
        if value is None:
            return None if self.nullable else f"must be {self.describe()}, not null"
        if self.choices is not None:
            return None if value in self.choices else f"must be {self.describe()}"
        if not _is_number(value) or not math.isfinite(value):
            return f"must be {self.describe()}"
        if self.whole and not float(value).is_integer():
            return f"must be {self.describe()}"
        if (
            (self.minimum is not None and value < self.minimum)
            or (self.maximum is not None and value > self.maximum)
            or (self.above is not None and value <= self.above)
            or (self.below is not None and value >= self.below)
        ):
            return f"must be {self.describe()}"
        return None

    def describe(self) -> str:
        if self.choices is not None:
            text = "one of " + ", ".join(json.dumps(c) for c in self.choices)
        else:
            bounds = [
                f"{op} {json.dumps(v)}"
                for op, v in ((">=", self.minimum), (">", self.above), ("<=", self.maximum), ("<", self.below))
                if v is not None
            ]
            text = ("a whole number" if self.whole else "a finite number") + (
                f" {' and '.join(bounds)}" if bounds else ""
            )
        return text + (" or null" if self.nullable else "")


def whole(minimum: int | None = None, maximum: int | None = None, *, nullable: bool = False) -> Check:
    """A whole number within [minimum, maximum] (``1e4`` from JSON counts as 10000)."""
    return Check(minimum=minimum, maximum=maximum, whole=True, nullable=nullable)


def number(
    minimum: float | None = None,
    maximum: float | None = None,
    *,
    above: float | None = None,
    below: float | None = None,
    nullable: bool = False,
) -> Check:
    """A finite number within the bounds given (``above`` / ``below`` exclusive)."""
    return Check(minimum=minimum, maximum=maximum, above=above, below=below, nullable=nullable)


def choice(*choices: Any, nullable: bool = False) -> Check:
    """One of ``choices``."""
    return Check(choices=tuple(choices), nullable=nullable)


def validate(
    owner: str,
    defaults: Mapping[str, Any],
    checks: Mapping[str, Check],
    values: Mapping[str, Any],
) -> dict[str, Any]:
    """``values`` checked: every key a setting of ``defaults``, of its default's JSON type, and
    allowed by its check. Returns them with whole numbers given as floats made ints where the
    default or check is whole. Raises ValueError with one line naming ``owner.key``."""
    checked = dict(values)
    for key, value in values.items():
        if key not in defaults:
            hint = difflib.get_close_matches(key, list(defaults), n=1)
            known = (
                f"did you mean {hint[0]!r}?" if hint else f"its settings are {', '.join(sorted(defaults)) or '(none)'}"
            )
            raise ValueError(f"{owner} has no setting {key!r}; {known}")
        shown = f"{owner}.{key}={_dump(value)}"
        expected = _json_kind(defaults[key])
        if expected is not None and value is not None and not _fits(value, expected):
            raise ValueError(f"{shown}: expected {expected} (default {_dump(defaults[key])})")
        check = checks.get(key)
        if check is not None:
            nullable = check.nullable or defaults[key] is None
            problem = Check(**{**check.__dict__, "nullable": nullable}).problem(value)
            if problem:
                raise ValueError(f"{shown}: {problem}")
        if value is not None and _is_number(value) and (expected == "a whole number" or (check and check.whole)):
            checked[key] = int(value)
    return checked


def _dump(value: Any) -> str:
    try:
        return json.dumps(value)
    except (TypeError, ValueError):
        return repr(value)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _json_kind(value: Any) -> str | None:
    """The kind of a default value: what an override must be (None: anything)."""
    if value is None:
        return None
    for kind, types in (
        ("true or false", bool),
        ("a whole number", int),
        ("a number", float),
        ("a string", str),
        ("a list", (list, tuple)),
        ("a JSON object", Mapping),
    ):
        if isinstance(value, types):
            return kind
    return None


def _fits(value: Any, kind: str) -> bool:
    if kind == "a whole number":
        return _is_number(value) and math.isfinite(value) and float(value).is_integer()
    if kind == "a number":
        return _is_number(value)
    return {
        "true or false": isinstance(value, bool),
        "a string": isinstance(value, str),
        "a list": isinstance(value, (list, tuple)),
        "a JSON object": isinstance(value, Mapping),
    }[kind]
