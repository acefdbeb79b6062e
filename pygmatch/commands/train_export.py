"""``python -m train.export RUN --out FILE.pt``: a run's best weights as a small self-contained
pygmatch checkpoint (config + weights, no optimiser state), e.g. the shipped default model. An
existing ``--out`` is kept unless ``--overwrite`` is given."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from pygmatch.commands.flags import command_name, positive_int, probability_threshold, run_cli
from pygmatch.errors import PygmatchError


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=command_name("python -m train.export"), description=__doc__)
    p.add_argument("run", help="run folder (its best.ckpt) or checkpoint file")
    p.add_argument("--out", type=Path, required=True, help="the model file to write (refused if it exists, unless --overwrite)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out")
    p.add_argument("--max-keypoints", type=positive_int, help="keypoints the Matcher extracts (inference only)")
    p.add_argument("--match-threshold", type=probability_threshold, help="match probability threshold in [0, 1) (inference only)")
    return p


def main(argv=None) -> int:
    args = parser().parse_args(argv)
    from pygmatch.checkpoint import load_model, save_model  # noqa: PLC0415 (after parsing: --help stays quick)
    from pygmatch.files import writable_file  # noqa: PLC0415

    writable_file(args.out, "--out", example="model.pt")  # a folder, a read-only folder: one line, before any work
    if args.out.exists() and not args.overwrite:
        raise PygmatchError(f"--out {args.out}: exists; choose another file name, or pass --overwrite to replace it")
    overrides = {k: v for k, v in (("max_keypoints", args.max_keypoints), ("match_threshold", args.match_threshold)) if v is not None}
    model = load_model(args.run, **overrides)
    path = save_model(model, args.out, {"source": str(args.run)})
    params = sum(t.numel() for t in model.parameters())
    print(f"{path}: {params:,} parameters, {path.stat().st_size / 1e6:.2f} MB")
    return 0


def cli() -> None:
    """The ``pygmatch-export`` console script: ``main`` with one-line errors and exit statuses."""
    run_cli(main, sys.argv[1:])


if __name__ == "__main__":
    cli()
