"""Training the ``CandidateVerifier`` from a feature bank, and measuring it on held-out pairs.

Cheap by design: the candidates' features are computed once per bank pair (both cores, as
processes) and the model is an MLP on them, so thousands of bank pairs train in minutes on a CPU.
With a ``cache`` folder the features are kept there as they are computed (``pair_cache``): an
interrupted run continues from them.
"""
from __future__ import annotations

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
from ..data.homography import estimate_homography
from ..evaluation.metrics import error_auc
from ..matching.verifier import (FEATURE_NAMES, MIN_CANDIDATES, NEIGHBOURS, SUPPORT_RATIO, CandidateVerifier, VerifierConfig,
                                 candidate_features)
from .pair_cache import PairCache, cached_map
from .minibatch import fit_minibatches


@dataclass
class CandidateSet:
    """Every candidate of many pairs: ``features`` (K, F) float32 and ``error`` (K,) float32, the
    candidate's reprojection error under the true homography (px); ``pair`` (K,) int64."""

    features: np.ndarray
    error: np.ndarray
    pair: np.ndarray

    def __len__(self) -> int:
        return len(self.error)

    def first_pairs(self, n: int) -> "CandidateSet":
        keep = self.pair < n
        return CandidateSet(self.features[keep], self.error[keep], self.pair[keep])


def pair_candidates(kp0: Keypoints, kp1: Keypoints, H_0to1: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """(features, reprojection errors) of one pair's candidates; None if it has too few."""
    cand, feats = candidate_features(kp0, kp1)
    if feats is None:
        return None
    err = np.linalg.norm(warp_points(kp0.xy[cand[:, 0]], H_0to1) - kp1.xy[cand[:, 1]], axis=1)
    return feats, err.astype(np.float32)


def _bank_pair_candidates(bank: FeatureBank, pair: int):
    kp0, kp1, H, _ = bank.keypoints(pair)
    return pair_candidates(kp0, kp1, H)


def bank_candidates(root: str | os.PathLike, pairs: int | None = None, workers: int = 2, progress: bool = True,
                    cache: str | os.PathLike | None = None) -> CandidateSet:
    """The candidates of the bank's first ``pairs`` pairs (all by default), computed by
    ``workers`` processes; with ``cache``, each pair's are kept in that folder and read from it
    when a run (of the same bank and features) computed them before."""
    bank = FeatureBank(root)
    if bank.config.features != "sift":
        raise PygmatchError(f"{root}: a {bank.config.features} bank; the verifier is defined for SIFT keypoints")
    key = {"what": "verifier candidate features", "bank": str(Path(root).resolve()), "bank_config": bank.config.to_json(),
           "features": list(FEATURE_NAMES), "neighbours": list(NEIGHBOURS), "support_ratio": SUPPORT_RATIO,
           "min_candidates": MIN_CANDIDATES}
    found = cached_map(root, _bank_pair_candidates, pairs, workers, "candidate features", progress,
                       None if cache is None else PairCache(cache, key))
    if not found:
        raise PygmatchError(f"{root}: no pair among the first {pairs or len(bank)} has enough candidates to train on")
    return CandidateSet(np.concatenate([f for _, (f, _) in found]), np.concatenate([e for _, (_, e) in found]),
                        np.concatenate([np.full(len(e), p, np.int64) for p, (_, e) in found]))


def fit_verifier(train: CandidateSet, cfg: VerifierConfig | None = None, epochs: int = 8, lr: float = 2e-3, batch: int = 1024,
                 seed: int = 0, progress: bool = True) -> CandidateVerifier:
    """Train on ``train``: binary cross-entropy of "within ``cfg.precise_px``" per candidate."""
    cfg = cfg or VerifierConfig()
    torch.manual_seed(seed)
    model = CandidateVerifier(cfg)
    x = torch.from_numpy(train.features)
    y = torch.from_numpy((train.error < cfg.precise_px).astype(np.float32))
    model.mean.copy_(x.mean(0))
    model.std.copy_(x.std(0).clamp(min=1e-6))

    def loss_of(idx):
        return torch.nn.functional.binary_cross_entropy_with_logits(model(x[idx]), y[idx])

    fit_minibatches(model, loss_of, len(x), torch.optim.Adam(model.parameters(), lr), lr, epochs, batch, seed,
                    pct_start=0.1, desc="training verifier", progress=progress)
    return model.eval()


HeldOut = list[tuple[Keypoints, Keypoints, np.ndarray, float]]


def heldout_pairs(folder, images: int | None, difficulties=(1.0, 2.0), seed: int = 7, progress: bool = True) -> HeldOut:
    """SIFT keypoints of homography pairs of ``folder``'s first ``images`` images at each
    difficulty: ``[(kp0, kp1, H_0to1, difficulty)]``, extracted once for many evaluations."""
    items = []
    for d in difficulties:
        pairs = make_pairs(folder, seed=seed, difficulty=d, max_images=images)
        for k in tqdm(range(len(pairs)), desc=f"held-out keypoints d{d:g}", unit="pair", disable=not progress):
            items.append((extract(pairs.image0[k]), extract(pairs.image1[k]), pairs.H_0to1[k], d))
    return items


def heldout_auc(match, items: HeldOut, size=(640, 480)) -> dict[float, dict[str, float]]:
    """``{difficulty: {"auc@1", "auc@3", "auc@5"}}`` (percent) of a matcher ``match(kp0, kp1) ->
    (matches, scores)`` on ``items``: RANSAC (3 px) corner errors, as ``eval.coco`` computes them."""
    errors: dict[float, list[float]] = {}
    for kp0, kp1, H, d in items:
        matches, _ = match(kp0, kp1)
        H_est = estimate_homography(kp0.xy[matches[:, 0]], kp1.xy[matches[:, 1]]) if len(matches) >= 4 else None
        errors.setdefault(d, []).append(corner_error(H_est, H, size))
    return {d: {f"auc@{t}": 100 * a for t, a in zip((1, 3, 5), error_auc(np.array(e), (1, 3, 5)))} for d, e in errors.items()}


__all__ = ["CandidateSet", "bank_candidates", "fit_verifier", "heldout_auc", "heldout_pairs", "pair_candidates"]
