"""``python -m train.refiner --bank BANK --out refiner.pt``: train the ``LearnedRefiner`` (sub-pixel
refinement of matched positions, ``pygmatch.refinement``) on patches of a feature bank's pairs,
then measure it against the classical correlation refinement on held-out pairs (``--val-data``;
never ``coco/val``). The bank pairs' patches are kept in OUT.cache/ (about 90 KB per bank pair at
the default --per-pair) until the model is written: after a Ctrl-C the same command continues from
them (the held-out patches, a minute at most, are cut again)."""
from __future__ import annotations

import argparse
import sys
import time
from dataclasses import asdict

from pygmatch.commands.flags import ArgumentParser, command_name, positive, run_cli
from pygmatch.commands.bank_training import add_bank_training_args, check_outputs, write_trained


def parser() -> argparse.ArgumentParser:
    p = ArgumentParser(prog=command_name("python -m train.refiner"), description=__doc__)
    add_bank_training_args(p, "feature bank (python -m train.bank) whose source folders are still there", epochs=4, batch_size=512,
                           unit="patches", workers_help="processes cutting the patches",
                           val_help="held-out image folder (never coco/val): the error of its candidates after each epoch (a curve, "
                                    "OUT.png, beside the correlation refinement's), and RANSAC AUCs after training")
    p.add_argument("--per-pair", type=positive(int), default=64, help="candidates' patches cut per pair")
    p.add_argument("--channels", type=positive(int), default=8, help="of the patch features")
    p.add_argument("--layers", type=positive(int), default=2, help="3x3 convolutions of the patch features")
    p.add_argument("--hidden", type=positive(int), default=32, help="channels of the shift scorer")
    p.add_argument("--threads", type=positive(int), default=2, help="torch threads while training")
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    p.add_argument("--iterations", type=positive(int), default=1, help="inference: refinement passes stored with the weights")
    return p


def main(argv=None) -> int:
    args = parser().parse_args(argv)
    # imported after parsing: --help answers without loading torch
    import numpy as np  # noqa: PLC0415
    import torch  # noqa: PLC0415

    from pygmatch.data.bank import FeatureBank  # noqa: PLC0415
    from pygmatch.errors import Interrupted, PygmatchError  # noqa: PLC0415
    from pygmatch.matching.nearest import match_nn_ratio  # noqa: PLC0415
    from pygmatch.refinement import PatchRefiner, RefinerConfig  # noqa: PLC0415
    from pygmatch.training.curves import write_refiner_curve  # noqa: PLC0415
    from pygmatch.training.pair_cache import cached_pairs, interrupted_message, remove_cache  # noqa: PLC0415
    from pygmatch.training.refiner import bank_patches, fit_refiner, heldout_patches, heldout_refinement, offset_errors  # noqa: PLC0415
    from pygmatch.data.images import DEFAULT_SIZE  # noqa: PLC0415
    from pygmatch.matching.candidate_graph import CandidateGraphMatching  # noqa: PLC0415

    check_outputs(args, example="refiner.pt")
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        raise PygmatchError(f"--device {args.device}: CUDA is not available here")
    cfg = RefinerConfig(channels=args.channels, layers=args.layers, hidden=args.hidden, iterations=args.iterations)
    torch.set_num_threads(1)
    pairs = args.pairs or len(FeatureBank(args.bank))
    cache = args.out.with_suffix(".cache")
    if cached_pairs(cache, pairs):
        print(f"continuing from the patches of {cached_pairs(cache, pairs)} bank pairs kept in {cache}")
    try:
        heldout, levels, curve = None, {}, []
        if args.val_data is not None:
            heldout = heldout_patches(args.val_data, args.val_images, cfg)
            levels = {"keypoints as detected": offset_errors(np.zeros_like(heldout.offset), heldout),
                      "correlation (ncc), one pass": offset_errors(PatchRefiner().offsets(
                          torch.from_numpy(heldout.templates).float(), torch.from_numpy(heldout.windows).float()), heldout)}
        start = time.perf_counter()
        train = bank_patches(args.bank, cfg, args.pairs, args.per_pair, args.seed, args.workers, cache=cache)
        print(f"{len(train)} patches from {len(set(train.pair.tolist()))} bank pairs")
        torch.set_num_threads(args.threads)
        model = fit_refiner(train, cfg, args.epochs, args.lr, args.batch_size, args.seed, args.device, heldout=heldout, curve=curve)
        took = time.perf_counter() - start
        record = {"bank": str(args.bank), "pairs": int(train.pair.max()) + 1, "patches": len(train), "per_pair": args.per_pair,
                  "epochs": args.epochs, "lr": args.lr, "batch_size": args.batch_size, "seed": args.seed, "device": args.device,
                  "minutes": round(took / 60, 2), "config": asdict(cfg)}
        if args.val_data is not None:
            torch.set_num_threads(1)
            for c in curve:
                print(f"epoch {c['epoch']}: held-out candidates within 0.5 px {c['within_0.5']:.1f} %, mean error {c['mean_px']:.3f} px")
            print("  ".join(f"{name}: {v['within_0.5']:.1f} %, {v['mean_px']:.3f} px" for name, v in levels.items()))
            network = CandidateGraphMatching.load("default", threshold=0.2)  # the default pipeline's matches
            record["curve"], record["levels"] = curve, levels
            record["heldout"] = {"data": str(args.val_data), "images": args.val_images, "seed": 7, "metrics": heldout_refinement(
                args.val_data, args.val_images, {"default": lambda kp0, kp1: network.match(kp0, kp1, DEFAULT_SIZE),
                                                          "nn-ratio": match_nn_ratio},
                {"none": None, "ncc": PatchRefiner().refine, "learned": model.refine})}
            for name, m in record["heldout"]["metrics"].items():
                print(f"held-out {name:24s} AUC@1 {m['auc@1']:5.1f}  AUC@3 {m['auc@3']:5.1f}  within 0.5 px {m['p@0.5']:5.1f} %")
        write_trained(model, args.out, record)
    except KeyboardInterrupt:
        raise Interrupted(interrupted_message(cache, "patches", pairs), 130) from None
    remove_cache(cache)
    if curve:
        write_refiner_curve(curve, levels, args.out.with_suffix(".png"))
    print(f"wrote {args.out} ({took / 60:.1f} min of training)")
    return 0


def cli() -> None:
    """The ``pygmatch-refiner`` console script."""
    run_cli(main, sys.argv[1:])


if __name__ == "__main__":
    cli()
