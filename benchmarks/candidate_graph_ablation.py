"""The graph ablation of the candidate graph network: the same data, seed and budget for every
variant, only the intra-image graph over the candidates changes (kNN k = 6/8/12/24, radius, minimum
spanning tree, grid partition, multi-scale rings with the orthogonality loss), plus kNN 8 with the
messages off. A configuration of the library's commands:

- ``train``: one ``python -m train.run --bank ... BUDGET VARIANT`` per variant, run folders
  ``RUNS/NAME`` (a finished variant is skipped, an interrupted one continued with ``--resume last``);
- ``report``: ``python -m eval.coco`` (``--coco``'s homography pairs: ``--pairs-per-image`` per
  image, ``--difficulty``, seed 0) and ``python -m eval.hpatches`` (the pairs (1, N) of ``--real``)
  over every finished run, each twice: the network alone at its stored threshold, and at
  ``--threshold`` followed by the learned refiner (the ``default`` pipeline's operating point);
  evaluations are kept under ``RUNS/eval/``. Then one table: AUC@3 of each variant with its
  difference to kNN 8 (paired bootstrap 90 %), P@1, parameters, training minutes and the last
  held-out loss of the run; and one plot of the differences. Writes
  ``candidate_graph_ablation.md`` and ``.png`` under ``--out``.

    python -m benchmarks.candidate_graph_ablation train --bank BANK[:D,D] ... --runs RUNS [--only knn6,mst] [--flags='--accelerator gpu'] [--dry-run]
    python -m benchmarks.candidate_graph_ablation report --runs RUNS --coco ../shared/data/coco/val --real ../shared/data/real-pairs \\
        [--out benchmarks/results] [--dry-run]
"""
from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

REFERENCE = "knn8"
VARIANTS = {  # name (a run folder) -> the train.run flags that differ
    "knn6": ["--graph", "knn", "--k", "6"],
    "knn8": ["--graph", "knn", "--k", "8"],
    "knn12": ["--graph", "knn", "--k", "12"],
    "knn24": ["--graph", "knn", "--k", "24"],
    "radius": ["--graph", "radius", "--radius", "0.05", "--max-neighbors", "16"],
    "mst": ["--graph", "mst"],
    "partition": ["--graph", "partition", "--cells", "8x6"],
    "multiscale-ortho": ["--graph", "multiscale", "--ks", "4,8,16", "--rings", "disjoint", "--ortho-weight", "0.1"],
    "knn8-messages-off": ["--graph", "knn", "--k", "8", "--no-messages"],
}
BUDGET = ["--epochs", "2", "--batch-size", "4", "--seed", "0", "--val-pairs", "100", "--val-every", "250", "--threads", "1", "--no-progress"]
ONE_THREAD = {**os.environ, "OMP_NUM_THREADS": "1"}


def chosen(only: str) -> list[str]:
    names = [n.strip() for n in only.split(",") if n.strip()] if only else list(VARIANTS)
    unknown = [n for n in names if n not in VARIANTS]
    if unknown:
        raise SystemExit(f"error: unknown variant(s) {', '.join(unknown)}; choose from {', '.join(VARIANTS)}")
    return names


def train(args) -> None:
    for name in chosen(args.only):
        run = args.runs / name
        if (run / "done.json").is_file():
            print(f"{name}: done", flush=True)
            continue
        cmd = [sys.executable, "-m", "train.run", "--bank", *args.bank, *BUDGET, *VARIANTS[name], *shlex.split(args.flags), "--out", str(run)]
        if (run / "last.ckpt").is_file():
            cmd += ["--resume", "last"]
        print(shlex.join(cmd[1:]), flush=True)
        if args.dry_run:
            continue
        run.mkdir(parents=True, exist_ok=True)
        start = time.perf_counter()
        with open(run / "ablation.log", "a") as log:
            if subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT, env=ONE_THREAD).returncode:
                raise SystemExit(f"error: training {name} failed; see {run / 'ablation.log'} (start the same command again to continue it)")
        minutes = (time.perf_counter() - start) / 60
        (run / "done.json").write_text(json.dumps({"train_minutes": minutes, "resumed": "--resume" in cmd, "command": shlex.join(cmd[1:])}))


def evaluate(args, names: list[str]) -> dict:
    """``{(set, refined): folder}`` of the four evaluations (run where missing, or with ``--rerun``)."""
    runs = [str(args.runs / n) for n in names]
    sets = {"coco": ["eval.coco", "--data", str(args.coco), "--pairs-per-image", str(args.pairs_per_image),
                     "--difficulty", f"{args.difficulty:g}", "--seed", "0"],
            "real": ["eval.hpatches", "--data", str(args.real)]}
    folders = {}
    for s, command in sets.items():
        for refined in (False, True):
            out = args.runs / "eval" / (s + (f"-{args.threshold:g}+refiner" if refined else ""))
            folders[s, refined] = out
            if (out / "metrics.json").is_file() and not args.rerun:
                continue
            methods = [r + "+refiner" for r in runs] if refined else runs
            cmd = [sys.executable, "-m", *command, "--methods", ",".join(methods), "--out", str(out), "--draw", "0", "--overwrite"]
            cmd += ["--match-threshold", f"{args.threshold:g}"] if refined else []
            print(shlex.join(cmd[1:]), flush=True)
            if not args.dry_run and subprocess.run(cmd, env=ONE_THREAD).returncode:
                raise SystemExit(f"error: the evaluation {out} failed")
    return folders


def report(args) -> None:
    names = [n for n in VARIANTS if (args.runs / n / "done.json").is_file()]
    if REFERENCE not in names:
        raise SystemExit(f"error: {args.runs / REFERENCE} has not finished training: it is the reference of every difference")
    names.remove(REFERENCE)
    names.insert(0, REFERENCE)
    folders = evaluate(args, names)
    if args.dry_run:
        return
    import matplotlib  # noqa: PLC0415
    import numpy as np  # noqa: PLC0415

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    from pygmatch.checkpoint import load_model  # noqa: PLC0415
    from pygmatch.evaluation.metrics import auc_difference  # noqa: PLC0415
    from pygmatch.training.curves import validation_rows  # noqa: PLC0415

    results = {key: (json.loads((f / "metrics.json").read_text()), np.load(f / "corner_errors.npz")) for key, f in folders.items()}
    set_titles = {"coco": f"coco d{args.difficulty:g}", "real": "real"}
    columns = [(False, "AUC@3, stored threshold"), (True, f"AUC@3, {args.threshold:g} + refiner")]

    def method(name: str, refined: bool) -> str:
        return str(args.runs / name) + ("+refiner" if refined else "")

    head = ("| graph | flags | parameters | train minutes | held-out loss | "
            + " | ".join(f"{set_titles[s]} P@1 | " + " | ".join(f"{set_titles[s]} {title} (−{REFERENCE})" for _, title in columns)
                         for s in set_titles) + " |")
    lines = [head, "|---|---|" + "---:|" * (3 + 3 * len(set_titles))]
    plot = {(s, title): [] for s in set_titles for _, title in columns}
    for n in names:
        rows = validation_rows(args.runs / n)
        loss = next((r["val/loss"] for r in reversed(rows) if "val/loss" in r), float("nan"))
        parameters = sum(p.numel() for p in load_model(args.runs / n).parameters())
        minutes = json.loads((args.runs / n / "done.json").read_text())["train_minutes"]
        row = [n, " ".join(VARIANTS[n]), f"{parameters:,}", f"{minutes:.1f}", f"{loss:.3f}"]
        for s in set_titles:
            row.append(f"{results[s, False][0][method(n, False)]['precision@1']:.1f}")
            for refined, title in columns:
                metrics, errors = results[s, refined]
                auc = metrics[method(n, refined)]["auc@3"]
                d, lo, hi = auc_difference(errors[method(n, refined)], errors[method(REFERENCE, refined)])
                row.append(f"{auc:.1f}" + ("" if n == REFERENCE else f" ({d:+.1f} [{lo:+.1f}, {hi:+.1f}])"))
                plot[s, title].append((n, d, lo, hi))
        lines.append("| " + " | ".join(row) + " |")
    table = "\n".join(lines)

    fig, axes = plt.subplots(1, len(plot), figsize=(4.2 * len(plot), 0.45 * len(names) + 1.5), sharey=True, squeeze=False)
    for ax, ((s, title), rows) in zip(axes[0], plot.items()):
        y = range(len(rows))
        ax.errorbar([r[1] for r in rows], y, xerr=[[r[1] - r[2] for r in rows], [r[3] - r[1] for r in rows]], fmt="o", capsize=3)
        ax.axvline(0, color="gray", lw=0.8)
        ax.set_yticks(list(y), [r[0] for r in rows])
        ax.set_xlabel(f"− {REFERENCE} (90 % CI)")
        ax.set_title(f"{set_titles[s]}: {title}", fontsize=9)
    axes[0][0].invert_yaxis()  # the axes share y: once for all, the reference on top
    fig.tight_layout()
    args.out.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out / "candidate_graph_ablation.png", dpi=110)
    text = (f"# Graph ablation of the candidate graph network\n\n"
            f"`python -m benchmarks.candidate_graph_ablation train --bank BANK ... --runs {args.runs}`, then `... report --runs {args.runs} "
            f"--coco {args.coco} --real {args.real}`. Budget of every run: `{' '.join(BUDGET)}`. Evaluated by `eval.coco` "
            f"({args.pairs_per_image} pairs per image, difficulty {args.difficulty:g}, seed 0) and `eval.hpatches` (longer side 640 px), "
            f"1024 SIFT keypoints; each AUC@3 with its difference to {REFERENCE} and the paired bootstrap 90 % interval: the network "
            f"alone at its stored threshold, and at {args.threshold:g} followed by the learned refiner (the default pipeline's operating "
            "point). Held-out loss: the run's last validation on the banks' held-out pairs. The evaluations: "
            f"`{args.runs / 'eval'}/`.\n\n{table}\n\n![ablation](candidate_graph_ablation.png)\n")
    (args.out / "candidate_graph_ablation.md").write_text(text)
    print(text)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.candidate_graph_ablation", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)
    t = sub.add_parser("train", help="train the variants (python -m train.run)")
    t.add_argument("--bank", nargs="+", required=True, help="feature banks, as train.run's --bank (BANK[:D,D])")
    t.add_argument("--runs", type=Path, required=True, help="folder of the variants' run folders")
    t.add_argument("--only", default="", help=f"comma-separated variants (default: all of {', '.join(VARIANTS)})")
    t.add_argument("--flags", default="", help="more train.run flags for every variant, e.g. --flags='--accelerator gpu --workers 4'")
    t.add_argument("--dry-run", action="store_true", help="print the commands, run nothing")
    r = sub.add_parser("report", help="evaluate the finished variants and write the table and plot")
    r.add_argument("--runs", type=Path, required=True)
    r.add_argument("--coco", type=Path, default=Path("../shared/data/coco/val"), help="images of the homography pairs (eval.coco --data)")
    r.add_argument("--pairs-per-image", type=int, default=4)
    r.add_argument("--difficulty", type=float, default=2.0)
    r.add_argument("--real", type=Path, default=Path("../shared/data/real-pairs"), help="folder of sequences (eval.hpatches --data)")
    r.add_argument("--threshold", type=float, default=0.2, help="the threshold of the refined columns (the default pipeline's)")
    r.add_argument("--rerun", action="store_true", help="evaluate again even where RUNS/eval/ holds an evaluation")
    r.add_argument("--out", type=Path, default=Path("benchmarks/results"), help="folder of candidate_graph_ablation.md and .png")
    r.add_argument("--dry-run", action="store_true", help="print the evaluation commands, run nothing")
    args = p.parse_args(argv)
    train(args) if args.command == "train" else report(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
