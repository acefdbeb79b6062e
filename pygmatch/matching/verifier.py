"""``CandidateVerifier``: mutual nearest neighbours, kept or dropped by a learned verifier.

Why this model exists. On homography pairs, SIFT + mutual nearest neighbour (NN) is a strong
matcher: RANSAC removes its outliers. What costs it homography accuracy are the *imprecise*
correct-looking matches (1–3 px off), which RANSAC's 3 px threshold keeps and its refit then
averages in. Dropping just those from NN's matches with the true homography (an oracle) raises
RANSAC AUC@3 by ~2 (difficulty 1) and ~8 points (difficulty 2). The attention matcher
(``GraphMatcher``) cannot see them: its positions are encoded at ~1/300 of the image, and after
~16k training pairs on this CPU it stayed below NN. A match's precision *is* visible in its
neighbourhood, though: neighbouring correct matches follow one smooth (locally affine) motion,
and a match 2 px off that motion stands out against matches ~0.3 px off.

So the verifier works on the graph of NN candidates:

1. candidates: mutual NN in descriptor space (every one of NN's matches; nothing else is added);
2. a k-nearest-neighbour graph over the candidates' image-0 positions, at three sizes (k = 6, 12,
   24), whose messages are robust fits: an affine motion fitted (iteratively reweighted least
   squares, Cauchy weights at 1 px) to the neighbours among the *support* candidates (those that
   pass Lowe's ratio test), and the candidate's residual against it; the same with every candidate
   as support; the neighbours' agreement in scale change and rotation;
3. per-candidate descriptor evidence: distance, Lowe's ratio both ways, scales, detector responses;
4. an MLP on these features → the probability that the match is within 1 px of the truth.

Matches are the candidates above ``threshold``. A pair that shows it overlaps (at least
``pad_from`` candidates pass) but has few of them keeps at least its ``min_keep`` most probable
candidates (on hard pairs a short list leaves RANSAC without support). A pair with fewer passing
keeps only those: two photographs that do not overlap get (almost) no matches, not ``min_keep``
invented ones. On 540 pairs of different photographs (``extra/`` folders) at most 8 candidates
passed 0.5, and 95 % had at most 3; of 128 homography pairs of ``coco/train`` all but one had
18 or more (``benchmarks/unrelated.py`` measures both sides).
Trained from a feature bank (``python -m train.verifier``), labels from the exact homography.

Inputs / outputs (``match``, the matching stage's call): two ``Keypoints`` (N and M keypoints, unit-norm descriptors) →
``matches`` (K, 2) int64 indices into them and ``scores`` (K,) float32 probabilities.
"""
from __future__ import annotations

import os
from dataclasses import asdict, dataclass

import numpy as np
import torch
from scipy.spatial import cKDTree
from torch import nn

from ..data.features import Keypoints
from ..data.geometry import fit_local_motion
from ..errors import PygmatchError
from ..weights import WEIGHTS_DIR, config_from_dict, has_format, read_model_file
from .nearest import nearest_neighbor_match
from .select import keep_probable

FORMAT, VERSION = "pygmatch-verifier", 1
WEIGHTS = WEIGHTS_DIR / "verifier.pt"
NEIGHBOURS = (6, 12, 24)  # sizes of the candidate kNN graphs the local motion is fitted on
SUPPORT_RATIO = 0.8  # Lowe's ratio a candidate must pass to support its neighbours' fits
MIN_CANDIDATES = 8  # fewer mutual NN candidates: nothing to verify against, all are kept
FEATURE_NAMES = (
    ["descriptor_distance2", "ratio0", "ratio1", "log_scale0", "log_scale1", "response0", "response1"]
    + [f"{name}_k{k}" for k in NEIGHBOURS for name in ("log1p_residual", "log1p_neighbour_residual")]
    + ["log1p_residual_all_k12", "log1p_neighbour_residual_all_k12", "scale_change_deviation", "rotation_deviation"]
)


def local_motion_residuals(p0: np.ndarray, p1: np.ndarray, support: np.ndarray, k: int, iterations: int = 4) -> tuple[np.ndarray, np.ndarray]:
    """``(residual, neighbour_residual)`` of every candidate against the motion ``fit_local_motion``
    fits to its ``k`` nearest support candidates (itself excluded): the candidate's distance from
    the motion and the neighbours' mean distance from it (how well the neighbourhood agrees), in pixels."""
    A, r_nb, counted = fit_local_motion(p0, p1, support, k, iterations)
    return np.linalg.norm(A[:, 2], axis=1), np.average(r_nb, axis=1, weights=counted + 1e-9)


def candidate_features(kp0: Keypoints, kp1: Keypoints) -> tuple[np.ndarray, np.ndarray | None]:
    """``(candidates (K, 2) int64, features (K, F) float32)``: the mutual NN candidates and their
    features (``FEATURE_NAMES``); features is None with fewer than ``MIN_CANDIDATES`` candidates."""
    d0, d1 = kp0.descriptors, kp1.descriptors
    cand, _ = nearest_neighbor_match(d0, d1)
    if len(cand) < MIN_CANDIDATES or len(d0) < 2 or len(d1) < 2:
        return cand, None
    i, j = cand[:, 0], cand[:, 1]
    dist2 = np.maximum(2.0 - 2.0 * (d0 @ d1.T), 0.0)
    two0 = np.partition(dist2, 1, axis=1)[:, :2]
    two1 = np.partition(dist2, 1, axis=0)[:2].T
    ratio0 = np.sqrt(two0[i, 0] / np.maximum(two0[i, 1], 1e-12))
    ratio1 = np.sqrt(two1[j, 0] / np.maximum(two1[j, 1], 1e-12))
    p0, p1 = kp0.xy[i].astype(np.float64), kp1.xy[j].astype(np.float64)
    n = len(cand)
    support = np.nonzero(np.maximum(ratio0, ratio1) < SUPPORT_RATIO)[0]
    if len(support) < MIN_CANDIDATES:
        support = np.arange(n)
    cols = [dist2[i, j], ratio0, ratio1, np.log(np.maximum(kp0.scale[i], 1e-3)), np.log(np.maximum(kp1.scale[j], 1e-3)),
            kp0.score[i] / max(float(kp0.score.max()), 1e-12), kp1.score[j] / max(float(kp1.score.max()), 1e-12)]
    for k in NEIGHBOURS:
        cols += [np.log1p(r) for r in local_motion_residuals(p0, p1, support, k)]
    cols += [np.log1p(r) for r in local_motion_residuals(p0, p1, np.arange(n), 12)]
    # Scale change and rotation of a correct match agree with its neighbours' (a homography is
    # locally a similarity-plus-shear); a wrong one's are arbitrary.
    _, nb = cKDTree(p0[support]).query(p0, min(9, len(support)))
    nb = support[np.asarray(nb).reshape(n, -1)]
    scale_change = np.log(np.maximum(kp1.scale[j], 1e-3) / np.maximum(kp0.scale[i], 1e-3))
    rotation = np.angle(np.exp(1j * (kp1.ori[j] - kp0.ori[i])))
    cols += [np.abs(scale_change - np.median(scale_change[nb], 1)),
             np.abs(np.angle(np.exp(1j * (rotation - np.median(rotation[nb], 1)))))]
    return cand, np.stack(cols, 1).astype(np.float32)


def is_verifier_file(path: str | os.PathLike) -> bool:
    """A file written by ``CandidateVerifier.save`` (not a matcher checkpoint, not a folder)."""
    return has_format(path, FORMAT)


@dataclass
class VerifierConfig:
    hidden: int = 64
    layers: int = 2  # hidden layers of the MLP
    precise_px: float = 1.0  # training label: the candidate is within this many px of the truth
    threshold: float = 0.7  # inference: keep candidates above this probability ...
    min_keep: int = 20  # ... and at least this many of the most probable ones,
    pad_from: int = 10  # ... when at least this many pass the threshold (else the images do not overlap)
    features: str = "sift"

    def __post_init__(self):
        if not 0.0 <= self.threshold < 1.0:
            raise PygmatchError(f"verifier threshold must be in [0, 1), got {self.threshold}")
        if self.min_keep < 0 or self.pad_from < 0 or self.hidden < 1 or self.layers < 1 or self.precise_px <= 0:
            raise PygmatchError("verifier: min_keep and pad_from must be >= 0, hidden and layers >= 1, precise_px > 0")
        if self.features != "sift":
            raise PygmatchError(f"the verifier is defined for SIFT keypoints, not {self.features!r}")


class CandidateVerifier(nn.Module):
    """The learned part: feature standardisation (fixed from the training set) and an MLP.
    ``forward``: (K, F) features → (K,) logits of "within ``precise_px``"."""

    def __init__(self, cfg: VerifierConfig | None = None):
        super().__init__()
        self.cfg = cfg = cfg or VerifierConfig()
        width = len(FEATURE_NAMES)
        self.register_buffer("mean", torch.zeros(width))
        self.register_buffer("std", torch.ones(width))
        dims = [width] + [cfg.hidden] * cfg.layers
        blocks = []
        for a, b in zip(dims[:-1], dims[1:]):
            blocks += [nn.Linear(a, b), nn.GELU()]
        self.mlp = nn.Sequential(*blocks, nn.Linear(dims[-1], 1))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.mlp((features - self.mean) / self.std)[:, 0]

    @torch.no_grad()
    def match(self, kp0: Keypoints, kp1: Keypoints, size0=None, size1=None) -> tuple[np.ndarray, np.ndarray]:
        """``(matches (K, 2) int64, scores (K,) float32)``: the verified mutual NN candidates (the
        matching stage's call; the image sizes are not needed)."""
        cand, feats = candidate_features(kp0, kp1)
        if feats is None:
            return cand, np.ones(len(cand), np.float32)
        prob = torch.sigmoid(self(torch.from_numpy(feats))).numpy()
        keep = keep_probable(prob, self.cfg.threshold, self.cfg.min_keep, self.cfg.pad_from)
        return cand[keep], prob[keep].astype(np.float32)

    def save(self, path: str | os.PathLike, **extra) -> None:
        torch.save({"format": FORMAT, "version": VERSION, "config": asdict(self.cfg), "state_dict": self.state_dict(),
                    "feature_names": list(FEATURE_NAMES), **extra}, path)

    @classmethod
    def load(cls, path: str | os.PathLike = "default", **overrides) -> "CandidateVerifier":
        """``"default"`` (the shipped weights) or a file written by ``save`` / ``train.verifier``;
        ``overrides``: inference options (``threshold``, ``min_keep``, ``pad_from``)."""
        path, ckpt = read_model_file(path, WEIGHTS, FORMAT, VERSION, "verifier")
        if ckpt.get("feature_names") != list(FEATURE_NAMES):
            raise PygmatchError(f"{path}: a verifier of other features; this pygmatch computes {len(FEATURE_NAMES)} ({FEATURE_NAMES[0]}, ...)")
        model = cls(config_from_dict(VerifierConfig, ckpt["config"], "verifier", overrides, ("threshold", "min_keep", "pad_from")))
        model.load_state_dict(ckpt["state_dict"])
        return model.eval()
