"""``python -m train.candidate_graph``: train the candidate graph network.

A shim kept for a source checkout (not installed); the code is in ``pygmatch.commands.train_candidate_graph``."""
import sys

from pygmatch.commands.flags import run_cli
from pygmatch.commands.train_candidate_graph import *  # noqa: F403
from pygmatch.commands.train_candidate_graph import main, parser  # noqa: F401


if __name__ == "__main__":
    run_cli(main, sys.argv[1:])
