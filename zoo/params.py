"""Declared component parameters: types, defaults, and checked overrides."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from zoo.errors import ZooError, closest

_TYPES = (bool, int, float, str)
_TRUE = {"true", "yes", "on", "1"}
_FALSE = {"false", "no", "off", "0"}
#: The integers numpy and TensorFlow hold (int64): beyond, they overflow.
_INT_RANGE = (-(2**63), 2**63 - 1)


@dataclass(frozen=True)
class Param:
    """One parameter a component accepts.

    Args:
        name: An identifier, set on the command line as ``--set KIND.NAME=VALUE``.
        type: ``bool``, ``int``, ``float`` or ``str``.
        default: The value used when nothing overrides it (``None``: no value).
        help: One line for ``zoo info``.
        choices: The only values allowed, when the set is closed.
        required: The user must give a value; ``default`` is ignored.
        minimum: The smallest number allowed (``int`` and ``float`` only).
        maximum: The largest number allowed (``int`` and ``float`` only).
        below: A number every value must be below (a rate below 1, say).

    Numbers are finite (``nan`` and ``inf`` are refused) and integers fit 64 bits
    whatever the bounds.
    """

    name: str
    type: type
    default: Any = None
    help: str = ""
    choices: tuple[Any, ...] | None = None
    required: bool = False
    minimum: float | None = None
    maximum: float | None = None
    below: float | None = None

    def __post_init__(self) -> None:
        if not self.name.isidentifier():
            raise ValueError(f"parameter name {self.name!r} is not a valid identifier")
        if self.type not in _TYPES:
            raise ValueError(
                f"parameter {self.name!r} has type {self.type!r}; expected bool, int, float or str"
            )
        if self.default is not None and not self.required:
            object.__setattr__(self, "default", self.coerce(self.default))

    @property
    def type_name(self) -> str:
        return self.type.__name__

    @property
    def allowed(self) -> str:
        """The values allowed, for messages and docs: ``a, b``, ``1 or more``, ``0 to 1``,
        ``0 or more, below 1``; empty when any value of the type is."""
        if self.choices:
            return ", ".join(map(str, self.choices))
        low, high, below = map(_shown, (self.minimum, self.maximum, self.below))
        if low and high:
            return f"{low} to {high}"
        bounds = (
            f"{low} or more" * bool(low),
            f"{high} or less" * bool(high),
            f"below {below}" * bool(below),
        )
        return ", ".join(b for b in bounds if b)

    def coerce(self, value: Any) -> Any:
        """``value`` (a CLI string or a TOML value) as this parameter's type.

        Raises:
            ValueError: the value does not fit; the message says why.
        """
        result = _coerce(self.type, value)
        if self.choices is not None and result not in self.choices:
            allowed = ", ".join(repr(c) for c in self.choices)
            raise ValueError(f"{result!r} is not one of {allowed}")
        if result is None or self.type not in (int, float):
            return result
        if self.minimum is not None and result < self.minimum:
            raise ValueError(f"{result!r} is below the minimum {_shown(self.minimum)}")
        if self.maximum is not None and result > self.maximum:
            raise ValueError(f"{result!r} is above the maximum {_shown(self.maximum)}")
        if self.below is not None and result >= self.below:
            raise ValueError(f"{result!r} is not below {_shown(self.below)}")
        return result


def _shown(bound: float | None) -> str:
    """A bound as people write it: ``4294967295``, ``0.5``; empty for none."""
    if bound is None:
        return ""
    return str(bound) if isinstance(bound, int) else f"{bound:g}"


def _coerce(kind: type, value: Any) -> Any:
    if value is None:
        return None
    if kind is bool:
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text in _TRUE | _FALSE:
            return text in _TRUE
        raise ValueError(f"{value!r} is not a boolean (use true or false)")
    if kind is int:
        if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
            raise ValueError(f"{value!r} is not an integer")
        try:
            integer = int(value)
        except ValueError:
            raise ValueError(f"{value!r} is not an integer") from None
        if not _INT_RANGE[0] <= integer <= _INT_RANGE[1]:
            raise ValueError(f"{value!r} is too large for an integer (64 bits)")
        return integer
    if kind is float:
        if isinstance(value, bool):
            raise ValueError(f"{value!r} is not a number")
        try:
            real = float(value)
        except (ValueError, OverflowError):  # OverflowError: an int past float's range
            raise ValueError(f"{value!r} is not a number") from None
        if not math.isfinite(real):
            raise ValueError(f"{value!r} is not a finite number")
        return real
    return str(value)


def describe_one(param: Param) -> str:
    """``a float (>= 0, below 1)``: what a parameter takes, for messages."""
    article = "an" if param.type_name == "int" else "a"
    return f"{article} {param.type_name}" + (f" ({param.allowed})" if param.allowed else "")


def describe(params: Sequence[Param]) -> str:
    """``name (type, default X)`` for every parameter, for error messages."""
    if not params:
        return "none (this component takes no parameters)"
    return "; ".join(
        f"{p.name} ({p.type_name}, {'required' if p.required else f'default {p.default!r}'})"
        for p in params
    )


def resolve(
    kind: str,
    name: str,
    params: Sequence[Param],
    layers: Sequence[tuple[str, Mapping[str, Any]]],
    flag: Callable[[str], str] | None = None,
) -> dict[str, Any]:
    """Defaults overridden by each layer in turn, every value checked.

    Args:
        kind: ``"dataset"``, ``"backbone"`` or ``"head"``, for messages.
        name: The component's name, for messages.
        params: What the component declares.
        layers: ``(source, values)`` pairs, weakest first, for example
            ``[("registry.toml", {...}), ("--set", {...})]``.
        flag: How the user sets a parameter on the command line, for the fix hint;
            ``--set KIND.PARAM=VALUE`` by default.

    Raises:
        ZooError: an unknown parameter, a badly typed value, or a required one missing.
    """
    owner = f"{kind} '{name}'"
    flag = flag or (lambda key: f"--set {kind}.{key}=VALUE")
    by_name = {p.name: p for p in params}
    values = {p.name: p.default for p in params}
    for source, overrides in layers:
        for key, raw in overrides.items():
            param = by_name.get(key)
            if param is None:
                hint = closest(key, by_name)
                raise ZooError(
                    f"{owner} has no parameter '{key}' (from {source}).",
                    expected=f"one of its parameters: {describe(params)}",
                    fix=(f"did you mean '{hint[0]}'? " if hint else "")
                    + "`zoo info` lists a component's parameters.",
                    got=key,
                )
            try:
                values[key] = param.coerce(raw)
            except ValueError as exc:
                raise ZooError(
                    f"{owner}: bad value for parameter '{key}' (from {source}): {exc}.",
                    expected=f"{describe_one(param)}; its parameters are: {describe(params)}",
                    fix=f"pass a valid value: {flag(key)}",
                    got=raw,
                ) from None
    missing = [p.name for p in params if p.required and values[p.name] is None]
    if missing:
        raise ZooError(
            f"{owner} needs a value for: {', '.join(missing)}.",
            expected=f"its parameters: {describe(params)}",
            fix=f"pass it on the command line: {flag(missing[0])}",
        )
    return values
