"""The refiner's training examples: the patches of mutual nearest-neighbour candidates with their
true offsets (``RefinerModule`` trains on them in the one training loop, ``run.train``).

A bank stores keypoints, not pixels, but each of its pairs can be regenerated exactly
(``FeatureBank.images``), so the patches of every candidate are cut once (both cores, as
processes), and the small network trains on them for many epochs. With a ``cache`` folder (a run
folder's ``patches/``) the patches are kept there as they are cut (``pair_cache``): an interrupted
or resumed run reads them instead of cutting them again.
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
from ..data.geometry import warp_points
from ..data.pairs import make_pairs
from ..errors import PygmatchError
from ..matching.nearest import nearest_neighbor_match
from ..refinement import NEIGHBOURS, RefinerConfig, match_patches
from .pair_cache import PairCache, cached_map


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

    def take(self, keep: np.ndarray) -> "PatchSet":
        return PatchSet(self.templates[keep], self.windows[keep], self.offset[keep], self.pair[keep])


class PatchData(torch.utils.data.Dataset):
    """A ``PatchSet`` as training examples ``(template, window, offset)``; ``what`` says where its
    patches come from."""

    def __init__(self, patches: PatchSet, what: str):
        self.templates, self.windows = torch.from_numpy(patches.templates), torch.from_numpy(patches.windows)
        self.offset, self.pairs, self.what = torch.from_numpy(patches.offset), len(np.unique(patches.pair)), what

    def __len__(self) -> int:
        return len(self.offset)

    def __getitem__(self, i):
        return self.templates[i], self.windows[i], self.offset[i]

    def __repr__(self) -> str:
        return f"{len(self)} patches of {self.pairs} pairs ({self.what})"


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


def refiner_datasets(cfg, cache: str | os.PathLike | None = None) -> tuple[PatchData, PatchData]:
    """(training, validation) patches of a ``RefinerTrainConfig``: the bank's first ``pairs`` pairs
    with its last ``val_pairs`` of them held out, or validation on homography pairs of
    ``val_data``."""
    d, model = cfg.data, cfg.model
    if d.bank is None:
        raise PygmatchError("--bank: required (a feature bank made by python -m train.bank)")
    if d.val_data is None and d.val_pairs == 0:
        raise PygmatchError("--val-pairs 0: validate on --val-data images instead, or hold out some bank pairs")
    total = d.pairs or len(FeatureBank(d.bank))
    if d.val_data is None and d.val_pairs >= total:
        raise PygmatchError(f"--val-pairs {d.val_pairs}: leaves none of the {total} bank pairs to train on")
    patches = bank_patches(d.bank, model, d.pairs, d.per_pair, cfg.optim.seed, cfg.workers, cfg.run.progress, cache)
    if d.val_data is not None:
        heldout = heldout_patches(d.val_data, d.val_images, model, progress=cfg.run.progress)
        return PatchData(patches, str(d.bank)), PatchData(heldout, f"homography pairs of {d.val_data}")
    val = patches.pair >= total - d.val_pairs
    return (PatchData(patches.take(~val), str(d.bank)),
            PatchData(patches.take(val), f"the last {d.val_pairs} pairs of {d.bank}, held out"))


__all__ = ["PatchData", "PatchSet", "bank_patches", "candidate_patches", "heldout_patches", "pair_patches", "refiner_datasets"]
