"""``python -m train.bank``: build a feature bank (installed: ``pygmatch-bank``).

A shim kept for a source checkout (not installed); the code is in ``pygmatch.commands.train_bank``."""
import sys

from pygmatch.commands.flags import run_cli
from pygmatch.commands.train_bank import *  # noqa: F403
from pygmatch.commands.train_bank import main, parser  # noqa: F401


if __name__ == "__main__":
    run_cli(main, sys.argv[1:])
