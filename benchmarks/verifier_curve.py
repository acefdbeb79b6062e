"""The candidate verifier's learning curve: held-out RANSAC AUC@3 against the number of bank pairs it
was trained on, at difficulties 1 and 2, with the nn / nn-ratio baselines and the oracle ceilings of
the same held-out pairs drawn in. Also the step breakdown of the training (features vs fitting).

    python benchmarks/verifier_curve.py --bank /work/bank-sift1024 --sizes 250,500,1000,2000,4000,10000

Held-out pairs: ``--val-data`` (default ``../shared/data/extra/coco-mini``: not in the bank, never
coco/val), ``--val-images`` images per difficulty, seed 7.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.screening import draw_levels  # noqa: E402
from pygmatch.matching.nearest import match_nn, match_nn_ratio  # noqa: E402
from pygmatch.matching.oracle import oracle_match  # noqa: E402
from pygmatch.training.verifier import bank_candidates, fit_verifier, heldout_auc, heldout_pairs  # noqa: E402
from pygmatch.matching.verifier import VerifierConfig  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--bank", required=True)
    p.add_argument("--sizes", default="250,500,1000,2000,4000,10000", help="training pairs (the bank's first N)")
    p.add_argument("--epochs", type=int, default=8)
    p.add_argument("--val-data", default=str(ROOT.parent / "shared" / "data" / "extra" / "coco-mini"))
    p.add_argument("--val-images", type=int, default=150)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "verifier-curve")
    args = p.parse_args()
    torch.set_num_threads(1)
    sizes = sorted(int(s) for s in args.sizes.split(","))
    t = time.perf_counter()
    train = bank_candidates(args.bank, sizes[-1], args.workers)
    feature_s = time.perf_counter() - t
    items = heldout_pairs(args.val_data, args.val_images)
    levels = {"nn": heldout_auc(match_nn, items), "nn-ratio": heldout_auc(match_nn_ratio, items)}
    for px in (1, 3):
        levels[f"oracle@{px}"] = heldout_auc_oracle(items, px)
    rows = []
    for n in sizes:
        t = time.perf_counter()
        model = fit_verifier(train.first_pairs(n), VerifierConfig(), epochs=args.epochs)
        fit_s = time.perf_counter() - t
        auc = heldout_auc(model.match, items)
        rows.append({"pairs": n, "candidates": int((train.pair < n).sum()), "fit_s": round(fit_s, 1), "auc": auc})
        print(f"{n:6d} pairs: " + "  ".join(f"d{d:g} AUC@3 {v['auc@3']:.1f}" for d, v in auc.items()), flush=True)
    record = {"bank": args.bank, "val_data": args.val_data, "val_images": args.val_images, "epochs": args.epochs,
              "feature_s_per_pair": feature_s / sizes[-1], "levels": levels, "rows": rows}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "curve.json").write_text(json.dumps(record, indent=2, default=float))
    write_table(record, args.out / "curve.md")
    plot(record, args.out / "curve.png")
    print(f"-> {args.out}/curve.md, curve.png")


def heldout_auc_oracle(items, px: float) -> dict:
    """The oracle's AUCs: it needs the true homography, which ``heldout_auc``'s matchers never see."""
    by_pair = iter([oracle_match(kp0.xy, kp1.xy, H, px) for kp0, kp1, H, _ in items])
    return heldout_auc(lambda kp0, kp1: next(by_pair), items)


def write_table(record: dict, path: Path) -> None:
    ds = sorted({d for r in record["rows"] for d in r["auc"]})
    head = "| trained on | candidates | fit s | " + " | ".join(f"AUC@3 d{d:g}" for d in ds) + " |"
    lines = [f"Held-out: {record['val_images']} images of {Path(record['val_data']).name} per difficulty (seed 7), "
             f"SIFT 1024, RANSAC 3 px. Features: {1000 * record['feature_s_per_pair']:.0f} ms per bank pair (all workers).", "",
             head, "|" + "---|" * (3 + len(ds))]
    for name, auc in record["levels"].items():
        lines.append(f"| {name} (no training) | | | " + " | ".join(f"{auc[d]['auc@3']:.1f}" for d in ds) + " |")
    for r in record["rows"]:
        lines.append(f"| {r['pairs']} pairs | {r['candidates']} | {r['fit_s']:.0f} | " + " | ".join(f"{r['auc'][d]['auc@3']:.1f}" for d in ds) + " |")
    path.write_text("\n".join(lines) + "\n")


def plot(record: dict, path: Path) -> None:
    import matplotlib  # noqa: PLC0415

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    ds = sorted({d for r in record["rows"] for d in r["auc"]})
    fig, axes = plt.subplots(1, len(ds), figsize=(6 * len(ds), 4.5))
    for ax, d in zip(np.atleast_1d(axes), ds):
        x = [r["pairs"] for r in record["rows"]]
        ax.plot(x, [r["auc"][d]["auc@3"] for r in record["rows"]], "o-", label="verifier")
        draw_levels(ax, {name: auc[d]["auc@3"] for name, auc in record["levels"].items()})
        ax.set(xscale="log", xlabel="bank pairs trained on", ylabel="held-out AUC@3 (%)", title=f"difficulty {d:g}")
        ax.grid(alpha=0.3)
        ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


if __name__ == "__main__":
    main()
