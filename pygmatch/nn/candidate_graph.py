"""``CandidateGraphNet``: a graph network that judges descriptor candidates by how they move with
their neighbours, in pixels, and decides jointly.

Why this shape. On real photographs a perfect selector among SIFT's mutual nearest neighbours
raises RANSAC AUC@3 by ~9 points; more candidates add little. A correct candidate moves like its
neighbours (a homography is locally affine), a wrong one does not, and a candidate 2 px off the
motion is an imprecise one. So the network works on the *candidate graph*:

- nodes: the candidates ``(i, j)`` (keypoint i of image 0 with keypoint j of image 1), each a match
  hypothesis with its displacement ``p1_j − p0_i`` in pixels;
- intra-image edges: any ``pygmatch.graphs`` transform (kNN by default) over the candidates'
  image-0 positions, and the same over their image-1 positions (a correct neighbourhood is one in
  both images); the inter-image edges are the candidates themselves;
- per layer, each node fits an affine motion to its neighbours, weighted by how much the network
  currently believes them (a learned IRLS: the weights are the neighbours' match probabilities
  times a Cauchy weight on their residuals), and measures, in pixels, how far its own hypothesis
  misses that motion and how far each neighbour's does;
- attention messages (GATv2-style, ``CandidateAttention``) carry the neighbour's state and the
  relative geometry of the edge (offsets, distance ratio against the scale change, orientation
  agreement, the neighbour's residual against the current fit, the neighbour's belief);
- after every layer a logit per candidate (deep supervision); the last one goes through a sparse
  dual-softmax with a learned dustbin over the candidates sharing a keypoint, so candidates that
  compete for a keypoint (``top2`` candidates) are decided jointly. Its labels: positives within
  1 px of the exact reprojection, negatives beyond 3 px, the band between ignored;
- a second head says whether a correct candidate (< 3 px) is also precise (< 1 px): RANSAC keeps the
  1–3 px candidates and averages them into its refit, which costs homography accuracy (a perfect
  1 px selection among the mutual nearest neighbours is worth ~9 AUC@3 points on the real pairs).
  The score is P(match) · P(precise | match).

Inputs (one pair, or a batch of pairs as one disjoint graph; K candidates, E0/E1 edges)::

    x          (K, F)    candidate features (``NODE_FEATURES``)
    pos0, pos1 (K, 2)    the candidate's keypoint positions in image 0 / image 1, pixels of images whose
                         longer side is at most ``resolution`` (``pygmatch.matching.candidate_graph.graph_data``)
    log_scale  (K,)      log(scale1 / scale0) of the two keypoints (SIFT scale change)
    angle      (K,)      ori1 − ori0, radians (SIFT orientation change)
    edge_index0 (2, E0)  edges (source, target) between candidates near in image 0
    edge_index1 (2, E1)  the same in image 1
    edge_scale0/1 (E0,) / (E1,)  which of the graph's scales (edge sets) an edge is of: a
                         multi-scale graph (``MultiScaleGraph``) gives each scale its own branch
    group_index0/1 (K,)  which keypoint of image 0 / image 1 the candidate uses, numbered from 0
                         per pair (named *index* so that PyG's batching offsets them)

Outputs (``CandidateGraphOutput``)::

    logits      list of (K,) per layer: log-odds that the candidate is within 1 px of the truth
    log_assign  (K,)     log of the dual-softmax assignment probability
    precise     (K,)     log-odds that the candidate is within 1 px, given that it is within 3 px
    score       (K,)     exp(log_assign) · sigmoid(precise): what the matching stage thresholds
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
from torch import nn
from torch_geometric.nn import MessagePassing
from torch_geometric.utils import scatter, softmax

from ..errors import PygmatchError
from ..graphs.registry import graph_from_params, graph_params
from ..values import (Section, non_negative_float, non_negative_int, positive, positive_int, probability_threshold,
                      setting)

NODE_FEATURES = ("descriptor_distance2", "ratio0", "ratio1", "mutual", "log_scale0", "log_scale_change", "cos_angle", "sin_angle",
                 "response0", "response1", "log_tilt0", "log_tilt1")
# The features of the networks before view synthesis: their files load with zero weights on the view tilts.
NODE_FEATURES_BEFORE_VIEWS = NODE_FEATURES[:10]
EDGE_FEATURES = 12
FIT_FEATURES = 6


CANDIDATES = ("mutual", "mutual2", "top2")


@dataclass
class CandidateGraphConfig(Section):
    """The network and its inference options: the one source of their defaults (``train.run``'s
    model flags are derived from these fields, the model file records them)."""

    dim: int = setting(64, positive_int, help="node state width")
    layers: int = setting(4, positive_int, help="rounds of message passing")
    heads: int = setting(2, positive_int, help="attention heads")
    # the intra-image graph over the candidates' positions in each image: a pygmatch.graphs transform's
    # recorded parameters (``graph_params``; train.run's --graph flags); a multi-scale graph gives one branch per scale
    graph: dict = field(default_factory=lambda: {"name": "knn", "k": 8})
    candidates: str = setting("mutual", choices=CANDIDATES,
                              help="mutual nearest neighbours; mutual2: each among the other's two nearest; top2: the two nearest both ways")
    messages: bool = setting(True, help="attention messages (--no-messages: the ablation without them, uniform-weight fits)")
    ortho_weight: float = setting(0.0, non_negative_float, help="multiscale: orthogonality loss between the scales' messages")
    positive_px: float = setting(1.0, positive(float), help="training label: within this many px of the exact reprojection ...")
    ignore_px: float = setting(3.0, positive(float), help="... negatives beyond this many px; in between ignored")
    resolution: int = setting(640, non_negative_int,
                              help="the network reads positions and SIFT scales as on images whose longer side is at most this many px, "
                                   "its training images' 640: larger images' are scaled down to it (0: as extracted)")
    threshold: float = setting(0.5, probability_threshold, help="inference: keep candidates whose score is above this ...")
    min_keep: int = setting(20, non_negative_int, help="... and at least this many of the most probable ones ...")
    pad_from: int = setting(10, non_negative_int, help="... when at least this many pass on their own (fewer: no overlap; 0: always)")
    features: str = setting("sift", choices=("sift", "xfeat"), help="the keypoints the network judges")

    def __post_init__(self):
        super().__post_init__()
        if self.graph.get("name") == "descriptor-knn":
            raise PygmatchError("the candidate graph network's graphs are over the candidates' positions; descriptor-knn needs "
                                "keypoint descriptors: choose knn, radius, mst, partition, complete or multiscale")
        self.graph = graph_params(graph_from_params(self.graph))  # recorded in canonical form
        if self.positive_px > self.ignore_px:
            raise PygmatchError(f"positive_px {self.positive_px} must not exceed ignore_px {self.ignore_px}")

    def architecture(self) -> dict:
        """The fields that shape the weights (a checkpoint resumes only into the same)."""
        return {k: getattr(self, k) for k in ("dim", "layers", "heads", "graph", "candidates", "messages", "features")}


@dataclass
class CandidateGraphOutput:
    logits: list  # per layer (K,)
    log_assign: torch.Tensor  # (K,)
    precise: torch.Tensor  # (K,)
    branches: list = field(default_factory=list)  # per layer, per image: the scales' messages [(K, dim)] (multi-scale)

    @property
    def score(self) -> torch.Tensor:
        return torch.exp(self.log_assign) * torch.sigmoid(self.precise)


def mlp(dims: list[int]) -> nn.Sequential:
    blocks = []
    for a, b in zip(dims[:-2], dims[1:-1]):
        blocks += [nn.Linear(a, b), nn.GELU()]
    return nn.Sequential(*blocks, nn.Linear(dims[-2], dims[-1]))


def rotate(v: torch.Tensor, angle: torch.Tensor) -> torch.Tensor:
    """(E, 2) vectors rotated by (E,) radians."""
    c, s = torch.cos(angle), torch.sin(angle)
    return torch.stack([c * v[:, 0] - s * v[:, 1], s * v[:, 0] + c * v[:, 1]], 1)


def weighted_affine_fit(src: torch.Tensor, dst: torch.Tensor, w: torch.Tensor, target: torch.Tensor, n: int) -> torch.Tensor:
    """Per node, the affine map fitted by weighted least squares to its incoming edges:
    ``dst ≈ [src / 50, 1] @ A`` with ``src`` (E, 2) the neighbours' offsets in the fitting image and
    ``dst`` (E, 2) their offsets in the other image (both relative to the node), weights ``w`` (E,).
    Returns ``A`` (n, 3, 2); ``A[:, 2]`` is where the fitted motion puts the node itself, relative to
    its own hypothesis: the node's miss in pixels."""
    return solve_moments(fit_moments(src, dst), w, target, n)


def fit_moments(src: torch.Tensor, dst: torch.Tensor) -> torch.Tensor:
    """(E, 15): each edge's ``XᵀX`` (9) and ``Xᵀdst`` (6) with ``X = [src / 50, 1]``; they do not
    depend on the weights, so one forward computes them once per edge set."""
    X = torch.cat([src / 50.0, torch.ones_like(src[:, :1])], 1)  # (E, 3)
    return torch.cat([(X[:, :, None] * X[:, None, :]).reshape(-1, 9), (X[:, :, None] * dst[:, None, :]).reshape(-1, 6)], 1)


def solve_moments(moments: torch.Tensor, w: torch.Tensor, target: torch.Tensor, n: int) -> torch.Tensor:
    """``A`` (n, 3, 2) of ``weighted_affine_fit`` from the edges' ``fit_moments`` (E, 15)."""
    total = scatter(moments * w[:, None], target, 0, dim_size=n, reduce="sum")
    eye = torch.eye(3, dtype=moments.dtype, device=moments.device)
    return torch.linalg.solve(total[:, :9].reshape(n, 3, 3) + 1e-3 * eye, total[:, 9:].reshape(n, 3, 2))


@dataclass
class EdgeGeometry:
    """What an intra-image edge set's geometry is, independent of the beliefs (computed once per
    forward): ``pa`` the positions in the image whose graph it is, ``pb`` the other image's,
    ``log_scale`` / ``angle`` the candidates' scale and orientation change from a to b."""
    edge_index: torch.Tensor  # (2, E) source, target
    oa: torch.Tensor  # (E, 2) neighbour offset in image a, px
    ob: torch.Tensor  # (E, 2) ... and in image b
    moments: torch.Tensor  # (E, 15) fit_moments(oa, ob)
    static: torch.Tensor  # (E, 9) the edge features that do not depend on the beliefs
    near: torch.Tensor  # (E,) the neighbour sits on the node (a keypoint with two candidates)
    oa_scaled: torch.Tensor  # (E, 2) oa / 50, the fits' source coordinates (``fit_moments``)

    @classmethod
    def of(cls, pa, pb, log_scale, angle, edge_index) -> "EdgeGeometry":
        src, dst = edge_index
        oa, ob = pa[src] - pa[dst], pb[src] - pb[dst]
        da, db = oa.norm(dim=1), ob.norm(dim=1)
        # the node's own similarity (SIFT scale and orientation change) predicts the neighbour's offset
        pred = torch.exp(log_scale[dst])[:, None] * rotate(oa, angle[dst])
        sim_resid = torch.linalg.vector_norm(ob - pred, dim=1)
        turn = torch.atan2(oa[:, 0] * ob[:, 1] - oa[:, 1] * ob[:, 0], (oa * ob).sum(1)) - angle[dst]
        static = torch.stack([
            torch.log1p(sim_resid), sim_resid / (da + 1.0), torch.log1p(db) - torch.log1p(da) - log_scale[dst], torch.cos(turn),
            torch.sin(turn), log_scale[src] - log_scale[dst], torch.cos(angle[src] - angle[dst]), torch.sin(angle[src] - angle[dst]),
            torch.log1p(da) / 5.0], 1)
        return cls(edge_index, oa, ob, fit_moments(oa, ob), static, (da < 0.5).float(), oa / 50.0)


class MotionFit(nn.Module):
    """The geometry of one intra-image edge set under the nodes' current beliefs.

    ``forward(geometry, belief) -> (edge_attr (E, EDGE_FEATURES), node_fit (K, FIT_FEATURES // 2))``
    with ``geometry`` the edge set's ``EdgeGeometry``. Two IRLS steps: weights = neighbour belief
    (and, in the second, a Cauchy weight at 2 px on its residual); with ``messages`` off the belief
    is not used (uniform weights)."""

    def __init__(self, messages: bool = True):
        super().__init__()
        self.messages = messages

    def forward(self, geo: EdgeGeometry, belief):
        src, dst = geo.edge_index
        n = belief.size(0)
        w = belief[src] if self.messages else torch.ones_like(belief[src])

        def residual(A):  # (E,) px: how far each neighbour's offset in image b misses the node's fitted motion
            at = A[dst]
            return torch.linalg.vector_norm(geo.ob - torch.einsum("ei,eij->ej", geo.oa_scaled, at[:, :2]) - at[:, 2], dim=1)
        resid = residual(solve_moments(geo.moments, w, dst, n))
        A = solve_moments(geo.moments, w / (1.0 + (resid / 2.0) ** 2), dst, n)
        resid = residual(A)
        miss = torch.linalg.vector_norm(A[:, 2], dim=1)
        wn = w / (1.0 + (resid / 2.0) ** 2)
        support = scatter(wn, dst, 0, dim_size=n, reduce="sum")
        mean_resid = scatter(wn * resid, dst, 0, dim_size=n, reduce="sum") / support.clamp(min=1e-6)
        edge_attr = torch.cat([torch.log1p(resid)[:, None], geo.static, (w if self.messages else belief[src])[:, None], geo.near[:, None]], 1)
        node_fit = torch.stack([torch.log1p(miss), torch.log1p(mean_resid), torch.log1p(support) / 3.0], 1)
        return edge_attr, node_fit


class CandidateAttention(MessagePassing):
    """GATv2-style attention over one edge set; the message is the neighbour's state with the
    edge's geometry: ``α_ij = softmax_j aᵀ LeakyReLU(W_t h_i + W_s h_j + W_e e_ij)``,
    ``m_i = Σ_j α_ij · (V_h h_j + V_e e_ij)``. (K, dim) → (K, dim). The node projections are made
    once per node, only the edge terms per edge (E ≈ 8K)."""

    def __init__(self, dim: int, heads: int, edge_dim: int):
        super().__init__(aggr="sum", node_dim=0)
        self.heads, self.head_dim = heads, dim // heads
        self.w_t, self.w_s, self.v_h = nn.Linear(dim, dim), nn.Linear(dim, dim, bias=False), nn.Linear(dim, dim)
        self.w_e, self.v_e = nn.Linear(edge_dim, dim, bias=False), nn.Linear(edge_dim, dim, bias=False)
        self.att = nn.Parameter(torch.randn(heads, self.head_dim) / math.sqrt(self.head_dim))
        self.out = nn.Linear(dim, dim)
        self.record = False  # keep the last forward's weights in ``weights`` (E, heads): CandidateGraphNet.attention
        self.weights = None

    def forward(self, h, edge_index, edge_attr):
        m = self.propagate(edge_index, q=self.w_t(h), k=self.w_s(h), v=self.v_h(h), edge_attr=edge_attr, size=(h.size(0), h.size(0)))
        return self.out(m.reshape(h.size(0), -1))

    def message(self, q_i, k_j, v_j, edge_attr, index, ptr, size_i):
        # the (E, dim) terms summed in place, in the same order: a fresh (E, dim) tensor per step costs more than the sum
        e = q_i + k_j
        e += self.w_e(edge_attr)
        e = nn.functional.leaky_relu_(e, 0.2).view(-1, self.heads, self.head_dim)
        alpha = softmax((e * self.att).sum(-1), index, ptr, size_i)  # (E, heads)
        if self.record:
            self.weights = alpha.detach()
        value = self.v_e(edge_attr)
        value += v_j
        return alpha[..., None] * value.view(-1, self.heads, self.head_dim)


class CandidateLayer(nn.Module):
    """One round: fit the motion in both images under the current beliefs, attend over every edge
    set (both images, each scale), update the node states, and give new logits."""

    def __init__(self, cfg: CandidateGraphConfig, scales: int = 1):
        super().__init__()
        d = cfg.dim
        self.messages = cfg.messages
        self.fit = MotionFit(cfg.messages)
        self.att0 = nn.ModuleList(CandidateAttention(d, cfg.heads, EDGE_FEATURES) for _ in range(scales))
        self.att1 = nn.ModuleList(CandidateAttention(d, cfg.heads, EDGE_FEATURES) for _ in range(scales))
        self.update = mlp([d + scales * (2 * d + FIT_FEATURES), 2 * d, d])
        self.norm = nn.LayerNorm(d)
        self.head = nn.Linear(d, 1)

    def forward(self, h, geo0: list[EdgeGeometry], geo1: list[EdgeGeometry], belief):
        """-> (h (K, dim), logits (K,), the messages per image and scale)."""
        branches, fits = ([], []), []
        for att, geos, messages in ((self.att0, geo0, branches[0]), (self.att1, geo1, branches[1])):
            for a, geo in zip(att, geos):
                e, f = self.fit(geo, belief)
                messages.append(a(h, geo.edge_index, e) if self.messages else torch.zeros_like(h))
                fits.append(f)
        h = self.norm(h + self.update(torch.cat([h, *branches[0], *branches[1], *fits], 1)))
        return h, self.head(h)[:, 0], branches


def sparse_dual_softmax(logits: torch.Tensor, group0: torch.Tensor, group1: torch.Tensor, dustbin: torch.Tensor) -> torch.Tensor:
    """Log assignment probabilities of sparse candidates: a softmax over the candidates of each
    image-0 keypoint (plus a dustbin of logit ``dustbin``) times the same over those of each image-1
    keypoint. (K,) → (K,)."""
    def log_softmax_groups(z, g):
        n = int(g.max()) + 1 if g.numel() else 0
        m = torch.maximum(scatter(z, g, 0, dim_size=n, reduce="max"), dustbin.detach())
        s = scatter(torch.exp(z - m[g]), g, 0, dim_size=n, reduce="sum") + torch.exp(dustbin - m)
        return z - m[g] - torch.log(s)[g]
    return log_softmax_groups(logits, group0) + log_softmax_groups(logits, group1)


class CandidateGraphNet(nn.Module):
    """The network (see the module's docstring). ``forward(data) -> CandidateGraphOutput``."""

    def __init__(self, cfg: CandidateGraphConfig | None = None):
        super().__init__()
        self.cfg = cfg = cfg or CandidateGraphConfig()
        self.scales = graph_from_params(cfg.graph).scales
        width = len(NODE_FEATURES)
        self.register_buffer("mean", torch.zeros(width))
        self.register_buffer("std", torch.ones(width))
        self.encode = mlp([width + self.scales * FIT_FEATURES, cfg.dim, cfg.dim])
        self.first_fit = MotionFit(messages=False)
        self.first_head = nn.Linear(cfg.dim, 1)
        self.layers = nn.ModuleList(CandidateLayer(cfg, self.scales) for _ in range(cfg.layers))
        self.dustbin = nn.Parameter(torch.tensor(0.0))
        self.precise_head = mlp([cfg.dim, cfg.dim, 1])

    def forward(self, data) -> CandidateGraphOutput:
        geo0 = [EdgeGeometry.of(data.pos0, data.pos1, data.log_scale, data.angle, e) for e in self.split(data.edge_index0, data.edge_scale0)]
        geo1 = [EdgeGeometry.of(data.pos1, data.pos0, -data.log_scale, -data.angle, e) for e in self.split(data.edge_index1, data.edge_scale1)]
        # 1. encode: the candidate's own evidence and a uniform-weight motion fit in each image and scale
        uniform = torch.full_like(data.log_scale, 0.5)
        fits = [self.first_fit(geo, uniform)[1] for geo in geo0 + geo1]
        h = self.encode(torch.cat([(data.x - self.mean) / self.std, *fits], 1))
        logits, branches = [self.first_head(h)[:, 0]], []
        # 2. rounds of message passing, each re-weighting the fits by the current beliefs
        for layer in self.layers:
            h, z, messages = layer(h, geo0, geo1, torch.sigmoid(logits[-1]))
            logits.append(z)
            branches.append(messages)
        # 3. joint decision over candidates sharing a keypoint, and whether a match is precise
        log_assign = sparse_dual_softmax(logits[-1], data.group_index0, data.group_index1, self.dustbin)
        return CandidateGraphOutput(logits, log_assign, self.precise_head(h)[:, 0], branches if self.scales > 1 else [])

    @torch.no_grad()
    def attention(self, data) -> tuple[CandidateGraphOutput, list[dict]]:
        """The output and every layer's attention: ``[{"0": [(edge_index (2, E_s), weights (E_s, heads))
        per scale], "1": [...]}]`` per layer, over the candidates' graph in image 0 and in image 1
        (``edge_index`` rows: source = the attended neighbour, target = the attending candidate)."""
        modules = [a for layer in self.layers for a in (*layer.att0, *layer.att1)]
        for a in modules:
            a.record, a.weights = True, None
        try:
            out = self(data)
        finally:
            for a in modules:
                a.record = False
        edges = {"0": self.split(data.edge_index0, data.edge_scale0), "1": self.split(data.edge_index1, data.edge_scale1)}
        layers = [{image: [(e, a.weights) for e, a in zip(edges[image], getattr(layer, f"att{image}"))] for image in ("0", "1")}
                  for layer in self.layers]
        return out, layers

    def split(self, edge_index: torch.Tensor, edge_scale: torch.Tensor) -> list[torch.Tensor]:
        """The edges of each scale, [(2, E_s)]."""
        if self.scales == 1:
            return [edge_index]
        return [edge_index[:, edge_scale == s] for s in range(self.scales)]


def orthogonality(features: list[torch.Tensor]) -> torch.Tensor:
    """Mean over nodes of the squared cosine similarity between every two branches' messages,
    summed over branch pairs: 0 when the scales' messages are mutually orthogonal."""
    total = features[0].new_zeros(())
    for a in range(len(features)):
        for b in range(a + 1, len(features)):
            total = total + nn.functional.cosine_similarity(features[a], features[b], dim=-1).pow(2).mean()
    return total


def candidate_loss(out: CandidateGraphOutput, error: torch.Tensor, cfg: CandidateGraphConfig) -> torch.Tensor:
    """Positives within ``positive_px`` of the exact reprojection, negatives beyond ``ignore_px``,
    the band in between ignored: binary cross-entropy of the assignment probability, plus that of
    every layer's logit (deep supervision, weight 0.5 in all); and, on the candidates within
    ``ignore_px``, that of the precision head (within ``positive_px`` or not)."""
    pos, neg = error < cfg.positive_px, error > cfg.ignore_px
    lp = out.log_assign.clamp(max=-1e-6)
    final = -(lp[pos].sum() + torch.log1p(-torch.exp(lp[neg])).sum()) / (pos | neg).sum().clamp(min=1)
    label = pos.float()
    used = pos | neg
    deep = sum(nn.functional.binary_cross_entropy_with_logits(z[used], label[used]) for z in out.logits) / len(out.logits)
    near = error < cfg.ignore_px
    precise = nn.functional.binary_cross_entropy_with_logits(out.precise[near], label[near]) if bool(near.any()) else out.precise.sum() * 0
    total = final + 0.5 * deep + precise
    if cfg.ortho_weight > 0 and out.branches:
        total = total + cfg.ortho_weight * sum(orthogonality(m0) + orthogonality(m1) for m0, m1 in out.branches) / (2 * len(out.branches))
    return total


__all__ = ["CandidateGraphConfig", "CandidateGraphNet", "CandidateGraphOutput", "candidate_loss", "sparse_dual_softmax",
           "weighted_affine_fit", "NODE_FEATURES"]
