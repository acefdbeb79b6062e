"""Training the ``LearnedRefiner`` from a feature bank, and measuring it on held-out pairs.

A bank stores keypoints, not pixels, but each of its pairs can be regenerated exactly
(``FeatureBank.images``), so the patches of every mutual nearest-neighbour candidate are cut once
(both cores, as processes) with their true offsets, and the small network trains on them for many
epochs. With a ``cache`` folder the patches are kept there as they are cut (``pair_cache``): an
interrupted run continues from them.
"""
from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from ..data.bank import FeatureBank
from ..data.features import Keypoints, extract
from ..data.geometry import corner_error, warp_points
from ..data.pairs import make_pairs
from ..errors import PygmatchError
from ..matching.nearest import nearest_neighbor_match
from ..data.homography import estimate_homography
from ..evaluation.metrics import error_auc
from ..refinement import NEIGHBOURS, LearnedRefiner, RefinerConfig, match_patches
from .pair_cache import PairCache, cached_map
from .minibatch import fit_minibatches


@dataclass
class PatchSet:
    """Candidates' patches: ``templates`` (N, t, t) and ``windows`` (N, w, w) float16 gray levels,
    ``offset`` (N, 2) float32 the true offset from the candidate's image-1 keypoint to its
    correspondence (px), ``pair`` (N,) int64."""

    templates: np.ndarray
    windows: np.ndarray
    offset: np.ndarray
    pair: np.ndarray

    def __len__(self) -> int:
        return len(self.offset)


def candidate_patches(im0, im1, kp0: Keypoints, kp1: Keypoints, H_0to1: np.ndarray, cfg: RefinerConfig):
    """The mutual nearest-neighbour candidates of one pair whose true offset lies in the search
    range: ``(templates, windows)`` float16 and ``offsets`` float32 (``PatchSet``'s), or None."""
    if len(kp0) < 2 or len(kp1) < 2:
        return None
    cand, _ = nearest_neighbor_match(kp0.descriptors, kp1.descriptors)
    if len(cand) < 4:
        return None
    p0, p1 = kp0.xy[cand[:, 0]].astype(np.float64), kp1.xy[cand[:, 1]].astype(np.float64)
    offset = warp_points(p0, H_0to1) - p1
    templates, windows, usable = match_patches(im0, im1, p0, p1, cfg.half, cfg.search)
    keep = np.nonzero(usable & (np.abs(offset) <= cfg.search).all(1))[0]
    if len(keep) == 0:
        return None
    return templates[keep].numpy().astype(np.float16), windows[keep].numpy().astype(np.float16), offset[keep].astype(np.float32)


def pair_patches(bank: FeatureBank, pair: int, cfg: RefinerConfig, per_pair: int, seed: int = 0):
    """``candidate_patches`` of one bank pair, up to ``per_pair`` random ones; None if there are none."""
    kp0, kp1, H, _ = bank.keypoints(pair)
    im0, im1 = bank.images(pair)
    found = candidate_patches(im0, im1, kp0, kp1, H, cfg)
    if found is None:
        return None
    chosen = np.random.default_rng([seed, pair]).permutation(len(found[2]))[:per_pair]
    return tuple(a[chosen] for a in found)


def bank_patches(root: str | os.PathLike, cfg: RefinerConfig, pairs: int | None = None, per_pair: int = 64, seed: int = 0,
                 workers: int = 2, progress: bool = True, cache: str | os.PathLike | None = None) -> PatchSet:
    """The patches of the bank's first ``pairs`` pairs (all by default), ``per_pair`` candidates
    each, cut by ``workers`` processes; with ``cache``, each pair's are kept in that folder and
    read from it when a run (of the same bank and patch settings) cut them before."""
    bank = FeatureBank(root)
    bank.images(0)  # missing source folders: one line now, not from a worker
    key = {"what": "refiner patches", "bank": str(Path(root).resolve()), "bank_config": bank.config.to_json(), "half": cfg.half,
           "search": cfg.search, "per_pair": per_pair, "seed": seed, "neighbours": NEIGHBOURS}
    found = cached_map(root, functools.partial(pair_patches, cfg=cfg, per_pair=per_pair, seed=seed), pairs, workers,
                       "refiner patches", progress, None if cache is None else PairCache(cache, key))
    if not found:
        raise PygmatchError(f"{root}: no pair among the first {pairs or len(bank)} has a candidate to train on")
    return PatchSet(*(np.concatenate([g[i] for _, g in found]) for i in range(3)),
                    np.concatenate([np.full(len(g[2]), p, np.int64) for p, g in found]))


def heldout_patches(folder, images: int | None, cfg: RefinerConfig, difficulties=(1.0, 2.0), seed: int = 7,
                    progress: bool = True) -> PatchSet:
    """``candidate_patches`` of homography pairs of ``folder``'s first ``images`` images (SIFT
    1024, as in a bank), all of them; ``pair`` numbers the pairs across difficulties."""
    parts, index = [], 0
    for d in difficulties:
        pairs = make_pairs(folder, seed=seed, difficulty=d, max_images=images)
        for k in tqdm(range(len(pairs)), desc=f"held-out patches d{d:g}", unit="pair", disable=not progress):
            im0, im1 = pairs.image0[k], pairs.image1[k]
            found = candidate_patches(im0, im1, extract(im0), extract(im1), pairs.H_0to1[k], cfg)
            if found is not None:
                parts.append((*found, np.full(len(found[2]), index, np.int64)))
            index += 1
    if not parts:
        raise PygmatchError(f"{folder}: no held-out pair has a candidate to measure on")
    return PatchSet(*(np.concatenate([p[i] for p in parts]) for i in range(4)))


def offset_errors(offsets: np.ndarray, patches: PatchSet) -> dict[str, float]:
    """How far the patches' candidates are from the truth after moving them by ``offsets``:
    ``{"mean_px", "within_0.5"}`` (percent within 0.5 px)."""
    err = np.linalg.norm(patches.offset - offsets, axis=1)
    return {"mean_px": float(err.mean()), "within_0.5": 100 * float(np.mean(err < 0.5))}


def fit_refiner(train: PatchSet, cfg: RefinerConfig | None = None, epochs: int = 4, lr: float = 2e-3, batch: int = 512,
                seed: int = 0, device: str = "cpu", progress: bool = True, heldout: PatchSet | None = None,
                curve: list | None = None) -> LearnedRefiner:
    """Train on ``train``: Huber loss (0.5 px) between predicted and true offsets. With ``heldout``,
    ``offset_errors`` on it after each epoch are appended to ``curve`` (with the patches seen)."""
    cfg = cfg or RefinerConfig()
    torch.manual_seed(seed)
    model = LearnedRefiner(cfg).to(device)
    templates, windows = torch.from_numpy(train.templates), torch.from_numpy(train.windows)
    target = torch.from_numpy(train.offset)

    def loss_of(idx):
        pred = model(templates[idx].to(device).float(), windows[idx].to(device).float())
        return torch.nn.functional.huber_loss(pred, target[idx].to(device), delta=0.5)

    def measure(epoch):
        if heldout is not None and curve is not None:
            model.eval()
            offsets = model.offsets(torch.from_numpy(heldout.templates), torch.from_numpy(heldout.windows))
            curve.append({"epoch": epoch, "patches_seen": epoch * len(target), **offset_errors(offsets, heldout)})

    fit_minibatches(model, loss_of, len(target), torch.optim.AdamW(model.parameters(), lr, weight_decay=1e-4), lr, epochs, batch, seed,
                    pct_start=0.05, desc="training refiner", progress=progress, after_epoch=measure, loss_digits=4)
    return model.cpu().eval()


def heldout_refinement(folder, images: int | None, matchers: dict, refiners: dict, difficulties=(1.0, 2.0), seed: int = 7,
                       progress: bool = True) -> dict[str, dict[str, float]]:
    """``{"MATCHER+REFINER d{difficulty}": {"auc@1", "auc@3", "auc@5", "p@0.5", "p@1"}}`` (percent) on
    homography pairs of ``folder``'s first ``images`` images: each matcher ``(kp0, kp1) -> (matches,
    scores)`` with its positions refined by each refiner ``(im0, im1, points0, points1) -> points1``
    (None: unrefined); RANSAC 3 px as in ``eval.coco``; p@X: share of matches within X px."""
    rows: dict[str, list] = {}
    for d in difficulties:
        pairs = make_pairs(folder, seed=seed, difficulty=d, max_images=images)
        for k in tqdm(range(len(pairs)), desc=f"held-out d{d:g}", unit="pair", disable=not progress):
            im0, im1, H = pairs.image0[k], pairs.image1[k], pairs.H_0to1[k]
            kp0, kp1 = extract(im0), extract(im1)
            for mname, match in matchers.items():
                m, _ = match(kp0, kp1)
                p0, p1 = kp0.xy[m[:, 0]].astype(np.float64), kp1.xy[m[:, 1]].astype(np.float64)
                for rname, refine in refiners.items():
                    q1 = p1 if refine is None else refine(im0, im1, p0, p1)
                    H_est = estimate_homography(p0, q1) if len(p0) >= 4 else None
                    err = np.linalg.norm(warp_points(p0, H) - q1, axis=1)
                    rows.setdefault(f"{mname}+{rname} d{d:g}", []).append(
                        (corner_error(H_est, H, pairs.size), np.mean(err < 0.5) if len(err) else np.nan,
                         np.mean(err < 1) if len(err) else np.nan))
    out = {}
    for key, values in rows.items():
        v = np.array(values)
        aucs = error_auc(v[:, 0], (1, 3, 5))
        out[key] = {"auc@1": 100 * aucs[0], "auc@3": 100 * aucs[1], "auc@5": 100 * aucs[2],
                    "p@0.5": 100 * float(np.nanmean(v[:, 1])), "p@1": 100 * float(np.nanmean(v[:, 2]))}
    return out


__all__ = ["PatchSet", "bank_patches", "candidate_patches", "fit_refiner", "heldout_patches", "heldout_refinement", "offset_errors", "pair_patches"]
