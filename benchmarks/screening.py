"""Screen training recipes on a feature bank: the same budget (steps × batch), seed and validation
pairs for each, then one table and one plot of validation AUC@3 against training pairs seen, with
the nn, nn-ratio and oracle levels of the same validation pairs as horizontal lines.

    python benchmarks/screening.py --bank BANK --val-data ../shared/data/extra/coco-mini --steps 400

Finished recipes are kept (their run folder holds last.ckpt), so it resumes. Writes
``benchmarks/results/screening.md`` and ``screening.png``.
"""
from __future__ import annotations

import argparse
import csv
import json
import subprocess
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

# name -> train.run flags on top of the common ones
RECIPES = {
    "gt3-prior": ["--gt-match-px", "3", "--gt-unmatched-px", "5"],
    "gt1-prior": ["--gt-match-px", "1", "--gt-unmatched-px", "3"],
    "gt1-strict-prior": ["--gt-match-px", "1", "--gt-unmatched-px", "1.5"],
    "gt1-noprior": ["--gt-match-px", "1", "--gt-unmatched-px", "3", "--no-descriptor-prior"],
    "gt1-prior-sparse-cross": ["--gt-match-px", "1", "--gt-unmatched-px", "3", "--cross", "descriptor-knn", "--cross-k", "16"],
    "gt1-prior-lr1e-3": ["--gt-match-px", "1", "--gt-unmatched-px", "3", "--lr", "1e-3"],
}


def baseline_levels(cfg: dict) -> dict:
    """nn, nn-ratio and oracle AUC@3 on exactly the validation pairs the trainings use."""
    from pygmatch.matching.nearest import nearest_neighbor_match  # noqa: PLC0415
    from pygmatch.data.ground_truth import ground_truth_matches  # noqa: PLC0415
    from pygmatch.evaluation.metrics import pair_metrics, summarize  # noqa: PLC0415
    from pygmatch.training.dataset import make_datasets  # noqa: PLC0415

    _, val = make_datasets(cfg)
    per = {k: [] for k in ("nn", "nn-ratio", "oracle@1", "oracle@3")}
    for k in range(len(val)):
        pair = val[k]
        x0, x1, p0, p1 = pair.x_0.numpy(), pair.x_1.numpy(), pair.pos_0.numpy().astype(np.float64), pair.pos_1.numpy().astype(np.float64)
        H = pair.H_0to1[0].double().numpy()
        size = tuple(int(v) for v in pair.image_size_0.reshape(-1).tolist())
        gt0, _ = ground_truth_matches(p0, p1, H)
        found = {"nn": nearest_neighbor_match(x0, x1), "nn-ratio": nearest_neighbor_match(x0, x1, 0.8)}
        for t in (1, 3):
            o0, _ = ground_truth_matches(p0, p1, H, t, max(t, 5))
            i = np.nonzero(o0 >= 0)[0]
            found[f"oracle@{t}"] = (np.stack([i, o0[i]], 1), np.ones(len(i), np.float32))
        for name, (matches, scores) in found.items():
            per[name].append(pair_metrics(matches, scores, p0, p1, gt0, H, size))
    return {name: summarize(rows)["auc@3"] for name, rows in per.items()}


def draw_levels(ax, levels: dict) -> None:
    """The baselines and ceilings as labelled horizontal lines, labels alternating left and right."""
    for k, ((name, v), style) in enumerate(zip(sorted(levels.items(), key=lambda kv: kv[1]), ("--", "-.", ":", ":"))):
        ax.axhline(v, color="gray" if name.startswith("nn") else "black", ls=style, lw=1)
        ax.annotate(f"{name} {v:.1f}", (k % 2, v), xycoords=("axes fraction", "data"), ha="right" if k % 2 else "left",
                    va="bottom" if k % 2 else "top", fontsize=8)


def read_curve(run: Path, batch: int) -> list[tuple[int, float]]:
    rows = [r for p in sorted((run / "csv").glob("version_*/metrics.csv")) for r in csv.DictReader(p.open())]
    return sorted({int(r["step"]) * batch: float(r["val/auc@3"]) for r in rows if r.get("val/auc@3")}.items())


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--bank", required=True)
    p.add_argument("--val-data", default="../shared/data/extra/coco-mini")
    p.add_argument("--val-images", type=int, default=48)
    p.add_argument("--difficulty", type=float, default=1.5, help="validation pairs' difficulty")
    p.add_argument("--steps", type=int, default=400)
    p.add_argument("--batch-size", type=int, default=4)
    p.add_argument("--val-every", type=int, default=50)
    p.add_argument("--recipes", default=",".join(RECIPES))
    p.add_argument("--runs", type=Path, default=Path("runs/screening"))
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    p.add_argument("--report-only", action="store_true", help="only tabulate and plot the finished runs")
    args = p.parse_args()
    common = ["--bank", args.bank, "--val-data", args.val_data, "--val-images", str(args.val_images), "--difficulty", str(args.difficulty),
              "--graph", "complete", "--preset", "cpu", "--deep-supervision", "--max-keypoints", "512", "--batch-size", str(args.batch_size),
              "--max-steps", str(args.steps), "--warmup-steps", "50", "--val-every", str(args.val_every), "--seed", "0", "--no-progress"]
    names = [n for n in args.recipes.split(",") if n]
    for name in names:
        run = args.runs / name
        curve = read_curve(run, args.batch_size) if (run / "last.ckpt").exists() else []
        if curve and curve[-1][0] >= args.steps * args.batch_size:  # finished: keep it
            continue
        if args.report_only:
            continue
        print(f"== {name}", flush=True)
        subprocess.run([sys.executable, "-m", "train.run", *common, *RECIPES[name], "--out", str(run)], cwd=ROOT, check=True)

    from train.run import resolve  # noqa: PLC0415

    levels = baseline_levels(resolve(common + ["--out", "/tmp/unused"]))
    curves = {n: read_curve(args.runs / n, args.batch_size) for n in names if (args.runs / n).exists()}
    lines = [f"Recipe screening: {args.steps} steps × batch {args.batch_size} each from scratch (dim 64, 5 layers, 2 heads, complete self "
             f"graph, dual-softmax, deep supervision, 512 keypoints), bank {Path(args.bank).name}, seed 0; validation AUC@3 (RANSAC 3 px) "
             f"on {args.val_images} fixed pairs of {args.val_data} at difficulty {args.difficulty}, every {args.val_every} steps.", "",
             "Same validation pairs: " + ", ".join(f"{k} {v:.1f}" for k, v in levels.items()) + ".", "",
             "| recipe | flags | AUC@3 first | best | last | mean of last 3 | slope of last half (per 1k pairs) |",
             "|---|---|---:|---:|---:|---:|---:|"]
    for n, c in curves.items():
        if not c:
            continue
        x, y = np.array([a for a, _ in c], float), np.array([b for _, b in c])
        half = x >= x[-1] / 2
        slope = np.polyfit(x[half] / 1000, y[half], 1)[0] if half.sum() >= 2 else float("nan")
        lines.append(f"| {n} | `{' '.join(RECIPES[n])}` | {y[0]:.1f} | {y.max():.1f} | {y[-1]:.1f} | {y[-3:].mean():.1f} | {slope:+.2f} |")
    text = "\n".join(lines)
    print(text)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "screening.md").write_text(text + "\n")
    (args.out / "screening.json").write_text(json.dumps({"levels": levels, "curves": curves}, indent=1))

    import matplotlib  # noqa: PLC0415

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    fig, ax = plt.subplots(figsize=(8, 5))
    low = min(levels.values()) - 12  # zoom on the levels; a recipe far below shows as "off the scale"
    for n, c in curves.items():
        if c:
            below = max(v for _, v in c) < low
            ax.plot(*zip(*[(x, max(v, low)) for x, v in c]), "o-", ms=3, label=n + (" (below the plot)" if below else ""))
    draw_levels(ax, levels)
    ax.set_ylim(low - 1, max(levels.values()) + 3)
    ax.set(xlabel="training pairs seen", ylabel="validation AUC@3 (%)", title="recipe screening")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(args.out / "screening.png", dpi=110)


if __name__ == "__main__":
    main()
