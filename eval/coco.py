"""``python -m eval.coco``: compare matchers on warped COCO images (installed: ``pygmatch-eval``).

A shim kept for a source checkout (not installed); the code is in ``pygmatch.commands.eval_coco``."""
from pygmatch.commands.flags import run_cli
from pygmatch.commands.eval_coco import *  # noqa: F403
from pygmatch.commands.eval_coco import main, parser  # noqa: F401


if __name__ == "__main__":
    run_cli(main)
