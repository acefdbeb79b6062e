"""``python -m eval.attention``: draw the matcher's attention (installed: ``pygmatch-attention``).

A shim kept for a source checkout (not installed); the code is in ``pygmatch.commands.eval_attention``."""
from pygmatch.commands.flags import run_cli
from pygmatch.commands.eval_attention import *  # noqa: F403
from pygmatch.commands.eval_attention import main, parser  # noqa: F401


if __name__ == "__main__":
    run_cli(main)
