"""Training throughput: pairs per second of (a) the on-the-fly path (SIFT extracted by loader
processes while the model trains) and (b) the feature-bank path, same model, same batches, one run;
plus where a bank step's time goes (data, forward, loss, backward, optimiser).

    python benchmarks/training.py --bank /path/to/bank --data ../shared/data/coco/train

Run it on a quiet machine: another process on the cores changes every number. Writes
``benchmarks/results/training.md`` and ``training.json``.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch_geometric.loader import DataLoader

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pygmatch.data.dataset import BankPairs, HomographyPairs  # noqa: E402
from pygmatch.graphs import CompleteCross, CompleteGraph  # noqa: E402
from pygmatch.nn.config import PRESETS, MatcherConfig  # noqa: E402
from pygmatch.training.module import MatcherModule  # noqa: E402


def module_for(args) -> MatcherModule:
    cfg = MatcherConfig(descriptor_dim=128, assignment="dual-softmax", deep_supervision=args.deep_supervision, **PRESETS["cpu"])
    torch.manual_seed(0)
    return MatcherModule(cfg.to_dict(), lr=3e-4, warmup_steps=10, total_steps=1000)


def run(loader, module, steps: int, warmup: int = 3, breakdown: bool = False) -> dict:
    """``steps`` optimiser steps after ``warmup``; returns pairs/s and per-phase ms per step."""
    opt = torch.optim.AdamW(module.parameters(), lr=3e-4)
    module.train()
    phases = {"data": [], "forward": [], "loss": [], "backward": [], "optimiser": []}
    pairs, start = 0, None
    it = iter(loader)
    for step in range(warmup + steps):
        if step == warmup:
            start, pairs = time.perf_counter(), 0
            for v in phases.values():
                v.clear()
        t0 = time.perf_counter()
        batch = next(it)
        t1 = time.perf_counter()
        out = module.model(batch)
        t2 = time.perf_counter()
        loss = module.losses(batch, out)["loss"]
        t3 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        t4 = time.perf_counter()
        torch.nn.utils.clip_grad_norm_(module.parameters(), 1.0)
        opt.step()
        t5 = time.perf_counter()
        pairs += int(batch.num_graphs)
        for key, a, b in (("data", t0, t1), ("forward", t1, t2), ("loss", t2, t3), ("backward", t3, t4), ("optimiser", t4, t5)):
            phases[key].append((b - a) * 1e3)
    took = time.perf_counter() - start
    return {"pairs_per_s": pairs / took, "ms_per_step": {k: float(np.median(v)) for k, v in phases.items()}}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--bank", required=True)
    p.add_argument("--data", default="../shared/data/coco/train")
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--batch-size", type=int, default=4)
    p.add_argument("--max-keypoints", type=int, default=512)
    p.add_argument("--deep-supervision", action="store_true", default=True)
    p.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = p.parse_args()
    common = dict(graph=CompleteGraph(), cross=CompleteCross())
    results = {}
    # (a) today's on-the-fly path: two loader processes extract SIFT, the model uses torch's default threads
    torch.set_num_threads(os.cpu_count() or 2)
    fly = HomographyPairs(args.data, max_keypoints=args.max_keypoints, **common)
    loader = DataLoader(fly, batch_size=args.batch_size, shuffle=True, num_workers=2, follow_batch=["x_0", "x_1"], persistent_workers=True)
    results["on-the-fly (2 loader processes, default threads)"] = run(loader, module_for(args), args.steps)
    del loader
    # (b) the bank path: no extraction, so both cores go to the model, in the training process
    torch.set_num_threads(2)
    bank = BankPairs(args.bank, max_keypoints=args.max_keypoints, **common)
    loader = DataLoader(bank, batch_size=args.batch_size, shuffle=True, num_workers=0, follow_batch=["x_0", "x_1"])
    results["bank (in-process, 2 threads)"] = run(loader, module_for(args), args.steps)
    base = next(iter(results.values()))["pairs_per_s"]
    lines = [f"Training throughput, dim 64 / 5 layers / 2 heads (cpu preset), complete graphs, dual-softmax, deep supervision, "
             f"{args.max_keypoints} SIFT keypoints, batch {args.batch_size}, {args.steps} steps after 3 warm-up steps; "
             f"{os.cpu_count()} cores. Median ms per step by phase.", "",
             "| path | pairs/s | ratio | data | forward | loss | backward | optimiser |", "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for name, r in results.items():
        ms = r["ms_per_step"]
        lines.append(f"| {name} | {r['pairs_per_s']:.2f} | {r['pairs_per_s'] / base:.2f}× | " +
                     " | ".join(f"{ms[k]:.0f}" for k in ("data", "forward", "loss", "backward", "optimiser")) + " |")
    text = "\n".join(lines)
    print(text)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "training.md").write_text(text + "\n")
    (args.out / "training.json").write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
