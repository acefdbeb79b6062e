"""``GraphMatcher``: keypoint encoder → L × (self, cross) attention layers → assignment head.

Read it like LightGlue's ``lightglue.py``: ``forward`` encodes both images' keypoints, runs the
layers (self attention over each image's edge sets, cross attention between the images), asks
``check_if_stop`` after each layer and ``get_pruning_mask`` which keypoints to drop (both only at
inference with ``early_exit`` / ``pruning``), then assigns. The two images are 0 and 1 throughout.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor, nn
from torch_geometric.utils import scatter, to_dense_batch

from ..graphs.descriptor_knn import descriptor_knn_edges
from .assignment import DualSoftmaxHead, SinkhornHead, extract_matches
from .attention import FourierPositions
from .config import MatcherConfig
from .layers import ImageGraph, MatcherLayer


def mlp(dims: list[int]) -> nn.Sequential:
    layers = []
    for a, b in zip(dims[:-2], dims[1:-1]):
        layers += [nn.Linear(a, b), nn.LayerNorm(b), nn.GELU()]
    layers.append(nn.Linear(dims[-2], dims[-1]))
    return nn.Sequential(*layers)


class KeypointEncoder(nn.Module):
    """Descriptor projection + an MLP of the keypoint's attributes (SuperGlue): the normalised
    position (absolute mode) and scale / orientation / detector score (``keypoint_attrs``)."""

    def __init__(self, cfg: MatcherConfig):
        super().__init__()
        self.use_pos = cfg.positional in ("absolute", "both")
        self.use_attrs = cfg.keypoint_attrs
        n_in = 2 * self.use_pos + 4 * self.use_attrs
        self.desc = nn.Linear(cfg.descriptor_dim, cfg.dim)
        self.attrs = mlp([n_in, 32, 64, cfg.dim]) if n_in else None

    def forward(self, x: Tensor, pos: Tensor, scale: Tensor, ori: Tensor, score: Tensor, batch: Tensor, num_pairs: int) -> Tensor:
        out = self.desc(x)
        if self.attrs is None:
            return out
        cols = [pos] if self.use_pos else []
        if self.use_attrs:
            top = scatter(score, batch, 0, dim_size=num_pairs, reduce="max").clamp(min=1e-12)[batch]
            cols += [torch.log(scale.clamp(min=1e-3) / 10.0)[:, None], ori.cos()[:, None], ori.sin()[:, None], (score / top)[:, None]]
        return out + self.attrs(torch.cat(cols, -1))


def side_inputs(data, image: str):
    """Node tensors of image ``"0"`` or ``"1"`` from a (batched) PairData, positions centred and
    scaled to [-1, 1]."""
    x = data[f"x_{image}"]
    key = f"x_{image}_batch"
    batch = data[key] if key in data else torch.zeros(x.size(0), dtype=torch.long, device=x.device)
    size = data[f"image_size_{image}"].reshape(-1, 2)[batch]
    pos = (data[f"pos_{image}"] - size / 2) / (size.max(-1, keepdim=True).values / 2)
    return x, pos, batch


@dataclass
class TrainingOutputs:
    """What only the loss reads."""

    branches: list[tuple[list[Tensor], list[Tensor]]]  # per layer, per image: each edge set's messages (multi-scale)
    point_logits: list[tuple[Tensor, Tensor]] = field(default_factory=list)  # deep supervision, per layer but the last:
    # per image (n, 2) [confidence, matchability] logits
    layer_log_assignments: list[Tensor] = field(default_factory=list)  # deep supervision: (B, N+1, M+1) per layer but the last


@dataclass
class MatchOutput:
    """The matches of B pairs; image 0 has up to N keypoints, image 1 up to M (padded per pair)."""

    log_assignment: Tensor  # (B, N+1, M+1) log-probabilities, the last row / column the dustbins
    matches0: Tensor  # (B, N) index of the match in image 1, -1 for none (and for padding)
    matches1: Tensor  # (B, M) index of the match in image 0, -1 for none
    matching_scores0: Tensor  # (B, N) probability of each match, 0 where there is none
    mask0: Tensor  # (B, N) bool: a real keypoint, not padding
    mask1: Tensor  # (B, M)
    batch0: Tensor  # (n0,) the pair of each keypoint of image 0 (the batch's node order)
    batch1: Tensor  # (n1,)
    stop_layer: int  # layers run (early exit: fewer than cfg.layers)
    prune_mask0: Tensor  # (n0,) bool: the keypoint stayed to the end (pruning drops the others; they are unmatched)
    prune_mask1: Tensor  # (n1,)
    training: TrainingOutputs  # what only the loss reads
    attention: list[dict] | None = None  # return_attention=True: per layer {"self": (att0, att1), "cross": att}

    @property
    def pruned(self) -> tuple[int, int]:
        """Keypoints dropped by pruning in images 0 and 1."""
        return int((~self.prune_mask0).sum()), int((~self.prune_mask1).sum())


class GraphMatcher(nn.Module):
    """Matches the keypoints of pairs of images.

    Input: a (batched) ``PairData`` whose images 0 and 1 are the ``_0`` / ``_1`` attributes:
    ``x_0`` (n0, descriptor_dim) descriptors, ``pos_0`` (n0, 2) pixels,
    ``scale_0`` / ``ori_0`` / ``score_0`` (n0,), ``image_size_0`` (B, 2) as (w, h), optionally
    ``edge_index_0`` (2, E) with ``edge_scale_0`` / ``scale_complete_0`` from a graph transform
    (none: complete graphs), the same for image 1 with ``_1``, and ``edge_index_cross`` /
    ``cross_complete`` from a cross transform; batched by ``DataLoader(follow_batch=["x_0", "x_1"])``.

    Output: a ``MatchOutput`` (shapes there).
    """

    def __init__(self, cfg: MatcherConfig | None = None):
        super().__init__()
        self.cfg = cfg = cfg or MatcherConfig()
        self.encoder = KeypointEncoder(cfg)
        self.rope = FourierPositions(cfg.dim // cfg.heads) if cfg.positional in ("rotary", "both") else None
        self.layers = nn.ModuleList(MatcherLayer(cfg) for _ in range(cfg.layers))
        self.head = (SinkhornHead(cfg.dim, cfg.sinkhorn_iters, cfg.descriptor_prior, cfg.descriptor_dim) if cfg.assignment == "sinkhorn"
                     else DualSoftmaxHead(cfg.dim, cfg.descriptor_prior, cfg.descriptor_dim))
        # Per layer but the last: [confidence logit, matchability logit] per keypoint (LightGlue's
        # early exit and pruning). Trained by deep supervision; cheap enough to always exist.
        self.point_heads = nn.ModuleList(nn.Linear(cfg.dim, 2) for _ in range(cfg.layers - 1))

    def image_graph(self, data, image: str, num_pairs: int) -> ImageGraph:
        x, pos, batch = side_inputs(data, image)
        feats = self.encoder(x, pos, data[f"scale_{image}"], data[f"ori_{image}"], data[f"score_{image}"], batch, num_pairs)
        if f"edge_index_{image}" in data:
            edges, scale_of = data[f"edge_index_{image}"], data[f"edge_scale_{image}"]
            complete = data[f"scale_complete_{image}"].reshape(num_pairs, -1)[0].tolist() if num_pairs else [True]
            exclusive = bool(data[f"scale_exclusive_{image}"].reshape(-1)[0]) if f"scale_exclusive_{image}" in data and num_pairs else False
            sets = [edges[:, scale_of == s] for s in range(len(complete))]
        else:  # no graph transform: SuperGlue's complete graph
            sets, complete, exclusive = [torch.zeros(2, 0, dtype=torch.long, device=x.device)], [True], False
        rope = self.rope(pos) if self.rope is not None else None
        return ImageGraph(feats, batch, num_pairs, sets, complete, exclusive, rope)

    def forward(self, data, return_attention: bool = False) -> MatchOutput:
        num_pairs = int(data.num_graphs) if hasattr(data, "num_graphs") and "x_0_batch" in data else 1
        g0, g1 = self.image_graph(data, "0", num_pairs), self.image_graph(data, "1", num_pairs)
        cross = None if bool(data.cross_complete.reshape(-1)[0]) else data.edge_index_cross
        adaptive = not self.training and (self.cfg.early_exit or self.cfg.pruning)
        n0, n1 = g0.x.size(0), g1.x.size(0)
        batch0, batch1 = g0.batch, g1.batch
        keep0 = torch.arange(n0, device=g0.x.device)  # original index of each node still in play
        keep1 = torch.arange(n1, device=g1.x.device)
        out0, out1 = g0.x.clone(), g1.x.clone()
        training = TrainingOutputs(branches=[])
        layer_feats, attention = [], []
        stop = self.cfg.layers
        initial, snapshots = (g0.x, g1.x), [None, None]
        for k, layer in enumerate(self.layers):
            self._research_variants(k, g0, g1, initial, snapshots)
            skip = k < self.cfg.dense_warmup_layers
            x0, msg0, att0 = layer.self_attention(g0, skip_complete=skip, return_attention=return_attention)
            x1, msg1, att1 = layer.self_attention(g1, skip_complete=skip, return_attention=return_attention)
            training.branches.append((msg0, msg1))
            g0.x, g1.x = x0, x1
            x0, x1, cross_att = layer.cross_attention(g0, g1, cross, return_attention)
            g0.x, g1.x = x0, x1
            if return_attention:
                attention.append({"self": (att0, att1), "cross": cross_att})
            if k == self.cfg.layers - 1:
                break
            if self.training and self.cfg.deep_supervision:
                layer_feats.append((x0, x1))
                training.point_logits.append((self.point_heads[k](x0.detach()), self.point_heads[k](x1.detach())))
            if not adaptive:
                continue
            logits0, logits1 = self.point_heads[k](x0), self.point_heads[k](x1)
            if self.cfg.early_exit and self.check_if_stop(logits0, logits1):
                stop = k + 1
                break
            if self.cfg.pruning:
                out0[keep0], out1[keep1] = x0, x1
                drop0, drop1 = ~self.get_pruning_mask(logits0), ~self.get_pruning_mask(logits1)
                if drop0.any() or drop1.any():
                    g0, g1 = g0.select(~drop0), g1.select(~drop1)
                    if cross is not None:
                        cross = _select_bipartite(cross, ~drop0, ~drop1)
                    keep0, keep1 = keep0[~drop0], keep1[~drop1]
                    snapshots = [None if v is None else v[~d] for v, d in zip(snapshots, (drop0, drop1))]
        out0[keep0], out1[keep1] = g0.x, g1.x
        active0 = torch.zeros(n0, dtype=torch.bool, device=out0.device)
        active1 = torch.zeros(n1, dtype=torch.bool, device=out1.device)
        active0[keep0], active1[keep1] = True, True
        raw = (data.x_0, data.x_1) if self.cfg.descriptor_prior else (None, None)
        log_assignment, mask0, mask1 = self.assign(out0, out1, batch0, batch1, num_pairs, raw)
        a0, a1 = mask0, mask1
        if not bool(active0.all() and active1.all()):  # pruned keypoints are unmatched
            a0 = mask0 & to_dense_batch(active0, batch0, batch_size=num_pairs)[0]
            a1 = mask1 & to_dense_batch(active1, batch1, batch_size=num_pairs)[0]
        matches0, matches1, scores0 = extract_matches(log_assignment, a0, a1, self.cfg.match_threshold)
        training.layer_log_assignments = [self.assign(x0, x1, batch0, batch1, num_pairs, raw)[0] for x0, x1 in layer_feats]
        return MatchOutput(log_assignment=log_assignment, matches0=matches0, matches1=matches1, matching_scores0=scores0,
                           mask0=mask0, mask1=mask1, batch0=batch0, batch1=batch1, stop_layer=stop, prune_mask0=active0,
                           prune_mask1=active1, training=training, attention=attention if return_attention else None)

    def check_if_stop(self, logits0: Tensor, logits1: Tensor) -> bool:
        """Early exit (LightGlue): stop when at least ``exit_ratio`` of all keypoints are confident
        (their confidence head says this layer already predicts what the last one will)."""
        confident = torch.cat([logits0[:, 0], logits1[:, 0]]).sigmoid() > self.cfg.exit_confidence
        return confident.numel() == 0 or bool(confident.float().mean() >= self.cfg.exit_ratio)

    def get_pruning_mask(self, logits: Tensor) -> Tensor:
        """Pruning (LightGlue): (n,) True for the keypoints to keep; a keypoint goes when it is
        confident and its matchability is below ``prune_matchability``."""
        confident = logits[:, 0].sigmoid() > self.cfg.exit_confidence
        unmatchable = logits[:, 1].sigmoid() < self.cfg.prune_matchability
        return ~(confident & unmatchable)

    def _research_variants(self, k: int, g0: ImageGraph, g1: ImageGraph, initial: tuple[Tensor, Tensor], snapshots: list) -> None:
        """The research notes' variants, applied before layer ``k`` (see MatcherConfig)."""
        kind, n = self.cfg.value_schedule()
        for side, (g, x_init) in enumerate(zip((g0, g1), initial)):
            if kind == "frozen-first":  # values from the encoded input descriptors in the first n layers
                g.value = x_init if k < n else None
            elif n > 1:  # values refreshed every n layers: in between, the features of the last refresh
                if k % n == 0:
                    snapshots[side], g.value = g.x, None
                else:
                    g.value = snapshots[side]
            if self.cfg.graph_update == "per-layer" and k > 0:
                g.edge_sets = [descriptor_knn_per_pair(g.x.detach(), g.batch, self.cfg.graph.get("k", 16))]
                g.complete, g.exclusive = [False], False

    def assign(self, x0: Tensor, x1: Tensor, batch0: Tensor, batch1: Tensor, num_pairs: int, raw=(None, None)) -> tuple[Tensor, Tensor, Tensor]:
        """(log_assignment (B, N+1, M+1), mask0 (B, N), mask1 (B, M)) of the node features of both
        images; ``raw``: the input descriptors for the descriptor prior."""
        d0, mask0 = to_dense_batch(x0, batch0, batch_size=num_pairs)
        d1, mask1 = to_dense_batch(x1, batch1, batch_size=num_pairs)
        r0 = to_dense_batch(raw[0], batch0, batch_size=num_pairs)[0] if raw[0] is not None else None
        r1 = to_dense_batch(raw[1], batch1, batch_size=num_pairs)[0] if raw[1] is not None else None
        return self.head(d0, d1, mask0, mask1, r0, r1), mask0, mask1


def _select_bipartite(edges: Tensor, keep0: Tensor, keep1: Tensor) -> Tensor:
    new0 = torch.cumsum(keep0.long(), 0) - 1
    new1 = torch.cumsum(keep1.long(), 0) - 1
    ok = keep0[edges[0]] & keep1[edges[1]]
    return torch.stack([new0[edges[0, ok]], new1[edges[1, ok]]])


def descriptor_knn_per_pair(x: Tensor, batch: Tensor, k: int) -> Tensor:
    """Descriptor-space kNN edges inside each pair's image (nodes of a pair are contiguous)."""
    counts = torch.bincount(batch).tolist() if batch.numel() else []
    edges, start = [], 0
    for n in counts:
        edges.append(descriptor_knn_edges(x[start : start + n], k) + start)
        start += n
    return torch.cat(edges, 1) if edges else torch.zeros(2, 0, dtype=torch.long, device=x.device)
