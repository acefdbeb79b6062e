"""CPU forward time and peak memory of the matcher per pair, n = 512 … 4096 keypoints per image.

    python benchmarks/matcher.py [--weights default] [--sizes 512,1024,2048,4096] [--repeats 3] [--out benchmarks/results]

Variants (same weights; the single-scale architecture does not depend on the graph):
- complete: SuperGlue's graph, dense path for self and cross attention;
- knn16: kNN (k=16) self attention on the sparse path, dense cross attention;
- knn16+dknn16: kNN self attention and descriptor-kNN (k=16) cross edges, both sparse;
- each with LightGlue's early exit + point pruning switched on (``+adaptive``).
Baseline, measured in the same run: a plain transformer of the same width and depth that calls
``scaled_dot_product_attention`` directly (no PyG, no graphs). Keypoints are real SIFT from the
embedded images (image 1 = image 0 warped), extracted once per size; every variant runs in its
own process; memory is how far its resident set grows above the warmed-up process during the
forward passes, the first included (sampled every millisecond). Writes ``matcher.md`` and ``matcher.png``.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

VARIANTS = ["sdpa-transformer (baseline)", "complete", "knn16", "knn16+dknn16", "complete+adaptive", "knn16+adaptive"]


class PlainTransformer(nn.Module):
    """The reference: self + cross SDPA layers with the same MLP update, on dense tensors."""

    def __init__(self, dim, layers, heads):
        super().__init__()
        self.heads = heads
        self.proj = nn.Linear(128, dim)
        self.q = nn.ModuleList(nn.Linear(dim, dim) for _ in range(2 * layers))
        self.kv = nn.ModuleList(nn.Linear(dim, 2 * dim) for _ in range(2 * layers))
        self.out = nn.ModuleList(nn.Linear(dim, dim) for _ in range(2 * layers))
        self.mlp = nn.ModuleList(nn.Sequential(nn.Linear(2 * dim, 2 * dim), nn.LayerNorm(2 * dim), nn.GELU(), nn.Linear(2 * dim, dim))
                                 for _ in range(2 * layers))
        self.final = nn.Linear(dim, dim)

    def attend(self, k, x, src):
        q = self.q[k](x)
        key, val = self.kv[k](src).chunk(2, -1)
        split = lambda t: t.unflatten(-1, (self.heads, -1)).transpose(0, 1)[None]  # noqa: E731  (1, heads, n, d): SDPA's fast CPU kernel
        m = F.scaled_dot_product_attention(split(q), split(key), split(val))[0].transpose(0, 1).flatten(1)
        return x + self.mlp[k](torch.cat([x, self.out[k](m)], -1))

    def forward(self, d0, d1):
        x0, x1 = self.proj(d0), self.proj(d1)
        for layer in range(len(self.q) // 2):
            x0, x1 = self.attend(2 * layer, x0, x0), self.attend(2 * layer, x1, x1)
            x0, x1 = self.attend(2 * layer + 1, x0, x1), self.attend(2 * layer + 1, x1, x0)
        s = self.final(x0) @ self.final(x1).t()
        return F.log_softmax(s, 0) + F.log_softmax(s, 1)


def keypoints(n: int):
    from pygmatch.data import EMBEDDED_IMAGES, list_images, make_pair, pair_rng, read_gray
    from pygmatch.data.features import extract

    image = read_gray(list_images(EMBEDDED_IMAGES)[0], (1280, 960))  # larger, so 4096 SIFT keypoints exist
    im0, im1, _ = make_pair(image, pair_rng(0, 0), 1.0)
    return extract(im0, "sift", n), extract(im1, "sift", n), (1280, 960)


def run_one(variant: str, n: int, weights: str, repeats: int) -> dict:
    """Time one variant at one size in this process; report ms (median) and peak RSS growth."""
    from pygmatch.checkpoint import load_model
    from pygmatch.nn.model import MatchOutput
    from pygmatch.matching.graph import GraphMatching
    from pygmatch.graphs import CompleteCross, CompleteGraph, DescriptorKNNCross, KNNGraph

    kp0, kp1, size = keypoints(n)
    torch.set_grad_enabled(False)
    if variant.startswith("sdpa"):
        cfg = load_model(weights).cfg
        model = PlainTransformer(cfg.dim, cfg.layers, cfg.heads).eval()
        d0, d1 = torch.from_numpy(kp0.descriptors), torch.from_numpy(kp1.descriptors)
        fn = lambda: model(d0, d1)  # noqa: E731
    else:
        adaptive = variant.endswith("+adaptive")
        model = load_model(weights, early_exit=adaptive, pruning=adaptive)
        graph = CompleteGraph() if variant.startswith("complete") else KNNGraph(16)
        cross = DescriptorKNNCross(16) if "dknn" in variant else CompleteCross()
        pair = GraphMatching(model, threads=None).prepare(kp0, kp1, size, graph=graph, cross=cross)
        fn = lambda: model(pair)  # noqa: E731
    base = rss_mb()  # model and keypoints loaded, no forward pass yet
    peak = [base]
    done = threading.Event()

    def sample():  # the forward's memory: resident set size sampled every millisecond
        while not done.is_set():
            peak[0] = max(peak[0], rss_mb())
            time.sleep(0.001)

    sampler = threading.Thread(target=sample)
    sampler.start()
    fn()  # warm-up, inside the memory window: freed memory is kept by the allocator afterwards
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        out = fn()
        times.append((time.perf_counter() - t) * 1e3)
    done.set()
    sampler.join()
    extra = {"stop_layer": out.stop_layer, "pruned": list(out.pruned)} if isinstance(out, MatchOutput) else {}
    return {"ms": float(np.median(times)), "growth_mb": peak[0] - base, "n": len(kp0), **extra}


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--weights", default="default")
    p.add_argument("--sizes", default="512,1024,2048,4096")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    p.add_argument("--one", nargs=2, metavar=("VARIANT", "N"), help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.one:
        print(json.dumps(run_one(args.one[0], int(args.one[1]), args.weights, args.repeats)))
        return
    sizes = [int(s) for s in args.sizes.split(",")]
    results = {v: {} for v in VARIANTS}
    for n in sizes:
        for v in VARIANTS:
            r = subprocess.run([sys.executable, __file__, "--one", v, str(n), "--weights", args.weights, "--repeats", str(args.repeats)],
                               capture_output=True, text=True, check=True)
            results[v][n] = json.loads(r.stdout.strip().splitlines()[-1])
            print(f"n={n} {v}: {results[v][n]}", flush=True)
    write_report(results, sizes, args.out, args.weights)
    (args.out / "matcher.json").write_text(json.dumps({v: {str(n): r for n, r in res.items()} for v, res in results.items()}, indent=1))


def write_report(results: dict, sizes: list[int], out: Path, weights: str) -> None:
    """matcher.md and matcher.png from {variant: {n: result}}. The scaling exponent uses the
    keypoint counts actually found (the largest size may have fewer SIFT keypoints than asked)."""
    base = results[VARIANTS[0]]
    a, b = (1024, sizes[-1]) if 1024 in sizes else (sizes[0], sizes[-1])
    lines = [f"Matcher forward per pair on CPU ({torch.get_num_threads()} threads), weights {weights!r}; "
             "ms (ratio to the plain SDPA transformer in the same run), and how far the forward pass raised the process's resident memory", "",
             "| variant | " + " | ".join(f"n={n} (found {base[n]['n']})" for n in sizes) + f" | exponent {a}→{b} |", "|---" * (len(sizes) + 2) + "|"]
    for v in VARIANTS:
        cells = []
        for n in sizes:
            r = results[v][n]
            note = f", exit@{r['stop_layer']}, pruned {r['pruned'][0]}+{r['pruned'][1]}" if v.endswith("adaptive") else ""
            cells.append(f"{r['ms']:.0f} ({r['ms'] / base[n]['ms']:.2f}), +{r['growth_mb']:.0f} MB{note}")
        ra, rb = results[v][a], results[v][b]
        # one size (or two that found the same count) gives no scaling exponent
        exp = f"{math.log(rb['ms'] / ra['ms']) / math.log(rb['n'] / ra['n']):.2f}" if rb["n"] != ra["n"] else "–"
        lines.append(f"| {v} | " + " | ".join(cells) + f" | {exp} |")
    table = "\n".join(lines)
    print(table)
    out.mkdir(parents=True, exist_ok=True)
    (out / "matcher.md").write_text(table + "\n")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for v in VARIANTS:
        ax.loglog([results[v][n]["n"] for n in sizes], [results[v][n]["ms"] for n in sizes], "o-", label=v, lw=2.5 if "baseline" in v else 1.2)
    ax.set(xlabel="keypoints per image", ylabel="ms per pair (median)", title="Matcher forward time, CPU")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "matcher.png", dpi=120)


if __name__ == "__main__":
    main()
