"""Time every graph transform of ``pygmatch.graphs`` (the candidate graph network's intra-image edge
sets, ``train.run --graph``) at n = 512 … 8192 points against brute-force cdist + topk.

    python -m benchmarks.graphs [--sizes 512,1024,2048,4096,8192] [--repeats 5] [--out benchmarks/results]

Writes ``graphs.md`` (table: ms per call, ratio to brute force, scaling exponent between the two
largest sizes) and ``graphs.png`` (log-log plot). Positions are uniform in a 640×480 image,
descriptors random unit vectors (128-D); median of ``--repeats`` runs after one warm-up.
"""
from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402
from torch_geometric.data import Data  # noqa: E402

from pygmatch.graphs import (  # noqa: E402
    CompleteGraph, KNNGraph, MSTGraph, MultiScaleGraph, PartitionGraph, RadiusGraph,
)
from pygmatch.graphs.neighbors import accelerated_backend, knn_bruteforce  # noqa: E402


def make_points(n: int, seed: int = 0) -> Data:
    g = torch.Generator().manual_seed(seed)
    pos = torch.rand(n, 2, generator=g) * torch.tensor([640.0, 480.0])
    x = torch.nn.functional.normalize(torch.randn(n, 128, generator=g), dim=1)
    return Data(pos=pos, pos_norm=pos / 640, x=x, image_size=torch.tensor([[640.0, 480.0]]), num_nodes=n)


def timed(fn, repeats: int) -> float:
    fn()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return sorted(times)[len(times) // 2] * 1e3


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m benchmarks.graphs", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", default="512,1024,2048,4096,8192")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    args = p.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",")]
    transforms = {
        "brute-force cdist+topk k=16 (baseline)": lambda d: knn_bruteforce(d.pos, 16),
        "KNNGraph(k=16)": KNNGraph(16),
        "RadiusGraph(r=0.05, max_neighbors=32)": RadiusGraph(0.05, 32),
        "MSTGraph()": MSTGraph(),
        "PartitionGraph(cells=4x4)": PartitionGraph((4, 4)),
        "PartitionGraph(kmeans, 16)": PartitionGraph(method="kmeans", clusters=16),
        "MultiScaleGraph(8,16,32,all; disjoint)": MultiScaleGraph((8, 16, 32, "all"), "disjoint"),
        "CompleteGraph() (marked only)": CompleteGraph(),
    }
    ms = {name: [] for name in transforms}
    for n in sizes:
        data = make_points(n)
        for name, t in transforms.items():
            ms[name].append(timed(lambda: t(data.clone()), args.repeats))
        print(f"n={n}: " + ", ".join(f"{k.split('(')[0]} {v[-1]:.1f}" for k, v in ms.items()), flush=True)

    base = ms["brute-force cdist+topk k=16 (baseline)"]
    a, b = len(sizes) - 2, len(sizes) - 1
    head = "| transform | " + " | ".join(f"n={n} ms (×bf)" for n in sizes) + f" | exponent {sizes[a]}→{sizes[b]} |"
    lines = [f"Graph construction, CPU ({torch.get_num_threads()} threads), accelerator: {accelerated_backend() or 'none (built-ins)'}", "",
             head, "|" + "---|" * (len(sizes) + 2)]
    for name, vals in ms.items():
        exp = math.log(vals[b] / vals[a]) / math.log(sizes[b] / sizes[a]) if vals[a] > 0 else math.nan
        cells = [f"{v:.1f} ({v / bv:.2f})" for v, bv in zip(vals, base)]
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {exp:.2f} |")
    table = "\n".join(lines)
    print(table)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "graphs.md").write_text(table + "\n")
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for name, vals in ms.items():
        ax.loglog(sizes, vals, "o-", label=name, lw=2.5 if "baseline" in name else 1.2)
    ax.set(xlabel="keypoints per image", ylabel="ms per image (median)", title="Graph construction time")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(args.out / "graphs.png", dpi=120)
    print(f"wrote {args.out / 'graphs.md'} and {args.out / 'graphs.png'}")


if __name__ == "__main__":
    main()
