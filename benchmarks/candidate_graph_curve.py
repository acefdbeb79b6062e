"""The learning curve of a candidate graph run, with the baselines drawn in.

Left: the run's own record (the ``.json`` that ``train.candidate_graph`` writes beside its model):
held-out bank loss against training pairs seen. Then, per evaluation set of
``candidate_graph_eval.py`` (held-out ``coco/val`` pairs, the real development pairs), RANSAC AUC@3
of the run's snapshots (``train.candidate_graph --snapshots``), unrefined and followed by the shipped
learned refiner, against pairs seen; the horizontal lines are nn, nn-ratio, the shipped verifier
(each unrefined, dashed, and refined, solid) and the ceilings nn-oracle@1 and oracle@1 on the same
pairs. Writes the plot and a ``.json`` of every value.

    python benchmarks/candidate_graph_curve.py /work/runs/final/cg.json --snapshots '/work/runs/final/cg-*.pt' [--every 2]
"""
from __future__ import annotations

import argparse
import glob
import json
import sys
from pathlib import Path

import matplotlib
import torch

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from candidate_graph_eval import evaluate, pair_set  # noqa: E402
from pygmatch.matching.candidate_graph import CandidateGraphMatching  # noqa: E402
from pygmatch.matching.nearest import NearestNeighbor  # noqa: E402
from pygmatch.matching.oracle import Oracle  # noqa: E402
from pygmatch.matching.refine import load_refiner  # noqa: E402
from pygmatch.matching.verifier import CandidateVerifier  # noqa: E402

BASELINES = {"nn": "tab:gray", "nn-ratio": "tab:orange", "verifier": "tab:green", "nn-oracle@1": "tab:purple", "oracle@1": "black"}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("run", type=Path, help="the run's .json")
    p.add_argument("--snapshots", default=None, help="glob of the run's snapshot files (NAME-PAIRS.pt)")
    p.add_argument("--every", type=int, default=1, help="evaluate every N-th snapshot (and always the last)")
    p.add_argument("--sets", default="coco-d2,real")
    p.add_argument("--refined-threshold", type=float, default=None,
                   help="the snapshots' threshold when the refiner follows (default: the stored one; the default pipeline: 0.2)")
    p.add_argument("--cache", type=Path, default=Path("/work/runs/eval-cache"))
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "candidate_graph_curve.png")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    rows = json.loads(args.run.read_text())["curve"]
    snaps = sorted(glob.glob(args.snapshots)) if args.snapshots else []
    snaps = [s for k, s in enumerate(snaps) if k % args.every == 0 or k == len(snaps) - 1]
    sets = args.sets.split(",") if snaps else []
    refiner = load_refiner("refiner")
    values = {"run": str(args.run), "curve": rows, "sets": {}}
    fig, axes = plt.subplots(1, 1 + len(sets), figsize=(4.6 * (1 + len(sets)), 3.8), squeeze=False)
    axes = axes[0]
    axes[0].plot([r["pairs"] for r in rows], [r["val_loss"] for r in rows], marker="o", ms=3)
    axes[0].set_title("held-out bank loss", fontsize=10)
    for ax, name in zip(axes[1:], sets):
        items = pair_set(name, args.cache, 4)
        base = evaluate(items, {"nn": NearestNeighbor(None), "nn-ratio": NearestNeighbor(0.8), "verifier": CandidateVerifier.load("default"),
                                "nn-oracle@1": Oracle(1.0, "nn"), "oracle@1": Oracle(1.0)}, refiner)
        curve = []
        for path in snaps:
            pairs = int(Path(path).stem.rsplit("-", 1)[1])
            if args.refined_threshold is None:
                r = evaluate(items, {"cg": CandidateGraphMatching.load(path)}, refiner)
            else:  # unrefined at the stored threshold, refined at the other: each pass once
                r = evaluate(items, {"cg": CandidateGraphMatching.load(path)}, refiner, variants=(False,))
                r.update(evaluate(items, {"cg": CandidateGraphMatching.load(path, threshold=args.refined_threshold)}, refiner, variants=(True,)))
            curve.append({"pairs": pairs, "auc@3": r["cg"]["summary"]["auc@3"], "auc@3+refiner": r["cg+refiner"]["summary"]["auc@3"]})
            print(name, curve[-1], flush=True)
        values["sets"][name] = {"snapshots": curve, "baselines": {m: r["summary"]["auc@3"] for m, r in base.items()}}
        x = [c["pairs"] for c in curve]
        ax.plot(x, [c["auc@3"] for c in curve], marker="o", ms=3, color="tab:blue", ls="--", label="candidate graph")
        refined = "candidate graph+refiner" + (f" (threshold {args.refined_threshold:g})" if args.refined_threshold is not None else "")
        ax.plot(x, [c["auc@3+refiner"] for c in curve], marker="o", ms=3, color="tab:blue", label=refined)
        for m, color in BASELINES.items():
            for suffix, ls in (("", "--"), ("+refiner", "-")):
                if m.endswith("oracle@1") and suffix:
                    continue
                ax.axhline(base[m + suffix]["summary"]["auc@3"], color=color, ls=ls, lw=1, label=m + suffix)
        ax.set_title(f"{name} ({len(items)} pairs): RANSAC AUC@3", fontsize=10)
    for ax in axes:
        ax.set_xlabel("training pairs seen")
        ax.grid(alpha=0.3)
    if sets:
        axes[-1].legend(fontsize=7, loc="center left", bbox_to_anchor=(1.0, 0.5))
    fig.tight_layout()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out, dpi=110)
    args.out.with_suffix(".json").write_text(json.dumps(values, indent=1))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
