"""Parsers of option values given as text (command-line flags, YAML run configs): each returns the
value or raises ``ValueError`` with a message that says what was expected."""
from __future__ import annotations


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


size_type = int_pair("WIDTHxHEIGHT", 16, "640x480")
positive_int = positive(int)
non_negative_float = non_negative(float)
non_negative_int = non_negative(int, "an integer")
