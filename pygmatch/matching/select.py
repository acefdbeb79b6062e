"""Which candidates the graph network's matching stage keeps (``CandidateGraphMatching``), also in validation."""
from __future__ import annotations

import numpy as np


def keep_probable(prob: np.ndarray, threshold: float, min_keep: int, pad_from: int = 0) -> np.ndarray:
    """(K,) bool: the candidates whose probability ``prob`` is above ``threshold``, and at least
    the ``min_keep`` most probable ones (a short list leaves RANSAC without support) when at least
    ``pad_from`` pass on their own: fewer say that the images do not overlap, and padding would
    invent matches (``pad_from=0``: always pad)."""
    keep = prob > threshold
    if keep.sum() >= pad_from:
        keep[np.argsort(-prob, kind="stable")[:min_keep]] = True
    return keep
