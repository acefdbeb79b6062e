"""Shared plumbing of the command-line tools: one-line errors and warnings, common flag types."""
from __future__ import annotations

import argparse
import sys
import warnings
from typing import Callable

from .errors import Interrupted, PygmatchError


def int_pair(names: str, minimum: int, example: str):
    """An argparse type for ``AxB`` flags, e.g. ``int_pair("WIDTHxHEIGHT", 16, "640x480")``."""
    def parse(text: str) -> tuple[int, int]:
        try:
            a, b = (int(v) for v in text.lower().split("x"))
            if a < minimum or b < minimum:
                raise ValueError
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {names} with both >= {minimum}, e.g. {example}, got {text!r}") from None
        return a, b
    return parse


def positive(kind=int):
    """An argparse type for numbers > 0 of ``kind``."""
    def parse(text: str):
        try:
            v = kind(text)
            if not v > 0:
                raise ValueError
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a positive {kind.__name__}, got {text!r}") from None
        return v
    return parse


size_type = int_pair("WIDTHxHEIGHT", 16, "640x480")
positive_int = positive(int)


def non_negative_int(text: str) -> int:
    try:
        v = int(text)
        if v < 0:
            raise ValueError
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {text!r}") from None
    return v


def non_negative_float(text: str) -> float:
    try:
        v = float(text)
        if not v >= 0:
            raise ValueError
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {text!r}") from None
    return v


def _one_line_warning(message, category, filename, lineno, line=None):
    return f"warning: {message}\n"


def run_cli(main: Callable[[list[str] | None], int | None], argv: list[str] | None = None) -> None:
    """Run ``main``; a ``PygmatchError`` becomes ``error: ...`` on stderr and exit status 2."""
    warnings.formatwarning = _one_line_warning
    try:
        code = main(argv)
    except PygmatchError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
    except Interrupted as e:
        print(str(e), file=sys.stderr)
        sys.exit(e.code)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)
    sys.exit(code or 0)
