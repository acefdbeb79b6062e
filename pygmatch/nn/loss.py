"""Training losses."""
from __future__ import annotations

import torch
from torch import Tensor


def assignment_nll(log_assignment: Tensor, gt_pairs: Tensor, unmatched0: Tensor, unmatched1: Tensor, balance: float = 0.5) -> Tensor:
    """Negative log-likelihood of the ground-truth assignment (SuperGlue), positives and
    negatives balanced: ``balance · mean(−log P[i, j] over matches) + (1 − balance) · mean(−log P
    of the dustbin over unmatched keypoints of both images)``. Ignored keypoints contribute nothing.

    ``gt_pairs``: (3, K) rows (pair b, i, j) in padded coordinates; ``unmatched0`` (B, n) and
    ``unmatched1`` (B, m) bool. A term with nothing to average is left out (weight moved to the other).
    """
    n, m = log_assignment.shape[1] - 1, log_assignment.shape[2] - 1
    pos = -log_assignment[gt_pairs[0], gt_pairs[1], gt_pairs[2]]
    neg = torch.cat([-log_assignment[:, :n, m][unmatched0], -log_assignment[:, n, :m][unmatched1]])
    if pos.numel() and neg.numel():
        return balance * pos.mean() + (1 - balance) * neg.mean()
    if pos.numel() or neg.numel():
        return torch.cat([pos, neg]).mean()
    return log_assignment.sum() * 0.0


def orthogonality(features: list[Tensor]) -> Tensor:
    """Mean over keypoints of the squared cosine similarity between every two branches' features,
    summed over branch pairs: 0 when the scales produce mutually orthogonal descriptors."""
    total = features[0].new_zeros(())
    for a in range(len(features)):
        for b in range(a + 1, len(features)):
            total = total + torch.nn.functional.cosine_similarity(features[a], features[b], dim=-1).pow(2).mean()
    return total
