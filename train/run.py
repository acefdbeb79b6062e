"""``python -m train.run``: train a matcher (installed: ``pygmatch-train``).

A shim kept for a source checkout (not installed); the code is in ``pygmatch.commands.train_run``."""
import sys

from pygmatch.commands.flags import run_cli
from pygmatch.commands.train_run import *  # noqa: F403
from pygmatch.commands.train_run import main, parser, resolve  # noqa: F401


if __name__ == "__main__":
    run_cli(main, sys.argv[1:])
