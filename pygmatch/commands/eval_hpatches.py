"""``python -m eval.hpatches``: compare matchers on real photograph sequences (HPatches, Oxford affine).

Every sequence folder gives the pairs (1, N) of its reference image and each other photograph,
related by the sequence's ground-truth homography. Same methods, metrics and report as
``eval.coco`` (one evaluation core), plus a table per sequence and per kind (HPatches ``i_*``
illumination, ``v_*`` viewpoint, anything else "other")."""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from pygmatch.files import writable_folder, write_text

from pygmatch.commands.flags import ArgumentParser, command_name, non_negative_int, positive_int, run_cli
from pygmatch.data.sequences import DEFAULT_MAX_SIDE, EMBEDDED_SEQUENCES, load_sequences
from pygmatch.commands.methods import add_method_args, methods_from_args

KIND_ORDER = ("illumination", "viewpoint", "other")
DEFAULT_OUT = Path("eval-out/hpatches")
PRINT_SEQUENCES = 30  # the per-sequence table goes to stdout up to this many sequences (always to report.md)


def max_side_type(text: str) -> int:
    try:
        v = int(text)
        if v != 0 and v < 32:
            raise ValueError
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of pixels >= 32, or 0 for the original size, got {text!r}") from None
    return v


def parser() -> argparse.ArgumentParser:
    p = ArgumentParser(prog=command_name("python -m eval.hpatches"), description=__doc__,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", type=Path, default=None,
                   help=f"folder of sequence folders, or one sequence folder (default: the embedded {EMBEDDED_SEQUENCES.name})")
    p.add_argument("--max-side", type=max_side_type, default=DEFAULT_MAX_SIDE,
                   help=f"downscale images so the longer side is at most this many pixels, the homographies adjusted "
                        f"(default {DEFAULT_MAX_SIDE}, as in training; 0 keeps the original size)")
    p.add_argument("--max-sequences", type=positive_int, default=None, help="use only the first N sequences (sorted by name)")
    add_method_args(p)
    p.add_argument("--out", type=Path, default=None,
                   help=f"folder for report.md, metrics.json and plots (default: {DEFAULT_OUT}, or when that holds an earlier evaluation "
                        f"the first free {DEFAULT_OUT}-2, {DEFAULT_OUT}-3, ...)")
    p.add_argument("--overwrite", action="store_true", help="replace an earlier evaluation in --out (its report and drawings)")
    p.add_argument("--draw", type=non_negative_int, default=3, help="draw the matches of the last pair (1, N) of the first N sequences (0: none)")
    return p


def last_pair_of_first_sequences(pairs, n: int) -> set[int]:
    """Indices of the last pair (the largest change) of each of the first ``n`` sequences."""
    last = {p.sequence: k for k, p in enumerate(pairs.pairs)}
    return set(list(last.values())[:max(n, 0)])


def main(argv=None) -> int:
    args = parser().parse_args(argv)
    # imported after parsing: --help answers without loading torch
    from pygmatch.evaluation.anchors import anchors_note  # noqa: PLC0415
    from pygmatch.evaluation.evaluate import evaluate, shared_features, summarize_groups  # noqa: PLC0415
    from pygmatch.evaluation.report import (clear_previous_report, default_out, format_group_table, format_table,  # noqa: PLC0415
                                            write_report)

    start = time.perf_counter()
    if args.out is None:
        args.out = default_out(DEFAULT_OUT, args.overwrite)
    writable_folder(args.out, "--out")  # a bad --out is one line now, not a traceback after the work
    clear_previous_report(args.out, args.overwrite, remove=False)
    methods = methods_from_args(args)
    data = args.data or EMBEDDED_SEQUENCES
    pairs = load_sequences(data, args.max_side, args.max_sequences)
    clear_previous_report(args.out, args.overwrite)
    features = shared_features(methods)
    result = evaluate(pairs, methods, features, args.max_keypoints, out=args.out, draw=last_pair_of_first_sequences(pairs, args.draw),
                      estimator=args.estimator, contrast_threshold=args.contrast_threshold,
                      selection=args.selection)

    kind_of = {p.sequence: p.kind for p in pairs.pairs}
    by_sequence = summarize_groups(result, [p.sequence for p in pairs.pairs])
    by_kind_unordered = summarize_groups(result, [p.kind for p in pairs.pairs])
    by_kind = {k: by_kind_unordered[k] for k in KIND_ORDER if k in by_kind_unordered}
    kinds = ", ".join(f"{sum(v == k for v in kind_of.values())} {k}" for k in by_kind)
    size = f"longer side at most {args.max_side} px" if args.max_side else "original size"
    context = (f"Data: {data}: {len(by_sequence)} sequence(s) ({kinds}), {len(pairs)} pairs (1, N); images {size}; "
               f"{features.upper()}, up to {args.max_keypoints} keypoints (contrast threshold {args.contrast_threshold:g}; {args.selection}). "
               f"Corner error over image 1's corners, in image N's pixels."
               + anchors_note(methods))
    kind_table = format_group_table(by_kind, "kind")
    sequence_table = format_group_table(by_sequence, "sequence", extra=kind_of, extra_label="kind")
    write_report(result, args.out, context, sections=[
        "## By kind", "", "HPatches `i_*` = illumination, `v_*` = viewpoint; any other sequence name = other.", "",
        kind_table, "", "## By sequence", "", sequence_table, "",
    ])
    write_text(args.out / "by_sequence.json", json.dumps({"kind": by_kind, "sequence": by_sequence, "sequence_kind": kind_of}, indent=2))
    print(context)
    print(format_table(result.summary))
    print("\nby kind:")
    print(kind_table)
    if len(by_sequence) <= PRINT_SEQUENCES:
        print("\nby sequence:")
        print(sequence_table)
    failed = sum(bool(p.get("failed")) for p in next(iter(result.per_pair.values())))
    print(f"{len(pairs)} pairs in {len(by_sequence)} sequences, {failed} counted as failures, {len(pairs.skipped)} sequence(s) without a pair; "
          f"extraction {result.extract_ms:.1f} ms/image; total {time.perf_counter() - start:.1f} s; report in {args.out}/report.md")
    return 0


def cli() -> None:
    """The ``pygmatch-hpatches`` console script: ``main`` with one-line errors and exit statuses."""
    run_cli(main, sys.argv[1:])


if __name__ == "__main__":
    cli()
