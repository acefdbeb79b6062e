"""Assignment heads: from two sets of matching descriptors to a log-assignment matrix with dustbins.

Both heads take padded per-pair blocks ``(B, n, d)``/``(B, m, d)`` with validity masks, so pairs
of different sizes share a batch without padding leaking into any row or column, and both return
``log_assignment`` of shape ``(B, n + 1, m + 1)``: entry (i, j) is the log-probability that i
matches j, the last column / row the dustbin of image 0 / image 1. Computed in float32 even
under autocast (exp/log sums overflow in float16).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

NEG = -1e9  # "log 0" that stays finite, so masked sums never produce inf − inf


def _with_dustbin(mask: Tensor) -> Tensor:
    return torch.cat([mask, mask.new_ones(mask.size(0), 1)], 1)


def log_sinkhorn(scores: Tensor, dustbin: Tensor, mask0: Tensor, mask1: Tensor, iters: int = 50) -> Tensor:
    """SuperGlue's log-domain optimal transport with a dustbin row and column, per pair marginals.

    Rows are image-0 keypoints (mass 1 each) plus a dustbin of mass m; columns image-1 keypoints
    plus a dustbin of mass n; padded rows/columns get no mass. The result is normalised so that
    each real row sums to 1 (exp), i.e. it is a log-probability per keypoint.
    """
    b, n, m = scores.shape
    n_valid, m_valid = mask0.sum(1).float(), mask1.sum(1).float()
    couplings = torch.cat([
        torch.cat([scores, dustbin.expand(b, n, 1)], 2),
        torch.cat([dustbin.expand(b, 1, m), dustbin.expand(b, 1, 1)], 2),
    ], 1)
    valid = _with_dustbin(mask0)[:, :, None] & _with_dustbin(mask1)[:, None, :]
    couplings = couplings.masked_fill(~valid, NEG)
    norm = -(n_valid + m_valid).clamp(min=1).log()  # (B,)

    def log_or_neg(x):
        return torch.where(x > 0, x.clamp(min=1e-30).log(), torch.full_like(x, NEG))

    log_mu = torch.cat([torch.where(mask0, 0.0, NEG), log_or_neg(m_valid)[:, None]], 1) + norm[:, None]
    log_nu = torch.cat([torch.where(mask1, 0.0, NEG), log_or_neg(n_valid)[:, None]], 1) + norm[:, None]
    u, v = torch.zeros_like(log_mu), torch.zeros_like(log_nu)
    for _ in range(iters):
        u = log_mu - torch.logsumexp(couplings + v[:, None, :], dim=2)
        v = log_nu - torch.logsumexp(couplings + u[:, :, None], dim=1)
    return (couplings + u[:, :, None] + v[:, None, :] - norm[:, None, None]).masked_fill(~valid, NEG)


class Similarity(nn.Module):
    """Similarity of the matching descriptors of two images.

    Without a prior: scaled dot product of projected features (SuperGlue). With the descriptor
    prior (default), the matching descriptor of a keypoint is its *input* descriptor plus a learned
    correction, ``normalize(raw + W·x)``, with ``W`` initialised to zero, and the similarity is a
    learnable multiple of their cosine. The untrained network therefore matches like mutual
    nearest neighbours, and every gradient step refines the descriptors from the graph context:
    short CPU trainings start from a sensible assignment instead of from noise.
    """

    # Adam moves every parameter by about the learning rate per step, whatever its scale: the
    # gain lets the prior's temperature travel its useful range (tens) within a few hundred steps.
    PRIOR_GAIN = 40.0

    def __init__(self, dim: int, prior: bool = True, descriptor_dim: int = 128):
        super().__init__()
        self.prior = prior
        self.proj = nn.Linear(dim, descriptor_dim if prior else dim)
        if prior:
            nn.init.zeros_(self.proj.weight)
            nn.init.zeros_(self.proj.bias)
            self.prior_weight = nn.Parameter(torch.tensor(1.0))

    def forward(self, desc0: Tensor, desc1: Tensor, raw0: Tensor | None, raw1: Tensor | None) -> Tensor:
        if not self.prior:
            d0, d1 = self.proj(desc0), self.proj(desc1)
            return d0 @ d1.transpose(1, 2) / math.sqrt(d0.size(-1))
        if raw0 is None or raw1 is None:
            raise ValueError("this head has a descriptor prior: pass the input descriptors (raw0, raw1)")
        m0 = F.normalize(raw0.float() + self.proj(desc0), dim=-1)
        m1 = F.normalize(raw1.float() + self.proj(desc1), dim=-1)
        return self.PRIOR_GAIN * self.prior_weight * (m0 @ m1.transpose(1, 2))


class SinkhornHead(nn.Module):
    """Similarity + a learnable dustbin score, then Sinkhorn."""

    def __init__(self, dim: int, iters: int = 50, prior: bool = True, descriptor_dim: int = 128):
        super().__init__()
        self.similarity = Similarity(dim, prior, descriptor_dim)
        self.dustbin = nn.Parameter(torch.tensor(1.0))
        self.iters = iters

    def forward(self, desc0: Tensor, desc1: Tensor, mask0: Tensor, mask1: Tensor, raw0: Tensor | None = None, raw1: Tensor | None = None) -> Tensor:
        with torch.autocast(desc0.device.type, enabled=False):
            scores = self.similarity(desc0.float(), desc1.float(), raw0, raw1)
            return log_sinkhorn(scores, self.dustbin.float(), mask0, mask1, self.iters)


class DualSoftmaxHead(nn.Module):
    """LightGlue: softmax over rows + softmax over columns of the similarity, plus a per-point
    matchability σ(z); unmatchable mass goes to the dustbin as log σ(−z)."""

    def __init__(self, dim: int, prior: bool = True, descriptor_dim: int = 128):
        super().__init__()
        self.similarity = Similarity(dim, prior, descriptor_dim)
        self.matchability = nn.Linear(dim, 1)
        nn.init.constant_(self.matchability.bias, 2.0)  # start by calling most keypoints matchable

    def forward(self, desc0: Tensor, desc1: Tensor, mask0: Tensor, mask1: Tensor, raw0: Tensor | None = None, raw1: Tensor | None = None) -> Tensor:
        with torch.autocast(desc0.device.type, enabled=False):
            desc0, desc1 = desc0.float(), desc1.float()
            sim = self.similarity(desc0, desc1, raw0, raw1)
            pair_valid = mask0[:, :, None] & mask1[:, None, :]
            sim = sim.masked_fill(~pair_valid, NEG)
            z0, z1 = self.matchability(desc0).squeeze(-1), self.matchability(desc1).squeeze(-1)
            b, n, m = sim.shape
            out = sim.new_full((b, n + 1, m + 1), NEG)
            out[:, :n, :m] = F.log_softmax(sim, 2) + F.log_softmax(sim, 1) + F.logsigmoid(z0)[:, :, None] + F.logsigmoid(z1)[:, None, :]
            out[:, :n, m] = F.logsigmoid(-z0)
            out[:, n, :m] = F.logsigmoid(-z1)
            valid = _with_dustbin(mask0)[:, :, None] & _with_dustbin(mask1)[:, None, :]
            valid[:, n, m] = False  # dustbin to dustbin is not an assignment
            return out.masked_fill(~valid, NEG)


def extract_matches(log_assignment: Tensor, mask0: Tensor, mask1: Tensor, threshold: float = 0.2):
    """Mutual argmax (dustbins excluded) with probability above ``threshold``.

    Returns ``matches0`` (B, n; index in image 1 or −1), ``matches1`` (B, m) and ``scores0`` (B, n).
    """
    scores = log_assignment[:, :-1, :-1]
    b, n, m = scores.shape
    if n == 0 or m == 0:
        return (torch.full((b, n), -1, dtype=torch.long, device=scores.device),
                torch.full((b, m), -1, dtype=torch.long, device=scores.device), scores.new_zeros(b, n))
    max0, idx0 = scores.max(2)
    max1, idx1 = scores.max(1)
    mutual0 = torch.arange(n, device=scores.device)[None] == idx1.gather(1, idx0)
    mutual1 = torch.arange(m, device=scores.device)[None] == idx0.gather(1, idx1)
    prob0 = max0.exp()
    keep0 = mutual0 & (prob0 > threshold) & mask0 & mask1.gather(1, idx0)
    keep1 = mutual1 & keep0.gather(1, idx1) & mask1
    matches0 = torch.where(keep0, idx0, -1)
    matches1 = torch.where(keep1, idx1, -1)
    return matches0, matches1, torch.where(keep0, prob0, 0.0)
