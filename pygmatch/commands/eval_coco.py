"""``python -m eval.coco``: compare matchers on COCO images warped by random homographies."""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from pygmatch.files import check_outputs, writable_file, writable_folder

from pygmatch.commands.flags import ArgumentParser, command_name, non_negative_float, non_negative_int, positive_int, run_cli, size_type
from pygmatch.data.images import DEFAULT_SIZE, EMBEDDED_IMAGES
from pygmatch.commands.methods import add_method_args, methods_from_args

__all__ = ["cli", "main", "parser"]

DEFAULT_OUT = Path("eval-out")


def parser() -> argparse.ArgumentParser:
    p = ArgumentParser(prog=command_name("python -m eval.coco"), description=__doc__)
    src = p.add_mutually_exclusive_group()
    src.add_argument("--data", type=Path, default=None, help=f"folder of images (default: the embedded {EMBEDDED_IMAGES.name})")
    src.add_argument("--pairs", type=Path, help="evaluate on a saved pair set (.npz) as-is")
    p.add_argument("--save-pairs", type=Path, help="also write the generated pair set to this .npz")
    p.add_argument("--pairs-per-image", type=positive_int, default=1)
    p.add_argument("--max-images", type=positive_int, default=None, help="use only the first N images of --data")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--difficulty", type=non_negative_float, default=1.0, help="scales every homography/photometric range (see README)")
    p.add_argument("--size", type=size_type, default=DEFAULT_SIZE, help="image size WxH (default 640x480)")
    add_method_args(p)
    p.add_argument("--out", type=Path, default=None,
                   help=f"folder for report.md, metrics.json and plots (default: {DEFAULT_OUT}, or when that holds an earlier evaluation "
                        f"the first free {DEFAULT_OUT}-2, {DEFAULT_OUT}-3, ...)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace an earlier evaluation in --out (its report and drawings) and an existing --save-pairs")
    p.add_argument("--draw", type=non_negative_int, default=3, help="draw the matches of the first N pairs (0: none)")
    return p


def main(argv=None) -> int:
    args = parser().parse_args(argv)
    # imported after parsing: --help answers without loading torch
    from pygmatch.data.pairs import PairSet, make_pairs  # noqa: PLC0415
    from pygmatch.evaluation.anchors import anchors_note  # noqa: PLC0415
    from pygmatch.evaluation.evaluate import evaluate, shared_features  # noqa: PLC0415
    from pygmatch.evaluation.report import clear_previous_report, default_out, format_table, write_report  # noqa: PLC0415

    start = time.perf_counter()
    # Outputs first: a bad --out or --save-pairs is one line now, not a traceback after the work.
    if args.out is None:
        args.out = default_out(DEFAULT_OUT, args.overwrite)
    writable_folder(args.out, "--out")
    clear_previous_report(args.out, args.overwrite, remove=False)
    if args.save_pairs:
        writable_file(args.save_pairs, "--save-pairs", example="pairs.npz")
        check_outputs({"--save-pairs": args.save_pairs}, [args.pairs], args.overwrite)
    methods = methods_from_args(args)
    if args.pairs is not None:
        pairs = PairSet.load(args.pairs)
        source = f"pair set {args.pairs}"
    else:
        data = args.data or EMBEDDED_IMAGES
        pairs = make_pairs(data, args.seed, args.pairs_per_image, args.difficulty, args.size, args.max_images)
        source = f"{data} (seed {args.seed}, {args.pairs_per_image} pair(s)/image, difficulty {args.difficulty})"
    if args.save_pairs:
        pairs.save(args.save_pairs)
        print(f"saved {len(pairs)} pairs to {args.save_pairs}")
    clear_previous_report(args.out, args.overwrite)
    features = shared_features(methods)
    result = evaluate(pairs, methods, features, args.max_keypoints, out=args.out, draw=args.draw, estimator=args.estimator,
                      contrast_threshold=args.contrast_threshold, selection=args.selection)
    context = (f"Data: {source}; {features.upper()}, up to {args.max_keypoints} keypoints (contrast threshold "
               f"{args.contrast_threshold:g}; {args.selection}), {pairs.size[0]}x{pairs.size[1]}."
               + anchors_note(methods))
    write_report(result, args.out, context)
    print(context)
    print(format_table(result.summary))
    print(f"{len(pairs)} pairs, {len(result.skipped)} skipped; extraction {result.extract_ms:.1f} ms/image; "
          f"total {time.perf_counter() - start:.1f} s; report in {args.out}/report.md")
    return 0


def cli() -> None:
    """The ``pygmatch-eval`` console script: ``main`` with one-line errors and exit statuses."""
    run_cli(main, sys.argv[1:])


if __name__ == "__main__":
    cli()
