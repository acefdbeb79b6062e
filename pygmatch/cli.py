"""Shared plumbing of the command-line tools: one-line errors and warnings, common flag types."""
from __future__ import annotations

import argparse
import sys
import warnings
from typing import Callable

from .errors import PygmatchError


def size_type(text: str) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in text.lower().split("x"))
        if w < 16 or h < 16:
            raise ValueError
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected WIDTHxHEIGHT with both >= 16, e.g. 640x480, got {text!r}") from None
    return w, h


def positive_int(text: str) -> int:
    try:
        v = int(text)
        if v < 1:
            raise ValueError
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
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
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)
    sys.exit(code or 0)
