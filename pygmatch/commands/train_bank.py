"""``python -m train.bank --data DIR [DIR ...] --pairs N --out BANK``: extract keypoints of homography
pairs once, for many trainings (``python -m train.run --bank BANK``). Run it again with a larger
``--pairs`` to extend the bank, or after an interruption to finish it; finished shards are kept,
damaged or missing ones (a deleted shard or file) are rebuilt exactly. A build whose estimated size
exceeds the free disk space is refused before any work."""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from pygmatch.commands.flags import ArgumentParser, command_name, contrast_threshold, non_negative_float, positive_int, run_cli, size_type
from pygmatch.data.features import BENCHMARK_CONTRAST_THRESHOLD, FEATURES


def float_list(text: str) -> tuple[float, ...]:
    try:
        values = tuple(non_negative_float(v) for v in text.split(","))
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers >= 0, e.g. 1,2, got {text!r}") from None
    return values


def parser() -> argparse.ArgumentParser:
    p = ArgumentParser(prog=command_name("python -m train.bank"), description=__doc__)
    p.add_argument("--data", nargs="+", required=True, help="image folders (pairs cycle through all their images)")
    p.add_argument("--out", type=Path, required=True, help="bank folder (created, resumed or extended)")
    p.add_argument("--pairs", type=positive_int, default=10000, help="pairs the bank should hold (rounded up to whole shards)")
    p.add_argument("--difficulty", type=float_list, default=(1.0, 2.0), help="difficulties, cycled pair by pair (default 1,2)")
    p.add_argument("--features", choices=FEATURES, default="sift")
    p.add_argument("--max-keypoints", type=positive_int, default=1024, help="stored per image; trainings may use fewer")
    p.add_argument("--contrast-threshold", type=contrast_threshold, default=BENCHMARK_CONTRAST_THRESHOLD,
                   help="SIFT's, OpenCV's units (default %(default)s, OpenCV's; the pipelines on photographs use 0.02)")
    p.add_argument("--size", type=size_type, default=(640, 480))
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--shard-pairs", type=positive_int, default=100, help="pairs per shard (the unit of resuming)")
    p.add_argument("--views", action="store_true",
                   help="also the keypoints of simulated oblique views (view synthesis; sift): train.run then trains on the rounds' candidates")
    p.add_argument("--workers", type=positive_int, default=2, help="extraction processes (one per core)")
    return p


def main(argv=None) -> int:
    args = parser().parse_args(argv)
    from pygmatch.data.bank import BankConfig, build_bank  # noqa: PLC0415 (after parsing: --help and flag errors stay fast)

    cfg = BankConfig(tuple(str(Path(d)) for d in args.data), args.features, args.max_keypoints, tuple(args.size), args.seed,
                     tuple(args.difficulty), args.shard_pairs, args.views, args.contrast_threshold)
    start = time.perf_counter()
    bank = build_bank(args.out, cfg, args.pairs, args.workers)
    made = bank.built_pairs
    took = time.perf_counter() - start
    size = bank.bytes_on_disk()
    rebuilt = f" ({len(bank.rebuilt_shards)} damaged shard(s) rebuilt)" if bank.rebuilt_shards else ""
    print(f"{bank}: {made} new pairs{rebuilt} in {took:.0f} s ({made / max(took, 1e-9):.1f} pairs/s); "
          f"{size / 2**20:.0f} MiB on disk, {size / len(bank) / 1024:.0f} KiB per pair")
    return 0


def cli() -> None:
    """The ``pygmatch-bank`` console script: ``main`` with one-line errors and exit statuses."""
    run_cli(main, sys.argv[1:])


if __name__ == "__main__":
    cli()
