"""``python -m train.verifier --bank BANK --out verifier.pt``: train the ``CandidateVerifier`` (mutual
nearest neighbours kept or dropped by a learned verifier, ``pygmatch.matching.verifier``) from a
feature bank, then measure it against nn and nn-ratio on held-out pairs (``--val-data``; never
``coco/val``). The candidates' features are kept in OUT.cache/ (about 40 KB per bank pair) until the
model is written: after a Ctrl-C the same command continues from them."""
from __future__ import annotations

import argparse
import sys
import time
from dataclasses import asdict

from pygmatch.commands.flags import command_name, non_negative_int, positive, probability_threshold, run_cli
from pygmatch.commands.bank_training import add_bank_training_args, check_outputs, write_trained



def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=command_name("python -m train.verifier"), description=__doc__)
    add_bank_training_args(p, "feature bank (python -m train.bank), SIFT", epochs=8, batch_size=1024, unit="candidates",
                           workers_help="processes computing the candidates' features",
                           val_help="held-out image folder measured after training (never coco/val)")
    p.add_argument("--hidden", type=positive(int), default=64)
    p.add_argument("--layers", type=positive(int), default=2)
    p.add_argument("--precise-px", type=positive(float), default=1.0, help="label: the candidate is within this many px of the truth")
    p.add_argument("--threshold", type=probability_threshold, default=0.7, help="inference: keep candidates above this probability")
    p.add_argument("--min-keep", type=non_negative_int, default=20, help="inference: and at least this many of the most probable ...")
    p.add_argument("--pad-from", type=non_negative_int, default=10,
                   help="inference: ... when at least this many pass --threshold (fewer: the images do not overlap, only those are kept)")
    return p


def main(argv=None) -> int:
    args = parser().parse_args(argv)
    # imported after parsing: --help answers without loading torch
    import torch  # noqa: PLC0415

    from pygmatch.data.bank import FeatureBank  # noqa: PLC0415
    from pygmatch.errors import Interrupted  # noqa: PLC0415
    from pygmatch.matching.nearest import match_nn, match_nn_ratio  # noqa: PLC0415
    from pygmatch.matching.verifier import VerifierConfig  # noqa: PLC0415
    from pygmatch.training.pair_cache import cached_pairs, interrupted_message, remove_cache  # noqa: PLC0415
    from pygmatch.training.verifier import bank_candidates, fit_verifier, heldout_auc, heldout_pairs  # noqa: PLC0415

    check_outputs(args, example="verifier.pt")
    cfg = VerifierConfig(hidden=args.hidden, layers=args.layers, precise_px=args.precise_px, threshold=args.threshold, min_keep=args.min_keep,
                         pad_from=args.pad_from)
    torch.set_num_threads(1)
    pairs = args.pairs or len(FeatureBank(args.bank))
    cache = args.out.with_suffix(".cache")
    if cached_pairs(cache, pairs):
        print(f"continuing from the candidate features of {cached_pairs(cache, pairs)} bank pairs kept in {cache}")
    start = time.perf_counter()
    try:
        train = bank_candidates(args.bank, args.pairs, args.workers, cache=cache)
        print(f"{len(train)} candidates from {pairs} bank pairs ({100 * (train.error < cfg.precise_px).mean():.1f} % within {cfg.precise_px:g} px)")
        model = fit_verifier(train, cfg, args.epochs, args.lr, args.batch_size, args.seed)
        took = time.perf_counter() - start
        record = {"bank": str(args.bank), "pairs": pairs, "candidates": len(train), "epochs": args.epochs, "lr": args.lr,
                  "batch_size": args.batch_size, "seed": args.seed, "minutes": round(took / 60, 2), "config": asdict(cfg)}
        if args.val_data is not None:
            items = heldout_pairs(args.val_data, args.val_images)
            record["heldout"] = {"data": str(args.val_data), "images": args.val_images, "seed": 7, "auc": {
                name: {str(d): v for d, v in heldout_auc(fn, items).items()}
                for name, fn in (("verifier", model.match), ("nn", match_nn), ("nn-ratio", match_nn_ratio))}}
            for name, by_d in record["heldout"]["auc"].items():
                print(f"held-out AUC@3 {name:9s} " + "  ".join(f"d{d}: {v['auc@3']:.1f}" for d, v in by_d.items()))
        write_trained(model, args.out, record)
    except KeyboardInterrupt:
        raise Interrupted(interrupted_message(cache, "candidate features", pairs), 130) from None
    remove_cache(cache)
    print(f"wrote {args.out} ({took / 60:.1f} min of training)")
    return 0


def cli() -> None:
    """The ``pygmatch-verifier`` console script."""
    run_cli(main, sys.argv[1:])


if __name__ == "__main__":
    cli()
