"""``python -m train.export``: a run's weights as a small checkpoint (installed: ``pygmatch-export``).

A shim kept for a source checkout (not installed); the code is in ``pygmatch.commands.train_export``."""
import sys

from pygmatch.commands.flags import run_cli
from pygmatch.commands.train_export import *  # noqa: F403
from pygmatch.commands.train_export import main, parser  # noqa: F401


if __name__ == "__main__":
    run_cli(main, sys.argv[1:])
