"""Package attributes imported on first use: ``pygmatch``, ``pygmatch.data``, ``pygmatch.graphs``
and ``pygmatch.nn`` name their public classes at the top, but a command's ``--help`` must answer
without loading torch."""
from __future__ import annotations

import importlib


def lazy_attributes(package: str, where: dict[str, str]):
    """``(__getattr__, __dir__)`` for the package ``package`` whose public names ``where`` maps to
    the submodules (relative, e.g. ``".pipeline"``) that define them."""

    def __getattr__(name: str):
        if name in where:
            return getattr(importlib.import_module(where[name], package), name)
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    def __dir__():
        return sorted(set(vars(importlib.import_module(package))) | set(where))

    return __getattr__, __dir__
