"""The ablation table of the research notes: train every variant with the same budget and seed,
evaluate them all in one ``eval.coco`` run, write a markdown table and a bar plot.

    python benchmarks/ablation.py                      # CPU budget: ~55 min on 2 cores
    python benchmarks/ablation.py --scale 20 --accelerator gpu --workers 8   # a real run on a GPU
    python benchmarks/ablation.py --variants complete,knn16 --steps 5       # a smoke test

Finished runs are kept in ``--runs`` and skipped when the script is started again, so an
interrupted ablation continues where it stopped. Every run uses the same model size, seed,
data and steps; only the flags of its variant differ.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

from pygmatch.evaluation.metrics import auc_difference

VARIANTS = {
    "complete": ["--graph", "complete"],
    "knn8": ["--graph", "knn", "--k", "8"],
    "knn16": ["--graph", "knn", "--k", "16"],
    "knn32": ["--graph", "knn", "--k", "32"],
    "radius": ["--graph", "radius", "--radius", "0.05"],
    "mst": ["--graph", "mst"],
    "partition": ["--graph", "partition", "--cells", "4x4"],
    "multiscale-nested": ["--graph", "multiscale", "--ks", "8,16,all", "--rings", "nested"],
    "multiscale-disjoint": ["--graph", "multiscale", "--ks", "8,16,all", "--rings", "disjoint"],
    "multiscale-nested+ortho": ["--graph", "multiscale", "--ks", "8,16,all", "--rings", "nested", "--ortho-weight", "0.1"],
    "multiscale-disjoint+ortho": ["--graph", "multiscale", "--ks", "8,16,all", "--rings", "disjoint", "--ortho-weight", "0.1"],
    "knn16+per-layer-graph": ["--graph", "knn", "--k", "16", "--graph-update", "per-layer"],
    "knn16+frozen-first-2": ["--graph", "knn", "--k", "16", "--value-update", "frozen-first-2"],
    "knn16+values-every-2": ["--graph", "knn", "--k", "16", "--value-update", "every-2"],
}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--variants", default=",".join(VARIANTS), help="comma-separated subset of: " + ", ".join(VARIANTS))
    p.add_argument("--data", default="../shared/data/coco/train")
    p.add_argument("--val-data", default="../shared/data/coco/val")
    p.add_argument("--steps", type=int, default=120, help="training steps per variant (batch 4, 512 keypoints)")
    p.add_argument("--scale", type=int, default=1, help="multiply steps (e.g. 20 on a GPU)")
    p.add_argument("--model", default="--dim 64 --layers 4 --heads 2", help="model flags shared by every variant")
    p.add_argument("--accelerator", default="cpu")
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--eval-images", type=int, default=50, help="validation images evaluated (1 pair each, 1024 keypoints)")
    p.add_argument("--runs", type=Path, default=Path("runs/ablation"))
    p.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    args = p.parse_args(argv)
    names = [v.strip() for v in args.variants.split(",") if v.strip()]
    unknown = [v for v in names if v not in VARIANTS]
    if unknown:
        sys.exit(f"error: unknown variant(s) {', '.join(unknown)}; choose from {', '.join(VARIANTS)}")
    steps = args.steps * args.scale
    timings = {}
    for name in names:
        run = args.runs / name
        if (run / "done.json").is_file():
            timings[name] = json.loads((run / "done.json").read_text())["train_s"]
            print(f"[{name}] already trained, skipping", flush=True)
            continue
        cmd = [sys.executable, "-m", "train.run", *VARIANTS[name], *args.model.split(), "--assignment", "dual-softmax",
               "--data", args.data, "--val-data", args.val_data, "--val-images", "8", "--max-keypoints", "512",
               "--batch-size", "4", "--lr", "5e-4", "--warmup-steps", str(max(1, steps // 10)), "--max-steps", str(steps),
               "--val-every", str(steps), "--seed", "0", "--workers", str(args.workers), "--accelerator", args.accelerator,
               "--out", str(run), "--no-progress"]
        if (run / "last.ckpt").is_file():
            cmd += ["--resume", "last"]
        print(f"[{name}] training: {' '.join(cmd[3:])}", flush=True)
        start = time.perf_counter()
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
        timings[name] = time.perf_counter() - start
        (run / "done.json").write_text(json.dumps({"train_s": timings[name], "steps": steps}))
    ev = args.out / "ablation-eval"
    subprocess.run([sys.executable, "-m", "eval.coco", "--data", args.val_data, "--max-images", str(args.eval_images), "--methods", "nn-ratio",
                    "--compare", *[str(args.runs / n) for n in names], "--out", str(ev), "--draw", "0"], check=True)
    metrics = json.loads((ev / "metrics.json").read_text())
    errors = np.load(ev / "corner_errors.npz")

    # Differences of a point or two are within what 50 pairs can tell apart: the last column is
    # each variant's AUC@3 minus the complete graph's, with a paired bootstrap 90 % interval.
    reference = str(args.runs / "complete") if "complete" in names else "nn-ratio"
    keys = ["nn-ratio"] + [str(args.runs / n) for n in names]
    labels = ["nn-ratio"] + names
    diffs = {k: auc_difference(errors[k], errors[reference]) for k in keys}  # 2000 resamples each: once, for table and plot
    rows = ["| variant | P | R | AUC@1 | AUC@3 | AUC@5 | AUC@10 | ms/pair | parameters | train min | "
            f"AUC@3 − {Path(reference).name} [90 % CI] |", "|---|" + "---:|" * 10]

    def row(label, key, params, minutes):
        m = metrics[key]
        d, lo, hi = diffs[key]
        return (f"| {label} | {m['precision']:.1f} | {m['recall']:.1f} | {m['auc@1']:.1f} | {m['auc@3']:.1f} | {m['auc@5']:.1f} | "
                f"{m['auc@10']:.1f} | {m['ms_per_pair']:.0f} | {params:,} | {minutes:.1f} | {d:+.1f} [{lo:+.1f}, {hi:+.1f}] |")

    rows.append(row("nn-ratio (no training)", "nn-ratio", 0, 0))
    for name in names:
        state = torch.load(args.runs / name / "best.ckpt", map_location="cpu", weights_only=False)["state_dict"]
        rows.append(row(name, str(args.runs / name), sum(v.numel() for v in state.values()), timings[name] / 60))
    header = (f"Ablation: {steps} steps × batch 4 (512 SIFT keypoints) on {args.data}, seed 0, model `{args.model}`, dual-softmax; "
              f"evaluated on {args.eval_images} images of {args.val_data} (1024 keypoints, difficulty 1).\n\n")
    (args.out / "ablation.md").write_text(header + "\n".join(rows) + "\n")
    print(header + "\n".join(rows))
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ci = np.array([diffs[k] for k in keys])
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 0.35 * len(labels) + 1.5), sharey=True)
    y = np.arange(len(labels))[::-1]
    left.errorbar(ci[:, 0], y, xerr=[ci[:, 0] - ci[:, 1], ci[:, 2] - ci[:, 0]], fmt="o", capsize=3)
    left.axvline(0, color="grey", lw=1)
    left.set(yticks=y, yticklabels=labels, xlabel=f"AUC@3 − {Path(reference).name} (points, 90 % bootstrap interval)")
    for offset, key in ((0.2, "precision"), (-0.2, "recall")):
        right.barh(y + offset, [metrics[k][key] for k in keys], 0.4, label=key)
    right.set(xlabel="%", xlim=(0, 100))
    right.legend(fontsize=8, loc="lower right")
    for ax in (left, right):
        ax.grid(axis="x", alpha=0.3)
    fig.suptitle(f"Ablation: {steps} steps per variant, {args.eval_images} validation pairs")
    fig.tight_layout()
    fig.savefig(args.out / "ablation.png", dpi=120)

if __name__ == "__main__":
    main()
