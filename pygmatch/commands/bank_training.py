"""The flags and output checks of ``train.refiner``, which trains a small model from a feature bank,
measures it on held-out pairs and writes it with a record of the run beside it."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from pygmatch.files import make_parent_folder, write_text, writable_file

from pygmatch.commands.flags import positive


def add_bank_training_args(p: argparse.ArgumentParser, bank_help: str, epochs: int, batch_size: int, unit: str,
                           workers_help: str, val_help: str) -> None:
    """The flags of a model trained from a bank's examples; the defaults and helps are arguments."""
    p.add_argument("--bank", type=Path, required=True, help=bank_help)
    p.add_argument("--out", type=Path, required=True, help="weights file to write (.pt); a .json of the run is written beside it")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out")
    p.add_argument("--pairs", type=positive(int), default=None, help="train on the bank's first N pairs (default: all)")
    p.add_argument("--epochs", type=positive(int), default=epochs)
    p.add_argument("--lr", type=positive(float), default=2e-3)
    p.add_argument("--batch-size", type=positive(int), default=batch_size, help=f"{unit} per step")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--workers", type=positive(int), default=2, help=workers_help)
    p.add_argument("--val-data", type=Path, default=None, help=val_help)
    p.add_argument("--val-images", type=positive(int), default=100, help="held-out images per difficulty")


def check_outputs(args: argparse.Namespace, example: str) -> None:
    """Everything that could fail after the training, checked before it (no work is lost): a
    writable ``--out`` that exists only with ``--overwrite``, a ``--val-data`` folder with images."""
    from pygmatch.data.images import list_images  # noqa: PLC0415
    from pygmatch.errors import PygmatchError  # noqa: PLC0415

    writable_file(args.out, "--out", example=example)
    if args.out.exists() and not args.overwrite:
        raise PygmatchError(f"--out {args.out}: already exists; choose another --out or pass --overwrite to replace it")
    if args.val_data is not None:
        list_images(args.val_data)  # a missing or imageless folder is one line now, not after the training


def write_trained(model, out: Path, record: dict) -> None:
    """``out`` (the model, its record inside) and ``out`` with ``.json`` (the record)."""
    make_parent_folder(out)
    model.save(out, training=record)
    write_text(out.with_suffix(".json"), json.dumps(record, indent=2))
