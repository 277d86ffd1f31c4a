"""The one set of argument checks, and DataError: what was wrong, and what to do about it, where a value enters."""

from __future__ import annotations

import difflib
import math
from collections.abc import Iterable, Sequence
from numbers import Integral, Real
from typing import Any

MAX_LISTED = 10  # how many items an error message lists before "... and N more"


class DataError(ValueError):
    """Raised when data on disk is missing, malformed or unreadable; the message names the file and the fix."""


def whole(name: str, value: Any, *, low: int | None = None, high: int | None = None, hint: str = "") -> int:
    """Return `value` as an int if it is a whole number in [low, high], else raise ValueError naming it."""
    bounds = _bounds(low, high, False, False)
    if isinstance(value, bool) or not isinstance(value, Integral):
        raise ValueError(
            f"{name}={value!r} is not a whole number; pass an int{' ' + bounds if bounds else ''}{_hint(hint)}."
        )
    if (low is not None and value < low) or (high is not None and value > high):
        raise ValueError(f"{name}={value!r} is out of range: it must be {bounds}{_hint(hint)}.")
    return int(value)


def real(
    name: str,
    value: Any,
    *,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
    high_open: bool = False,
    hint: str = "",
) -> float:
    """Return `value` as a float if it is a finite number in its bounds (open or closed), else raise ValueError."""
    bounds = _bounds(low, high, low_open, high_open)
    if isinstance(value, bool) or not isinstance(value, Real) or not math.isfinite(value):
        raise ValueError(
            f"{name}={value!r} is not a finite number; pass a float{' ' + bounds if bounds else ''}{_hint(hint)}."
        )
    if (low is not None and (value < low or (low_open and value == low))) or (
        high is not None and (value > high or (high_open and value == high))
    ):
        raise ValueError(f"{name}={value!r} is out of range: it must be {bounds}{_hint(hint)}.")
    return float(value)


def flag(name: str, value: Any) -> bool:
    """Return `value` if it is True or False (numpy's bool too), else raise ValueError."""
    if not isinstance(value, bool) and type(value).__name__ != "bool_":
        raise ValueError(f"{name}={value!r} must be True or False.")
    return bool(value)


def choice(name: str, value: Any, choices: Iterable[Any], *, hint: str = "") -> Any:
    """Return `value` if it is one of `choices`, else raise ValueError with the nearest choice and the full list."""
    choices = tuple(choices)
    if value in choices:
        return value
    near = nearest_name(str(value), [str(c) for c in choices])
    guess = f" Did you mean {near!r}?" if near else ""
    raise ValueError(f"unknown {name}={value!r}.{guess} Choose one of: {', '.join(map(repr, choices))}{_hint(hint)}.")


def unit_triplet(name: str, value: Any, *, positive: bool = False) -> tuple[float, float, float]:
    """Return 3 per-channel numbers in [0, 1] (pixel values / 255), e.g. ImageData.mean, else raise ValueError."""
    try:
        vals = tuple(float(v) for v in value)
    except (TypeError, ValueError):
        vals = ()
    if len(vals) != 3 or not all(math.isfinite(v) for v in vals):
        raise ValueError(f"{name}={value!r} must be 3 per-channel numbers (R, G, B), e.g. ImageData.{name}.")
    if not all(0.0 <= v <= 1.0 for v in vals) or (positive and min(vals) <= 0):
        raise ValueError(
            f"{name}={value!r} must be in [0, 1] units (pixel values / 255{', > 0' if positive else ''}); "
            f"use ImageData.{name} or divide 0..255 values by 255."
        )
    return vals  # type: ignore[return-value]


def coerce(name: str, value: Any, *, kind: type, nullable: bool, hint: str, default: Any, path: bool = False) -> Any:
    """What papermill or a command line passes ("0.1", "true", "none", 3.0), converted to `kind` where that is safe.

    kind is bool, int, float or str; path: a str parameter that also takes a Path or a number (a folder named 2024).
    """
    if value is None or (nullable and isinstance(value, str) and value.strip().lower() in ("none", "null")):
        if nullable:
            return None
        raise ValueError(f"{name}=None is not allowed; give a {kind.__name__} ({hint}). Default: {default!r}.")
    bad = ValueError(f"{name}={value!r} is not a {kind.__name__} ({hint}). Default: {default!r}.")
    text = value.strip().lower() if isinstance(value, str) else None
    if kind is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, Integral) and value in (0, 1):
            return bool(value)
        if text in ("true", "false", "1", "0", "yes", "no"):
            return text in ("true", "1", "yes")
        raise bad
    if kind in (int, float):
        if text is not None:
            try:
                return kind(text)
            except ValueError:
                raise bad from None
        if kind is int:
            return int(value) if isinstance(value, float) and value.is_integer() else value  # whole() names the rest
        if isinstance(value, Real) and not isinstance(value, bool):
            return float(value)
        raise bad
    if kind is str:
        pathlike = path and not isinstance(value, bool) and (hasattr(value, "__fspath__") or isinstance(value, Real))
        if isinstance(value, str) or pathlike:
            return str(value)
        raise bad
    raise TypeError(f"unsupported parameter kind {kind}")


def nearest_name(name: str, known: Iterable[str]) -> str | None:
    """The known name closest to a misspelt one, or None."""
    match = difflib.get_close_matches(name, list(known), n=1, cutoff=0.5)
    return match[0] if match else None


def listing(items: Sequence[Any]) -> str:
    """The first MAX_LISTED items, comma-separated, then a count of the rest ("nothing" when empty)."""
    shown = ", ".join(str(i) for i in items[:MAX_LISTED]) or "nothing"
    return shown + (f" ... and {len(items) - MAX_LISTED} more" if len(items) > MAX_LISTED else "")


def _bounds(low, high, low_open: bool, high_open: bool) -> str:
    if low is not None and high is not None:
        if not low_open and not high_open:
            return f"in {low}..{high}"
        return f"{'>' if low_open else '>='} {low} and {'<' if high_open else '<='} {high}"
    if low is not None:
        return f"{'>' if low_open else '>='} {low}"
    if high is not None:
        return f"{'<' if high_open else '<='} {high}"
    return ""


def _hint(hint: str) -> str:
    return f" ({hint})" if hint else ""
