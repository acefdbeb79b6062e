"""``python -m eval.hpatches``: compare matchers on real photograph sequences (installed: ``pygmatch-hpatches``).

A shim kept for a source checkout (not installed); the code is in ``pygmatch.commands.eval_hpatches``."""
from pygmatch.commands.flags import run_cli
from pygmatch.commands.eval_hpatches import *  # noqa: F403
from pygmatch.commands.eval_hpatches import main, parser  # noqa: F401


if __name__ == "__main__":
    run_cli(main)
