"""``python -m train.export RUN --out FILE.pt``: a run's best weights (its ``best.ckpt``, else
``last.ckpt``) as a small model file (config + weights, no optimiser state), with the run's config
and validation curve inside: of a ``train.run`` run, the graph network's (what ships as
``pygmatch/weights/candidate_graph.pt``); of a ``train.refiner`` run, the refiner's (as
``pygmatch/weights/refiner.pt``). An existing ``--out`` is kept unless ``--overwrite`` is given."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from pygmatch.commands.flags import ArgumentParser, command_name, probability_threshold, run_cli


def parser() -> argparse.ArgumentParser:
    p = ArgumentParser(prog=command_name("python -m train.export"), description=__doc__)
    p.add_argument("run", help="run folder (its best.ckpt) or checkpoint file")
    p.add_argument("--out", type=Path, required=True, help="the model file to write (refused if it exists, unless --overwrite)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out (never the checkpoint it reads)")
    p.add_argument("--match-threshold", type=probability_threshold, help="graph network: store this match threshold in [0, 1) (inference only)")
    return p


def main(argv=None) -> int:
    args = parser().parse_args(argv)
    from pygmatch.checkpoint import (load_model, read_checkpoint, resolve_checkpoint, save_model,  # noqa: PLC0415 (after parsing: --help stays quick)
                                     training_checkpoint)
    from pygmatch.errors import PygmatchError  # noqa: PLC0415
    from pygmatch.files import check_outputs, writable_file  # noqa: PLC0415
    from pygmatch.refinement import LearnedRefiner  # noqa: PLC0415
    from pygmatch.training.curves import run_record  # noqa: PLC0415

    writable_file(args.out, "--out", example="model.pt")  # a folder, a read-only folder: one line, before any work
    source = resolve_checkpoint(args.run)
    check_outputs({"--out": args.out}, [source], args.overwrite)  # never the checkpoint it reads, even with --overwrite
    record = {"source": str(source), "training": run_record(source)}
    run = training_checkpoint(read_checkpoint(source))
    if run is not None and run[0] == "refiner":
        if args.match_threshold is not None:
            raise PygmatchError(f"--match-threshold: {source} is a refiner, which has no match threshold")
        model = LearnedRefiner.load(source)
        path = model.save(args.out, **record)
    else:
        model = load_model(source, **({} if args.match_threshold is None else {"threshold": args.match_threshold}))
        path = save_model(model, args.out, **record)
    params = sum(t.numel() for t in model.parameters())
    print(f"{path}: {params:,} parameters, {path.stat().st_size / 1e6:.2f} MB")
    return 0


def cli() -> None:
    """The ``pygmatch-export`` console script: ``main`` with one-line errors and exit statuses."""
    run_cli(main, sys.argv[1:])


if __name__ == "__main__":
    cli()
