"""Ceilings, not matchers: the ground-truth matches of the true homography (``oracle@PX``), and the
mutual nearest neighbours kept only where they are right (``nn-oracle@PX``, a perfect selector
among the candidates a descriptor matcher has). Both read the true homography, which no matcher
sees: the evaluation hands it to them through ``match_truth``, and only to them."""
from __future__ import annotations

import math

import numpy as np

from ..data.features import Keypoints
from ..data.geometry import warp_points
from ..data.ground_truth import ground_truth_matches
from ..errors import PygmatchError
from .nearest import nearest_neighbor_match


def oracle_match(xy0: np.ndarray, xy1: np.ndarray, H_0to1: np.ndarray, px: float = 3.0) -> tuple[np.ndarray, np.ndarray]:
    """The ground-truth matches at ``px`` pixels: mutual nearest neighbours in reprojection error
    ‖H·x_i − x_j‖ below ``px`` (``pygmatch.data.ground_truth``, the dustbin at ``max(px, 5)``), all
    scored 1. It reads the true homography, so it is a ceiling for what the keypoints allow."""
    m0, _ = ground_truth_matches(xy0, xy1, H_0to1, match_px=px, unmatched_px=max(px, 5.0))
    i = np.nonzero(m0 >= 0)[0]
    return np.stack([i, m0[i]], 1).astype(np.int64).reshape(-1, 2), np.ones(len(i), np.float32)


class Oracle:
    """``oracle@PX`` (``candidates="truth"``): the ground-truth matches at ``px`` pixels;
    ``nn-oracle@PX`` (``candidates="nn"``): the mutual nearest neighbours whose reprojection error
    under the true homography is below ``px``. All scored 1. A matching stage only for the
    evaluation, which calls ``match_truth`` with the true homography."""

    def __init__(self, px: float, candidates: str = "truth"):
        if not (math.isfinite(px) and px > 0) or candidates not in ("truth", "nn"):
            raise PygmatchError(f"Oracle: px must be > 0 and candidates 'truth' or 'nn', got {px!r}, {candidates!r}")
        self.px, self.candidates = float(px), candidates

    def match_truth(self, kp0: Keypoints, kp1: Keypoints, H_0to1: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if self.candidates == "truth":
            return oracle_match(kp0.xy, kp1.xy, H_0to1, self.px)
        matches, _ = nearest_neighbor_match(kp0.descriptors, kp1.descriptors)
        error = np.linalg.norm(warp_points(kp0.xy[matches[:, 0]].astype(np.float64), H_0to1) - kp1.xy[matches[:, 1]], axis=1)
        keep = matches[error < self.px]
        return keep, np.ones(len(keep), np.float32)

    def match(self, kp0, kp1, size0=None, size1=None):
        raise PygmatchError(f"{self.name}: an oracle reads the true homography; it runs only in the evaluation (eval.coco, eval.hpatches)")

    @property
    def name(self) -> str:
        return f"{'nn-' if self.candidates == 'nn' else ''}oracle@{self.px:g}"

    def __repr__(self) -> str:
        return f"{type(self).__name__}(px={self.px:g}, candidates={self.candidates!r})"


def parse_oracle(name: str) -> Oracle:
    """The oracle of a method name ``oracle@PX`` or ``nn-oracle@PX`` (PX a number > 0)."""
    kind, _, px_text = name.partition("@")
    try:
        px = float(px_text)
    except ValueError:
        px = math.nan
    if kind not in ("oracle", "nn-oracle") or not (math.isfinite(px) and px > 0):
        raise PygmatchError(f"bad method {name!r}: expected oracle@PX or nn-oracle@PX with PX a number of pixels > 0, e.g. oracle@3")
    return Oracle(px, "nn" if kind == "nn-oracle" else "truth")
