"""A run's validation AUC@3 against training pairs seen, with the nn / nn-ratio / oracle levels of
the same validation pairs drawn in (from ``benchmarks/screening.py``'s ``screening.json``: valid
when the run validates as the screening does — same --val-data, --val-images, --difficulty, seed
and --max-keypoints).

    python benchmarks/learning_curve.py /work/runs/long --out benchmarks/results/long-run-curve.png
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.screening import draw_levels, read_curve  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("runs", nargs="+", type=Path)
    p.add_argument("--levels", type=Path, default=ROOT / "benchmarks" / "results" / "screening.json")
    p.add_argument("--out", type=Path, required=True)
    args = p.parse_args()
    import matplotlib  # noqa: PLC0415

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    from pygmatch.training.config import TrainConfig  # noqa: PLC0415

    levels = json.loads(args.levels.read_text())["levels"]
    fig, ax = plt.subplots(figsize=(8, 5))
    for run in args.runs:
        cfg = TrainConfig.from_dict(yaml.safe_load((run / "config.yaml").read_text()))  # either config layout
        curve = read_curve(run, cfg.optim.batch_size)
        label = run.name + (f" (from {Path(cfg.run.init).name})" if cfg.run.init else "")
        ax.plot(*zip(*curve), "o-", ms=3, label=label)
        best = max(curve, key=lambda c: c[1])
        print(f"{run}: {len(curve)} validations, last {curve[-1][1]:.1f} at {curve[-1][0]} pairs, best {best[1]:.1f} at {best[0]} pairs")
    draw_levels(ax, levels)
    ax.set(xlabel="training pairs seen in this run", ylabel="validation AUC@3 (%)", title="learning curve against the baselines")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out, dpi=110)
    print(f"-> {args.out}")


if __name__ == "__main__":
    main()
