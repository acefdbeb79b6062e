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

Matches are the candidates above ``threshold``; a pair where few pass keeps at least its
``min_keep`` most probable candidates (on hard pairs a short list leaves RANSAC without support).
Trained from a feature bank (``python -m train.verifier``), labels from the exact homography.

Inputs / outputs (``match``): two ``Keypoints`` (N and M keypoints, unit-norm descriptors) →
``matches`` (K, 2) int64 indices into them and ``scores`` (K,) float32 probabilities.
"""
from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from scipy.spatial import cKDTree
from torch import nn

from .evaluation.baselines import nearest_neighbor_match
from .errors import PygmatchError
from .model_file import config_from_dict, has_format, read_model_file
from .data.features import Keypoints, extract
from .data.images import as_gray
from .data.sequences import downscale

FORMAT, VERSION = "pygmatch-verifier", 1
WEIGHTS = Path(__file__).resolve().parent / "weights" / "verifier.pt"
NEIGHBOURS = (6, 12, 24)  # sizes of the candidate kNN graphs the local motion is fitted on
SUPPORT_RATIO = 0.8  # Lowe's ratio a candidate must pass to support its neighbours' fits
MIN_CANDIDATES = 8  # fewer mutual NN candidates: nothing to verify against, all are kept
MAX_KEYPOINTS = 1024  # match_images extracts this many per image: what the shipped weights were trained on
FEATURE_NAMES = (
    ["descriptor_distance2", "ratio0", "ratio1", "log_scale0", "log_scale1", "response0", "response1"]
    + [f"{name}_k{k}" for k in NEIGHBOURS for name in ("log1p_residual", "log1p_neighbour_residual")]
    + ["log1p_residual_all_k12", "log1p_neighbour_residual_all_k12", "scale_change_deviation", "rotation_deviation"]
)


def fit_local_motion(p0: np.ndarray, p1: np.ndarray, support: np.ndarray, k: int, iterations: int = 4,
                     exclude_self: bool = True) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For every match ``p0[i] -> p1[i]`` (float64 pixels): an affine motion fitted to its ``k``
    nearest support matches in image 0 (``support``: indices; the match itself excluded unless
    ``exclude_self`` is False) by iteratively reweighted least squares with Cauchy weights at 1 px.

    Returns ``(A, neighbour_residuals, neighbour_mask)``: ``A`` (n, 3, 2) maps ``[(x0' − x0) / 50, 1]``
    to ``x1' − x1`` around each match (so ``A[:, 2]`` is the motion's miss at the match itself and
    ``A[:, :2] / 50`` its linear part), the neighbours' distances from it (n, k') in pixels, and which
    of the k' neighbours counted (n, k')."""
    n = len(p0)
    kk = min(k + 1, len(support))
    _, nb = cKDTree(p0[support]).query(p0, kk)
    nb = np.asarray(nb).reshape(n, kk)
    counted = (support[nb] != np.arange(n)[:, None]).astype(np.float64) if exclude_self else np.ones((n, kk))
    # Coordinates relative to the match (scaled to ~1) keep the 3x3 systems well conditioned,
    # and make the fitted motion's value at the match simply the translation row.
    X = np.concatenate([(p0[support][nb] - p0[:, None]) / 50.0, np.ones((n, kk, 1))], -1)
    Y = p1[support][nb] - p1[:, None]
    w = counted
    for _ in range(iterations + 1):
        XtW = X.transpose(0, 2, 1) * w[:, None, :]
        A = np.linalg.solve(XtW @ X + 1e-4 * np.eye(3), XtW @ Y)
        r_nb = np.linalg.norm(X @ A - Y, axis=-1)
        w = counted / (1.0 + r_nb**2)
    return A, r_nb, counted


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
    min_keep: int = 20  # ... and at least this many of the most probable ones
    features: str = "sift"

    def __post_init__(self):
        if not 0.0 <= self.threshold < 1.0:
            raise PygmatchError(f"verifier threshold must be in [0, 1), got {self.threshold}")
        if self.min_keep < 0 or self.hidden < 1 or self.layers < 1 or self.precise_px <= 0:
            raise PygmatchError("verifier: min_keep must be >= 0, hidden and layers >= 1, precise_px > 0")
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
    def match(self, kp0: Keypoints, kp1: Keypoints) -> tuple[np.ndarray, np.ndarray]:
        """``(matches (K, 2) int64, scores (K,) float32)``: the verified mutual NN candidates."""
        cand, feats = candidate_features(kp0, kp1)
        if feats is None:
            return cand, np.ones(len(cand), np.float32)
        prob = torch.sigmoid(self(torch.from_numpy(feats))).numpy()
        keep = prob > self.cfg.threshold
        keep[np.argsort(-prob, kind="stable")[: self.cfg.min_keep]] = True
        return cand[keep], prob[keep].astype(np.float32)

    def match_images(self, image0, image1, resize: int | None = 1024, refine: str | None = "refiner") -> dict:
        """Two images (paths or uint8 arrays, gray or BGR) → the same dict as ``Matcher.match``:
        ``keypoints0`` (N, 2), ``keypoints1`` (M, 2) in the original images' pixels, ``matches``
        (K, 2), ``scores`` (K,), and the matched positions ``points0`` / ``points1`` (K, 2), image
        1's refined by ``refine`` (``Matcher.match``'s). Up to ``MAX_KEYPOINTS`` SIFT keypoints are
        extracted per image, at most ``resize`` px on the longer side."""
        from .matcher import _check_resize, to_original, with_matched_points  # noqa: PLC0415 (the matcher imports the model stack)

        resize = _check_resize(resize)
        found = []
        for image in (image0, image1):
            small, S = downscale(as_gray(image), resize)
            found.append((small, extract(small, self.cfg.features, MAX_KEYPOINTS), S))
        (small0, kp0, S0), (small1, kp1, S1) = found
        matches, scores = self.match(kp0, kp1)
        out = {"keypoints0": to_original(kp0, S0).xy, "keypoints1": to_original(kp1, S1).xy, "matches": matches, "scores": scores}
        return with_matched_points(out, small0, small1, kp0, kp1, S0, S1, refine)

    def save(self, path: str | os.PathLike, **extra) -> None:
        torch.save({"format": FORMAT, "version": VERSION, "config": asdict(self.cfg), "state_dict": self.state_dict(),
                    "feature_names": list(FEATURE_NAMES), **extra}, path)

    @classmethod
    def load(cls, path: str | os.PathLike = "default", **overrides) -> "CandidateVerifier":
        """``"default"`` (the shipped weights) or a file written by ``save`` / ``train.verifier``;
        ``overrides``: inference options (``threshold``, ``min_keep``)."""
        path, ckpt = read_model_file(path, WEIGHTS, FORMAT, VERSION, "verifier")
        if ckpt.get("feature_names") != list(FEATURE_NAMES):
            raise PygmatchError(f"{path}: a verifier of other features; this pygmatch computes {len(FEATURE_NAMES)} ({FEATURE_NAMES[0]}, ...)")
        model = cls(config_from_dict(VerifierConfig, ckpt["config"], "verifier", overrides, ("threshold", "min_keep")))
        model.load_state_dict(ckpt["state_dict"])
        return model.eval()
