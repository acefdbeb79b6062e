"""``GraphMatcher``: keypoint encoder → L × (self, cross) attention layers → assignment head."""
from __future__ import annotations

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


def side_inputs(data, suffix: str):
    """Node tensors of one image from a (batched) PairData, positions centred and scaled to [-1, 1]."""
    x = data[f"x_{suffix}"]
    key = f"x_{suffix}_batch"
    batch = data[key] if key in data else torch.zeros(x.size(0), dtype=torch.long, device=x.device)
    size = data[f"image_size_{suffix}"].reshape(-1, 2)[batch]
    pos = (data[f"pos_{suffix}"] - size / 2) / (size.max(-1, keepdim=True).values / 2)
    return x, pos, batch


class GraphMatcher(nn.Module):
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

    def image_graph(self, data, suffix: str, num_pairs: int) -> ImageGraph:
        x, pos, batch = side_inputs(data, suffix)
        feats = self.encoder(x, pos, data[f"scale_{suffix}"], data[f"ori_{suffix}"], data[f"score_{suffix}"], batch, num_pairs)
        if f"edge_index_{suffix}" in data:
            edges, scale_of = data[f"edge_index_{suffix}"], data[f"edge_scale_{suffix}"]
            complete = data[f"scale_complete_{suffix}"].reshape(num_pairs, -1)[0].tolist() if num_pairs else [True]
            exclusive = bool(data[f"scale_exclusive_{suffix}"].reshape(-1)[0]) if f"scale_exclusive_{suffix}" in data and num_pairs else False
            sets = [edges[:, scale_of == s] for s in range(len(complete))]
        else:  # no graph transform: SuperGlue's complete graph
            sets, complete, exclusive = [torch.zeros(2, 0, dtype=torch.long, device=x.device)], [True], False
        rope = self.rope(pos) if self.rope is not None else None
        return ImageGraph(feats, batch, num_pairs, sets, complete, exclusive, rope)

    def forward(self, data, return_attention: bool = False) -> dict:
        num_pairs = int(data.num_graphs) if hasattr(data, "num_graphs") and "x_s_batch" in data else 1
        g0, g1 = self.image_graph(data, "s", num_pairs), self.image_graph(data, "t", num_pairs)
        cross = None if bool(data.cross_complete.reshape(-1)[0]) else data.edge_index_cross
        adaptive = not self.training and (self.cfg.early_exit or self.cfg.pruning)
        n0, n1 = g0.x.size(0), g1.x.size(0)
        batch0, batch1 = g0.batch, g1.batch
        keep0 = torch.arange(n0, device=g0.x.device)  # original index of each node still in play
        keep1 = torch.arange(n1, device=g1.x.device)
        out0, out1 = g0.x.clone(), g1.x.clone()
        layer_feats, point_logits, branches, attention = [], [], [], []
        stop = self.cfg.layers
        initial, snapshots = (g0.x, g1.x), [None, None]
        for k, layer in enumerate(self.layers):
            self._research_variants(k, g0, g1, initial, snapshots)
            skip = k < self.cfg.dense_warmup_layers
            x0, msg0, att0 = layer.self_attention(g0, skip_complete=skip, return_attention=return_attention)
            x1, msg1, att1 = layer.self_attention(g1, skip_complete=skip, return_attention=return_attention)
            branches.append((msg0, msg1))
            g0.x, g1.x = x0, x1
            x0, x1, cross_att = layer.cross_attention(g0, g1, cross, return_attention)
            g0.x, g1.x = x0, x1
            if return_attention:
                attention.append({"self": (att0, att1), "cross": cross_att})
            if k == self.cfg.layers - 1:
                break
            if self.training and self.cfg.deep_supervision:
                layer_feats.append((x0, x1))
                point_logits.append((self.point_heads[k](x0.detach()), self.point_heads[k](x1.detach())))
            if adaptive:
                l0, l1 = self.point_heads[k](x0), self.point_heads[k](x1)
                conf0, conf1 = l0[:, 0].sigmoid(), l1[:, 0].sigmoid()
                if self.cfg.early_exit:
                    confident = torch.cat([conf0, conf1]) > self.cfg.exit_confidence
                    if confident.numel() == 0 or confident.float().mean() >= self.cfg.exit_ratio:
                        stop = k + 1
                        break
                if self.cfg.pruning:
                    out0[keep0], out1[keep1] = x0, x1
                    drop0 = (conf0 > self.cfg.exit_confidence) & (l0[:, 1].sigmoid() < self.cfg.prune_matchability)
                    drop1 = (conf1 > self.cfg.exit_confidence) & (l1[:, 1].sigmoid() < self.cfg.prune_matchability)
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
        raw = (data.x_s, data.x_t) if self.cfg.descriptor_prior else (None, None)
        result = self.assign(out0, out1, batch0, batch1, num_pairs, raw=raw)
        if not bool(active0.all() and active1.all()):  # pruned keypoints are unmatched
            a0, _ = to_dense_batch(active0, batch0, batch_size=num_pairs)
            a1, _ = to_dense_batch(active1, batch1, batch_size=num_pairs)
            result["matches0"], result["matches1"], result["scores0"] = extract_matches(
                result["log_assignment"], result["mask0"] & a0, result["mask1"] & a1, self.cfg.match_threshold)
        result.update(stop_layer=stop, pruned=(n0 - keep0.numel(), n1 - keep1.numel()), branches=branches,
                      point_logits=point_logits, batch0=batch0, batch1=batch1)
        if layer_feats:
            result["layer_log_assignments"] = [self.assign(a, b, batch0, batch1, num_pairs, matches=False, raw=raw)["log_assignment"]
                                               for a, b in layer_feats]
        if return_attention:
            result["attention"] = attention
        return result

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

    def assign(self, x0: Tensor, x1: Tensor, batch0: Tensor, batch1: Tensor, num_pairs: int, matches: bool = True, raw=(None, None)) -> dict:
        d0, mask0 = to_dense_batch(x0, batch0, batch_size=num_pairs)
        d1, mask1 = to_dense_batch(x1, batch1, batch_size=num_pairs)
        r0 = to_dense_batch(raw[0], batch0, batch_size=num_pairs)[0] if raw[0] is not None else None
        r1 = to_dense_batch(raw[1], batch1, batch_size=num_pairs)[0] if raw[1] is not None else None
        log_assignment = self.head(d0, d1, mask0, mask1, r0, r1)
        out = {"log_assignment": log_assignment, "mask0": mask0, "mask1": mask1}
        if matches:
            out["matches0"], out["matches1"], out["scores0"] = extract_matches(log_assignment, mask0, mask1, self.cfg.match_threshold)
        return out


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
