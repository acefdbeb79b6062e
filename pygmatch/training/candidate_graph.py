"""Training the candidate graph network (``pygmatch.nn.candidate_graph``) from a feature bank.

Each bank pair becomes one candidate graph (``pygmatch.matching.candidate_graph.candidate_graph``)
with every candidate's reprojection error under the true homography, built once; the network then
trains on batches of pairs (one disjoint PyG graph per batch) for many epochs. The bank's last
``val_pairs`` pairs are held out to follow the training (loss, precision of the kept candidates).
"""
from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass, field
from functools import partial

import numpy as np
import torch
from torch_geometric.data import Batch

from ..data.bank import FeatureBank, map_bank_pairs
from ..data.geometry import warp_points
from ..errors import PygmatchError
from ..matching.candidate_graph import candidate_graph
from ..matching.select import keep_probable
from ..nn.candidate_graph import CandidateGraphConfig, CandidateGraphNet, candidate_loss


def _bank_pair_graph(bank: FeatureBank, pair: int, cfg: CandidateGraphConfig, first: int = 0, difficulties=None):
    if pair < first:  # map_bank_pairs maps the first N pairs; these are not wanted
        return None
    kp0, kp1, H, difficulty = bank.keypoints(pair)
    if difficulties is not None and difficulty not in difficulties:
        return None
    size = tuple(bank.config.size)
    cand, data = candidate_graph(kp0, kp1, size, size, cfg)
    if data is None:
        return None
    err = np.linalg.norm(warp_points(kp0.xy[cand[:, 0]], H) - kp1.xy[cand[:, 1]], axis=1)
    data.error = torch.from_numpy(np.nan_to_num(err, nan=1e6, posinf=1e6).astype(np.float32))
    data.difficulty = torch.tensor([difficulty], dtype=torch.float32)
    return data


def bank_graphs(root: str | os.PathLike, cfg: CandidateGraphConfig, first: int = 0, stop: int | None = None, workers: int = 1,
                progress: bool = True, difficulties: tuple[float, ...] | None = None) -> list:
    """The candidate graphs (with ``error`` (K,) px) of the bank's pairs ``first`` … ``stop − 1``
    (only those of ``difficulties``, if given)."""
    bank = FeatureBank(root)
    if bank.config.features != cfg.features:
        raise PygmatchError(f"{root}: a {bank.config.features} bank; the candidate graph network is trained on {cfg.features}")
    stop = len(bank) if stop is None else stop
    fn = partial(_bank_pair_graph, cfg=cfg, first=first, difficulties=difficulties)
    found = map_bank_pairs(root, fn, stop, workers, "candidate graphs", progress)
    return [d for _, d in found]


@dataclass
class TrainLog:
    rows: list = field(default_factory=list)  # {"step", "pairs", "minutes", "loss", "val_loss", "val_p1", ...}


@torch.no_grad()
def validate(model: CandidateGraphNet, graphs: list, batch: int = 8) -> dict:
    """Loss, and of the candidates the matching stage would keep: their share within 1 px (P@1),
    within 3 px (P), and the share of all within-1-px candidates kept (R@1)."""
    model.eval()
    cfg = model.cfg
    losses, kept1, kept3, kept, pos = [], 0, 0, 0, 0
    for s in range(0, len(graphs), batch):
        data = Batch.from_data_list(graphs[s : s + batch])
        out = model(data)
        losses.append(candidate_loss(out, data.error, cfg).item() * data.num_graphs)
        prob = out.score
        for g in range(data.num_graphs):
            sel = data.batch == g
            p, e = prob[sel].numpy(), data.error[sel].numpy()
            keep = keep_probable(p, cfg.threshold, cfg.min_keep, cfg.pad_from)
            kept1 += int((e[keep] < 1).sum())
            kept3 += int((e[keep] < 3).sum())
            kept += int(keep.sum())
            pos += int((e < 1).sum())
    model.train()
    return {"val_loss": sum(losses) / max(len(graphs), 1), "val_p1": kept1 / max(kept, 1), "val_p3": kept3 / max(kept, 1),
            "val_r1": kept1 / max(pos, 1)}


def fit_candidate_graph(train: list, cfg: CandidateGraphConfig, epochs: int = 10, lr: float = 2e-3, batch: int = 4, seed: int = 0,
                        val: list | None = None, val_every: int = 200, max_minutes: float | None = None, checkpoint=None,
                        log=print) -> tuple[CandidateGraphNet, TrainLog]:
    """Train on the graphs ``train`` (from ``bank_graphs``): Adam, warm-up and cosine decay, ``batch``
    pairs per step, stopping after ``epochs`` or ``max_minutes``. Every ``val_every`` steps the
    held-out ``val`` graphs are measured and ``checkpoint(model, history, final)`` is called (to save
    it; ``final`` at the last measurement, after the last step)."""
    if not train:
        raise PygmatchError("no training pairs with enough candidates")
    torch.manual_seed(seed)
    model = CandidateGraphNet(cfg)
    x = torch.cat([d.x for d in train])
    model.mean.copy_(x.mean(0))
    model.std.copy_(x.std(0).clamp(min=1e-6))
    opt = torch.optim.Adam(model.parameters(), lr)
    per_epoch = math.ceil(len(train) / batch)
    steps = epochs * per_epoch
    gen = np.random.default_rng(seed)
    history = TrainLog()
    start = time.perf_counter()
    step, running = 0, []
    model.train()

    def record(final: bool = False):
        row = {"step": step, "pairs": step * batch, "minutes": round((time.perf_counter() - start) / 60, 2),
               "loss": float(np.mean(running)) if running else math.nan}
        if val:
            row.update(validate(model, val))
        history.rows.append(row)
        log("  ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in row.items()) + ("  (final)" if final else ""))
        if checkpoint is not None:
            checkpoint(model, history, final)
        running.clear()

    done = False
    for _ in range(epochs):
        order = gen.permutation(len(train))
        for s in range(0, len(order), batch):
            data = Batch.from_data_list([train[k] for k in order[s : s + batch]])
            # warm-up over the first 100 steps, then a cosine decay over the budget (steps or minutes,
            # whichever runs out first), so a run stopped by ``max_minutes`` still ends annealed
            progress = step / max(steps, 1)
            if max_minutes is not None:
                progress = max(progress, (time.perf_counter() - start) / (60 * max_minutes))
            for g in opt.param_groups:
                g["lr"] = lr * min(1.0, (step + 1) / 100) * 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))
            loss = candidate_loss(model(data), data.error, cfg)
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            step += 1
            running.append(loss.item())
            if step % val_every == 0:
                record()
            if max_minutes is not None and time.perf_counter() - start > 60 * max_minutes:
                done = True
                break
        if done:
            break
    record(final=True)
    return model.eval(), history


__all__ = ["TrainLog", "bank_graphs", "fit_candidate_graph", "validate"]
