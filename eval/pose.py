"""``python -m eval.pose``: relative pose on real photograph pairs with known cameras (installed: ``pygmatch-pose``).

A shim kept for a source checkout (not installed); the code is in ``pygmatch.commands.eval_pose``."""
from pygmatch.commands.flags import run_cli
from pygmatch.commands.eval_pose import *  # noqa: F403
from pygmatch.commands.eval_pose import main, parser  # noqa: F401


if __name__ == "__main__":
    run_cli(main)
