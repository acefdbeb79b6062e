"""``python -m train.refiner``: train the sub-pixel refiner (installed: ``pygmatch-refiner``).

A shim kept for a source checkout (not installed); the code is in ``pygmatch.commands.train_refiner``."""
import sys

from pygmatch.commands.flags import run_cli
from pygmatch.commands.train_refiner import *  # noqa: F403
from pygmatch.commands.train_refiner import main, parser  # noqa: F401


if __name__ == "__main__":
    run_cli(main, sys.argv[1:])
