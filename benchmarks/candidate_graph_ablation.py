"""The graph ablation of the candidate graph matcher: the same network, data, seed and number of
steps, only the intra-image graph over the candidates changes (kNN k = 6/8/12/24, radius, minimum
spanning tree, grid partition, multi-scale rings with the orthogonality loss), plus kNN 8 with the
messages off. Each model is trained with ``python -m train.candidate_graph`` (one thread), then all
are measured by ``candidate_graph_eval.py`` on the same held-out pairs (AUC@3 of each minus kNN 8,
paired bootstrap 90 %); writes ``candidate_graph_ablation.md`` and ``.png``.

    python benchmarks/candidate_graph_ablation.py train --bank BANK[:D,D] ... --runs /work/runs/ablation [--only knn6,mst]
    python benchmarks/candidate_graph_ablation.py report --runs /work/runs/ablation
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
REFERENCE = "knn8"
VARIANTS = {  # name -> the flags of train.candidate_graph that differ
    "knn6": ["--graph", "knn", "--k", "6"],
    "knn8": ["--graph", "knn", "--k", "8"],
    "knn12": ["--graph", "knn", "--k", "12"],
    "knn24": ["--graph", "knn", "--k", "24"],
    "radius": ["--graph", "radius", "--radius", "0.05", "--max-neighbors", "16"],
    "mst": ["--graph", "mst"],
    "partition": ["--graph", "partition", "--cells", "8x6"],
    "multiscale+ortho": ["--graph", "multiscale", "--ks", "4,8,16", "--rings", "disjoint", "--ortho-weight", "0.1"],
    "knn8-messages-off": ["--graph", "knn", "--k", "8", "--no-messages"],
}
BUDGET = ["--epochs", "2", "--batch-size", "4", "--seed", "0", "--val-pairs", "100", "--val-every", "250"]


def train(args) -> None:
    args.runs.mkdir(parents=True, exist_ok=True)
    for name in args.only.split(",") if args.only else VARIANTS:
        out = args.runs / f"{name}.pt"
        if out.is_file() and json.loads(out.with_suffix(".json").read_text()).get("finished"):
            print(f"{name}: done", flush=True)
            continue
        cmd = [sys.executable, "-m", "train.candidate_graph", "--bank", *args.bank, "--out", str(out), "--overwrite", *BUDGET, *VARIANTS[name]]
        print(" ".join(cmd), flush=True)
        with open(args.runs / f"{name}.log", "w") as log:
            subprocess.run(cmd, cwd=ROOT, check=True, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "OMP_NUM_THREADS": "1"})


def report(args) -> None:
    import matplotlib  # noqa: PLC0415
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    sys.path.insert(0, str(ROOT / "benchmarks"))
    import candidate_graph_eval  # noqa: PLC0415
    from candidate_graph_eval import pair_set  # noqa: PLC0415
    from pygmatch.evaluation.metrics import auc_difference  # noqa: PLC0415
    from pygmatch.matching.candidate_graph import CandidateGraphMatching, candidate_graph  # noqa: PLC0415

    names = [n for n in VARIANTS if (args.runs / f"{n}.pt").is_file()]
    names.remove(REFERENCE)
    names.insert(0, REFERENCE)
    sets = args.sets.split(",")
    results = {}
    for threshold in (None, args.threshold):  # the stored one (0.5), and the default pipeline's
        ev = args.runs / ("eval" if threshold is None else f"eval-{threshold:g}")
        if not (ev / "results.json").is_file() or args.rerun:
            suffix = "" if threshold is None else f":{threshold:g}"
            candidate_graph_eval.main(["--models", *[f"{n}={args.runs / n}.pt{suffix}" for n in names], "--baselines", "",
                                       "--sets", args.sets, "--out", str(ev)])
        results[threshold] = json.loads((ev / "results.json").read_text())
    real = pair_set("real", Path("/work/runs/eval-cache"), 4)

    def size(n: str) -> tuple[int, float]:
        """(parameters, intra-image edges per candidate on the real pairs)."""
        stage = CandidateGraphMatching.load(args.runs / f"{n}.pt")
        edges = nodes = 0
        for it in real:
            _, d = candidate_graph(it["kp0"], it["kp1"], it["image0"].shape[::-1], it["image1"].shape[::-1], stage.cfg, stage.graph)
            edges, nodes = edges + d.edge_index0.size(1) + d.edge_index1.size(1), nodes + 2 * d.num_nodes
        return sum(p.numel() for p in stage.model.parameters()), edges / nodes

    def cell(threshold, s: str, label: str, n: str) -> tuple[str, tuple]:
        r, ref = results[threshold][s][label.format(n)], results[threshold][s][label.format(REFERENCE)]
        d = auc_difference(ref["errors"], r["errors"])
        diff = (-d[0], -d[2], -d[1])
        text = f"{r['summary']['auc@3']:.1f}" + ("" if n == REFERENCE else f" ({diff[0]:+.1f} [{diff[1]:+.1f}, {diff[2]:+.1f}])")
        return text, diff

    columns = [(None, "{}", "AUC@3, 0.5"), (args.threshold, "{}+refiner", f"AUC@3, {args.threshold:g} + refiner")]
    head = "| graph | flags | edges / node | parameters | train minutes | held-out loss | " + " | ".join(
        f"{s} P@1 (0.5) | " + " | ".join(f"{s} {title} (−{REFERENCE})" for _, _, title in columns) for s in sets) + " |"
    lines = [head, "|" + "---|" * (6 + 3 * len(sets))]
    plot = {(s, title): [] for s in sets for _, _, title in columns}
    for n in names:
        rec = json.loads((args.runs / f"{n}.json").read_text())
        parameters, per_node = size(n)
        row = [n, " ".join(VARIANTS[n]), f"{per_node:.1f}", f"{parameters:,}", f"{rec['train_minutes']:.1f}", f"{rec['curve'][-1]['val_loss']:.3f}"]
        for s in sets:
            row.append(f"{results[None][s][n]['summary']['precision@1']:.1f}")
            for threshold, label, title in columns:
                text, diff = cell(threshold, s, label, n)
                row.append(text)
                plot[s, title].append((n, *diff))
        lines.append("| " + " | ".join(row) + " |")
    table = "\n".join(lines)
    fig, axes = plt.subplots(1, len(plot), figsize=(4.2 * len(plot), 0.45 * len(names) + 1.5), sharey=True)
    for ax, ((s, title), rows) in zip(axes, plot.items()):
        y = range(len(rows))
        ax.errorbar([r[1] for r in rows], y, xerr=[[r[1] - r[2] for r in rows], [r[3] - r[1] for r in rows]], fmt="o", capsize=3)
        ax.axvline(0, color="gray", lw=0.8)
        ax.set_yticks(list(y), [r[0] for r in rows])
        ax.set_xlabel(f"− {REFERENCE} (90 % CI)")
        ax.set_title(f"{s}: {title}", fontsize=9)
    axes[0].invert_yaxis()  # the axes share y: once for all, the reference on top
    fig.tight_layout()
    fig.savefig(RESULTS / "candidate_graph_ablation.png", dpi=110)
    command = f"python benchmarks/candidate_graph_ablation.py train --bank {' '.join(args.bank_note)} --runs {args.runs}"
    text = (f"# Graph ablation of the candidate graph matcher\n\n`{command}`, then `... report --runs {args.runs}`. Budget of every "
            f"run: `{' '.join(BUDGET)}`, one thread. Evaluated by `candidate_graph_eval.py` on the same pairs as the shipped "
            f"model ({', '.join(sets)}); each AUC@3 with its difference to {REFERENCE} and the paired bootstrap 90 % interval: "
            f"the network alone at its stored threshold 0.5, and at {args.threshold:g} followed by the learned refiner "
            "(the default pipeline's operating point). Held-out loss: the run's last measurement on the banks' held-out pairs.\n\n"
            f"{table}\n\n![ablation](candidate_graph_ablation.png)\n")
    (RESULTS / "candidate_graph_ablation.md").write_text(text)
    print(text)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="command", required=True)
    t = sub.add_parser("train")
    t.add_argument("--bank", nargs="+", required=True)
    t.add_argument("--runs", type=Path, required=True)
    t.add_argument("--only", default="", help="comma-separated variants (default: all not yet finished)")
    r = sub.add_parser("report")
    r.add_argument("--runs", type=Path, required=True)
    r.add_argument("--sets", default="coco-d2,real")
    r.add_argument("--bank-note", nargs="*", default=["BANK ..."], help="the --bank of the training, for the report's command line")
    r.add_argument("--threshold", type=float, default=0.2, help="the threshold of the refined columns (the default pipeline's)")
    r.add_argument("--rerun", action="store_true", help="evaluate again even if the runs folder holds an evaluation")
    args = p.parse_args(argv)
    train(args) if args.command == "train" else report(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
