"""Parsers of option values given as text (command-line flags, YAML run configs): each returns the
value or raises ``ValueError`` with a message that says what was expected."""
from __future__ import annotations

from dataclasses import field, fields

from .errors import PygmatchError


def int_pair(names: str, minimum: int, example: str):
    """A parser of ``AxB`` values, e.g. ``int_pair("WIDTHxHEIGHT", 16, "640x480")``."""
    def parse(text: str) -> tuple[int, int]:
        try:
            a, b = (int(v) for v in str(text).lower().split("x"))
            ok = a >= minimum and b >= minimum
        except ValueError:
            ok = False
        if not ok:
            raise ValueError(f"expected {names} with both >= {minimum}, e.g. {example}, got {text!r}")
        return a, b
    return parse


def positive(kind=int):
    """A parser of numbers > 0 of ``kind``."""
    def parse(text: str):
        try:
            v = kind(text)
            ok = v > 0
        except ValueError:
            ok = False
        if not ok:
            raise ValueError(f"expected a positive {kind.__name__}, got {text!r}")
        return v
    return parse


def non_negative(kind=float, noun: str = "a number"):
    """A parser of numbers >= 0 of ``kind`` (``noun`` names them in the message)."""
    def parse(text: str):
        try:
            v = kind(text)
            ok = v >= 0
        except ValueError:
            ok = False
        if not ok:
            raise ValueError(f"expected {noun} >= 0, got {text!r}")
        return v
    return parse


def probability_threshold(text: str) -> float:
    """A match probability threshold: a number in [0, 1)."""
    try:
        v = float(text)
        ok = 0 <= v < 1
    except ValueError:
        ok = False
    if not ok:
        raise ValueError(f"expected a probability threshold in [0, 1), got {text!r}")
    return v


def contrast_threshold(text: str | float) -> float:
    """SIFT's contrast threshold (OpenCV's units): a number in (0, 1)."""
    try:
        v = float(text)
        ok = 0 < v < 1
    except ValueError:
        ok = False
    if not ok:
        raise ValueError(f"expected a contrast threshold in (0, 1), got {text!r}")
    return v


size_type = int_pair("WIDTHxHEIGHT", 16, "640x480")
positive_int = positive(int)
non_negative_float = non_negative(float)
non_negative_int = non_negative(int, "an integer")


# Config dataclasses whose fields carry their flag's parser: the library owns the defaults, the
# commands derive their flags from the fields, and Python, flags and YAML give the same errors.
PAIR_FIELDS = ("size", "cells")  # written AxB on the command line; other lists a,b,c


def setting(default=None, parse=None, choices=None, factory=None, help: str | None = None):
    """A config field with the parser, choices and help of its command-line flag."""
    meta = {"parse": parse, "choices": choices, "help": help}
    return field(default_factory=factory, metadata=meta) if factory else field(default=default, metadata=meta)


def as_flag_text(name: str, value) -> str:
    """A value as it would be typed on the command line."""
    if isinstance(value, (list, tuple)):
        return ("x" if name in PAIR_FIELDS else ",").join(str(v) for v in value)
    return str(value)


def check_value(f, value):
    """``value`` of dataclass field ``f`` checked (and normalised, e.g. a YAML list to a size
    tuple) by the parser of its flag; ``ValueError`` with the flag's message when it fails."""
    if value is None:
        if f.default is None:
            return None
        raise ValueError("must be given (null is not allowed)")
    if isinstance(f.default, bool):
        if not isinstance(value, bool):
            raise ValueError(f"expected true or false, got {value!r}")
        return value
    parse, choices = f.metadata.get("parse"), f.metadata.get("choices")
    if isinstance(value, (list, tuple)) and parse is None and choices is None:  # a list of paths
        return [str(v) for v in value]
    if parse is not None:
        value = parse(as_flag_text(f.name, value))
    elif choices is not None or isinstance(f.default, str):
        value = str(value)  # e.g. precision: 32 in YAML is the choice "32"
    if choices is not None and value not in choices:
        raise ValueError(f"{value!r} is not one of {', '.join(map(str, choices))}")
    return value


class Section:
    """A dataclass mixin: checks every field with ``check_value`` when the object is made
    (``PygmatchError`` naming the field)."""

    def __post_init__(self):
        for f in fields(self):
            if f.metadata.get("parse") is None and f.metadata.get("choices") is None and isinstance(getattr(self, f.name), dict):
                continue  # a nested record (a graph's parameters), checked by its owner
            try:
                object.__setattr__(self, f.name, check_value(f, getattr(self, f.name)))
            except (ValueError, TypeError) as e:
                raise PygmatchError(f"{f.name}: {e}") from None
