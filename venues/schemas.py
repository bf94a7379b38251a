"""Reading venue payloads into typed structs: the value types every venue's `schemas.py` builds on,
and `decode`, which turns msgspec's refusal into a reason that names the field and the value.

Each venue's `schemas.py` has one frozen `msgspec.Struct` per REST endpoint (an item of its
answer), named after it, with the venue's field names (`rename`) and `msgspec.Meta` constraints,
as NautilusTrader's adapters keep theirs. A payload that does not fit raises `MalformedItem`
(`decode`); the adapter turns that into a `Malformed` event for the item's instrument.

Numbers: venues send most of them as strings ("10659.509"); `decode` reads them as numbers
(msgspec's lax mode) unless the struct sets `STRICT` (listings, whose numbers are kept as written).
"""

from __future__ import annotations

import math
import re
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Annotated, Any, ClassVar, Literal, TypeVar

import msgspec

T = TypeVar("T")

MAX_FIGURE = 1e18  # as messages.events.MAX_AMOUNT: beyond it no market figure is real
# A finite number (NaN and infinity fail both bounds).
Finite = Annotated[float, msgspec.Meta(ge=-MAX_FIGURE, le=MAX_FIGURE)]
Blank = Literal[""]  # what the venues send for "no value" in a string-typed field
# A decimal number as a venue writes it ("0.10", "1e-8"); kept as text (its written precision counts).
DecimalText = Annotated[str, msgspec.Meta(pattern=r"^\s*[-+]?(\d+(\.\d*)?|\.\d+)([eE][-+]?\d+)?\s*$")]


class MalformedItem(ValueError):
    """A venue value that cannot be normalized; the message names the field and the value."""


class Schema(msgspec.Struct, frozen=True, rename="camel"):
    """Base of the venues' payload structs: camelCase names on the wire, frozen."""

    STRICT: ClassVar[bool] = False  # True: no string -> number conversion


def decode(raw: Any, schema: type[T], where: str = "") -> T:
    """`raw` (the venue's item as JSON decoded it) as `schema`, or MalformedItem naming the field
    and the value (`where`: what the item is, for the reason, e.g. "PRICE_FILTER")."""
    try:
        return msgspec.convert(raw, schema, strict=getattr(schema, "STRICT", True))
    except msgspec.ValidationError as exc:
        reason = explain(exc, raw)
        raise MalformedItem(f"{where}: {reason}" if where else reason) from None


def blank_none(value: T | Literal[""] | None) -> T | None:
    """A field sent as "" means no value."""
    return None if value == "" else value  # type: ignore[return-value]


_TYPES = {"float": "a number", "int": "an integer", "str": "a string", "array": "a list", "object": "an object",
          "bool": "true or false"}


def explain(exc: msgspec.ValidationError, raw: Any) -> str:
    """msgspec's refusal as `field` + what was sent: "openInterest='NaN' is not a finite number",
    "openInterest is not a number: {...}", "tickSize missing"."""
    message, _, where = str(exc).rpartition(" - at `")
    if not message:  # no path: the top level itself
        message, where = str(exc), "$"
    path = _path(where.rstrip("`"))
    key = ".".join(str(p) for p in path)
    missing = re.match(r"Object missing required field `(.+)`", message)
    if missing:
        return f"{key + '.' if key else ''}{missing.group(1)} missing"
    value = _lookup(raw, path)
    shown = short(value)
    wrong_type = re.match(r"Expected `(\w+)[^`]*`, got `", message)
    if wrong_type:
        return f"{key or 'the item'} is not {_TYPES.get(wrong_type.group(1), wrong_type.group(1))}: {shown}"
    if _non_finite(value):
        return f"{key}={shown} is not a finite number"
    return f"{key or 'the item'}={shown}: {message}"


def short(value: Any, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _path(where: str) -> list[str | int]:
    """`$.filters[0].tickSize` -> ["filters", 0, "tickSize"]."""
    return [int(p[1:-1]) if p.startswith("[") else p
            for p in where.removeprefix("$").replace("[", ".[").split(".") if p]


def _lookup(raw: Any, path: list[str | int]) -> Any:
    for key in path:
        try:
            raw = raw[key]
        except (KeyError, IndexError, TypeError):
            return None
    return raw


def _non_finite(value: Any) -> bool:
    try:
        return not math.isfinite(float(value))
    except (TypeError, ValueError, OverflowError):
        return False


# -- decimal text, as Nautilus reads it ---------------------------------------------------------


def places(text: str) -> int:
    """Decimal places of a number as the venue writes it, trailing zeros included ("0.10" -> 2,
    "10" -> 0): the precision Nautilus's `Price.from_str` / `Quantity.from_str` give it."""
    return max(0, -Decimal(text).as_tuple().exponent)  # type: ignore[operator]


def at_precision(text: str, precision: int) -> str:
    """`text` with exactly `precision` places, as Nautilus's `Price(float(text), precision)` prints it."""
    return f"{Decimal(text).quantize(Decimal(1).scaleb(-precision), ROUND_HALF_EVEN):f}"
