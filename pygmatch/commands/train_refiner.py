"""``python -m train.refiner --bank BANK --out runs/refiner``: train the ``LearnedRefiner`` (sub-pixel
refinement of matched positions, ``pygmatch.refinement``) on the patches of a feature bank's
mutual nearest-neighbour candidates, through the same training loop as ``train.run`` (run folder,
validation with the correlation refiner beside it, ``best.ckpt``, ``--resume last``, Ctrl-C saves).
Every flag is a field of the run's config (``pygmatch.training.config.RefinerTrainConfig``). The
patches are kept in RUN/patches/ (about 90 KB per bank pair at the default --per-pair) as they are
cut: an interrupted or resumed run reads them. ``python -m train.export RUN --out refiner.pt``
writes the model file; ``METHOD+RUN`` uses a run directly in ``eval.coco`` and ``Pipeline.load``."""
from __future__ import annotations

import argparse
import sys

from pygmatch.commands.flags import run_cli
from pygmatch.commands.train_run import resolve, run_parser
from pygmatch.training.config import RefinerTrainConfig


def parser() -> argparse.ArgumentParser:
    return run_parser(RefinerTrainConfig, "python -m train.refiner", __doc__)


def main(argv=None) -> int:
    cfg = resolve(argv, RefinerTrainConfig, parser())
    from pygmatch.training.run import train  # noqa: PLC0415 (Lightning is slow to import; flags first)

    out = train(cfg)
    print(f"\nrun folder: {out} (curves.png, config.yaml, csv/, tb/)"
          f"\nmodel file: python -m train.export {out} --out refiner.pt"
          f"\ncompare with the shipped refiner:\n  python -m eval.coco --methods nn-ratio+refiner,nn-ratio+{out} --out {out / 'eval-coco'}")
    return 0


def cli() -> None:
    """The ``pygmatch-refiner`` console script: ``main`` with one-line errors and exit statuses."""
    run_cli(main, sys.argv[1:])


if __name__ == "__main__":
    cli()
