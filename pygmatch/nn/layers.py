"""One image's graph inside the network, and the self/cross attention layer that updates it."""
from __future__ import annotations

from dataclasses import dataclass, field, replace

import torch
from torch import Tensor, nn
from torch_geometric.nn import GATConv, GATv2Conv, TransformerConv
from torch_geometric.utils import subgraph

from .attention import DenseBlocks, GraphAttention
from .config import MatcherConfig


@dataclass
class ImageGraph:
    """Node features and edge sets of one side (image 0 or 1) of a batch of pairs."""

    x: Tensor  # (N, dim)
    batch: Tensor  # (N,) pair of each node, sorted
    num_pairs: int
    edge_sets: list[Tensor]  # per scale: (2, E) listed edges (empty for complete sets)
    complete: list[bool]  # per scale: the set is the complete graph (dense path)
    exclusive: bool = False  # complete sets exclude the listed sets' edges (disjoint rings)
    rope: tuple[Tensor, Tensor] | None = None
    value: Tensor | None = None  # attention values from other features (research variants)
    _exclusion: Tensor | None = field(default=None, repr=False)  # cached: the same for every layer

    def blocks(self, other: "ImageGraph | None" = None, exclude: Tensor | None = None) -> DenseBlocks:
        src = other if other is not None else self
        return DenseBlocks(src.batch, self.batch, self.num_pairs, exclude)

    def exclusion(self) -> Tensor | None:
        """Dense (B, n, n) mask of the listed edges, for an exclusive complete set."""
        if not self.exclusive:
            return None
        if self._exclusion is not None:
            return self._exclusion
        counts = torch.bincount(self.batch, minlength=self.num_pairs)
        start = torch.cumsum(counts, 0) - counts
        n = int(counts.max()) if counts.numel() else 0
        mask = torch.zeros(self.num_pairs, n, n, dtype=torch.bool, device=self.x.device)
        for e, complete in zip(self.edge_sets, self.complete):
            if not complete and e.numel():
                b = self.batch[e[1]]
                mask[b, e[1] - start[b], e[0] - start[b]] = True
        self._exclusion = mask
        return mask

    def select(self, keep: Tensor) -> "ImageGraph":
        """The subgraph of the kept nodes (edges relabelled), for point pruning."""
        n = self.x.size(0)
        sets = [subgraph(keep, e, relabel_nodes=True, num_nodes=n)[0] if e.numel() else e for e in self.edge_sets]
        rope = None if self.rope is None else (self.rope[0][keep], self.rope[1][keep])
        return replace(self, x=self.x[keep], batch=self.batch[keep], edge_sets=sets, rope=rope,
                       value=None if self.value is None else self.value[keep], _exclusion=None)


def block_edges(blocks: DenseBlocks) -> Tensor:
    """All (src, dst) pairs inside each pair of the batch, minus excluded ones: what a complete
    set means for convs without a dense path (PyG's GAT/GATv2/Transformer convs)."""
    out = []
    for b in range(blocks.num_pairs):
        src = torch.nonzero(blocks.batch_src == b).flatten()
        dst = torch.nonzero(blocks.batch_dst == b).flatten()
        s, d = src.repeat(dst.numel()), dst.repeat_interleave(src.numel())
        if blocks.exclude is not None and s.numel():
            keep = ~blocks.exclude[b, d - dst[0], s - src[0]]  # a pair's nodes are contiguous
            s, d = s[keep], d[keep]
        out.append(torch.stack([s, d]))
    return torch.cat(out, 1) if out else torch.zeros(2, 0, dtype=torch.long, device=blocks.batch_src.device)


def make_conv(cfg: MatcherConfig) -> nn.Module:
    head_dim = cfg.dim // cfg.heads
    if cfg.conv == "attention":
        return GraphAttention(cfg.dim, cfg.heads)
    if cfg.conv == "gat":
        return GATConv(cfg.dim, head_dim, heads=cfg.heads, add_self_loops=False)
    if cfg.conv == "gatv2":
        return GATv2Conv(cfg.dim, head_dim, heads=cfg.heads, add_self_loops=False)
    return TransformerConv(cfg.dim, head_dim, heads=cfg.heads, root_weight=False)


def attend(conv: nn.Module, src: ImageGraph, dst: ImageGraph, edge_index: Tensor | None, blocks: DenseBlocks | None,
           rope=None, return_attention: bool = False):
    """Run one conv from ``src`` to ``dst`` along listed edges or, for a complete set, ``blocks``."""
    x = (src.x, dst.x)
    if isinstance(conv, GraphAttention):
        return conv(x, edge_index, rope=rope, dense=blocks, return_attention=return_attention, value=src.value)
    if blocks is not None:
        edge_index = block_edges(blocks)
    if return_attention:
        return conv(x, edge_index, return_attention_weights=True)
    return conv(x, edge_index)


def update_mlp(dim: int) -> nn.Sequential:
    """SuperGlue's update x ← x + MLP([x ‖ message]), with LayerNorm + GELU (LightGlue)."""
    return nn.Sequential(nn.Linear(2 * dim, 2 * dim), nn.LayerNorm(2 * dim), nn.GELU(), nn.Linear(2 * dim, dim))


class MatcherLayer(nn.Module):
    """Self attention over each image's edge sets (one branch per scale), then cross attention."""

    def __init__(self, cfg: MatcherConfig):
        super().__init__()
        self.self_convs = nn.ModuleList(make_conv(cfg) for _ in range(cfg.num_scales))
        self.merge = nn.Linear(cfg.num_scales * cfg.dim, cfg.dim) if cfg.num_scales > 1 else nn.Identity()
        self.self_mlp = update_mlp(cfg.dim)
        self.cross_conv = make_conv(cfg)
        self.cross_mlp = update_mlp(cfg.dim)

    def self_attention(self, g: ImageGraph, skip_complete: bool = False, return_attention: bool = False):
        """Returns (new x, per-branch messages, attention per branch or None)."""
        if len(g.edge_sets) != len(self.self_convs):
            raise ValueError(f"the graph has {len(g.edge_sets)} edge sets but the model {len(self.self_convs)} branches")
        exclude = g.exclusion()
        messages, attention = [], []
        for conv, e, complete in zip(self.self_convs, g.edge_sets, g.complete):
            if complete and skip_complete:
                messages.append(torch.zeros_like(g.x))
                attention.append(None)
                continue
            out = attend(conv, g, g, None if complete else e, g.blocks(exclude=exclude) if complete else None, g.rope, return_attention)
            out, att = out if return_attention else (out, None)
            messages.append(out)
            attention.append(att)
        message = self.merge(torch.cat(messages, -1)) if len(messages) > 1 else messages[0]
        return g.x + self.self_mlp(torch.cat([g.x, message], -1)), messages, attention

    def cross_attention(self, g0: ImageGraph, g1: ImageGraph, cross_edges: Tensor | None, return_attention: bool = False):
        """Both directions with the same weights; ``cross_edges`` (i in 0, j in 1) or None = complete."""
        if cross_edges is None:
            m0 = attend(self.cross_conv, g1, g0, None, g0.blocks(g1), return_attention=return_attention)
            m1 = attend(self.cross_conv, g0, g1, None, g1.blocks(g0), return_attention=return_attention)
        else:
            m0 = attend(self.cross_conv, g1, g0, cross_edges.flip(0), None, return_attention=return_attention)
            m1 = attend(self.cross_conv, g0, g1, cross_edges, None, return_attention=return_attention)
        (m0, a0), (m1, a1) = (m0, m1) if return_attention else ((m0, None), (m1, None))
        x0 = g0.x + self.cross_mlp(torch.cat([g0.x, m0], -1))
        x1 = g1.x + self.cross_mlp(torch.cat([g1.x, m1], -1))
        return x0, x1, (a0, a1)
