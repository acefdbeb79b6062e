"""``python -m eval.sfm``: structure from motion with pycolmap, pygmatch beside COLMAP (installed: ``pygmatch-sfm``).

A shim kept for a source checkout (not installed); the code is in ``pygmatch.commands.eval_sfm``."""
from pygmatch.commands.flags import run_cli
from pygmatch.commands.eval_sfm import *  # noqa: F403
from pygmatch.commands.eval_sfm import main, parser  # noqa: F401


if __name__ == "__main__":
    run_cli(main)
