"""Multi-head dot-product attention as a PyG ``MessagePassing`` conv, with a dense fast path.

One layer, two executions:
- sparse: messages along ``edge_index``; the softmax runs over each node's incoming edges
  (``torch_geometric.utils.softmax``), so any graph (kNN, radius, MST, ...) works;
- dense: for complete edge sets (SuperGlue's graph, complete cross edges) the same weights are
  applied with ``scaled_dot_product_attention`` on padded per-pair blocks, never listing n·m edges.
Both give the same result (tests/test_nn.py), including per-edge attention weights.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch_geometric.nn import MessagePassing
from torch_geometric.utils import softmax, to_dense_batch


class FourierPositions(nn.Module):
    """LightGlue's learnable Fourier features of keypoint positions, used as rotary embeddings:
    rotating queries and keys by them makes q·k depend on the *relative* position of the two
    endpoints, in the sparse and the dense path alike."""

    def __init__(self, head_dim: int, in_dim: int = 2, gamma: float = 1.0):
        super().__init__()
        self.proj = nn.Linear(in_dim, head_dim // 2, bias=False)
        nn.init.normal_(self.proj.weight, std=gamma**-2)

    def forward(self, pos: Tensor) -> tuple[Tensor, Tensor]:
        angles = self.proj(pos).repeat_interleave(2, dim=-1).unsqueeze(-2)  # (N, 1, head_dim)
        return angles.cos(), angles.sin()


def rotate_half(x: Tensor) -> Tensor:
    x = x.unflatten(-1, (-1, 2))
    return torch.stack((-x[..., 1], x[..., 0]), dim=-1).flatten(-2)


def apply_rotary(x: Tensor, rope: tuple[Tensor, Tensor] | None) -> Tensor:
    return x if rope is None else x * rope[0] + rotate_half(x) * rope[1]


@dataclass
class DenseBlocks:
    """How the nodes of a batch split into pairs, for the dense path.

    ``batch_src``/``batch_dst`` map nodes to pairs (sorted); ``exclude`` (B, n_dst, n_src), optional,
    masks out edges of a complete set (disjoint multi-scale rings).
    """

    batch_src: Tensor
    batch_dst: Tensor
    num_pairs: int
    exclude: Tensor | None = None


class GraphAttention(MessagePassing):
    """x_i ← W_o · Σ_j softmax_j(q_i·k_j / √d) v_j over the incoming edges j → i, per head.

    Bipartite when ``x = (x_src, x_dst)``. ``edge_dim`` adds projected edge features to the keys
    (sparse path only). ``return_attention=True`` also returns ``(edge_index, alpha)`` with
    ``alpha`` of shape (E, heads); for a dense call the complete edge list is built for that.
    """

    def __init__(self, dim: int, heads: int = 4, edge_dim: int | None = None):
        super().__init__(aggr="add", node_dim=0)
        if dim % heads:
            raise ValueError(f"dim {dim} must be divisible by heads {heads}")
        self.dim, self.heads, self.head_dim = dim, heads, dim // heads
        self.q, self.k, self.v = nn.Linear(dim, dim), nn.Linear(dim, dim), nn.Linear(dim, dim)
        self.out = nn.Linear(dim, dim)
        self.edge = nn.Linear(edge_dim, dim, bias=False) if edge_dim else None
        self._alpha = None

    def forward(self, x, edge_index: Tensor | None = None, rope=None, edge_attr: Tensor | None = None,
                dense: DenseBlocks | None = None, return_attention: bool = False, value: Tensor | None = None):
        x_src, x_dst = (x, x) if isinstance(x, Tensor) else x
        rope_src, rope_dst = (rope, rope) if rope is None or isinstance(rope[0], Tensor) else rope
        h, d = self.heads, self.head_dim
        q = apply_rotary(self.q(x_dst).view(-1, h, d), rope_dst)
        k = apply_rotary(self.k(x_src).view(-1, h, d), rope_src)
        # ``value`` lets a caller keep attention values from other features than the keys
        # (the research notes' "frozen values" variant); by default they come from x_src.
        v = self.v(x_src if value is None else value).view(-1, h, d)
        if dense is not None:
            out, attention = self._dense(q, k, v, dense, return_attention)
        else:
            if edge_attr is not None and self.edge is None:
                raise ValueError("edge_attr given, but the layer was built without edge_dim")
            out = self.propagate(edge_index, q=q, k=k, v=v, edge_attr=edge_attr, size=(x_src.size(0), x_dst.size(0)))
            attention = (edge_index, self._alpha) if return_attention else None
            self._alpha = None
        out = self.out(out.reshape(-1, self.dim))
        return (out, attention) if return_attention else out

    def message(self, q_i: Tensor, k_j: Tensor, v_j: Tensor, edge_attr: Tensor | None, index: Tensor, ptr, size_i) -> Tensor:
        if edge_attr is not None:
            k_j = k_j + self.edge(edge_attr).view(-1, self.heads, self.head_dim)
        alpha = softmax((q_i * k_j).sum(-1) / math.sqrt(self.head_dim), index, ptr, size_i)
        self._alpha = alpha
        return v_j * alpha.unsqueeze(-1)

    def _dense(self, q, k, v, blocks: DenseBlocks, return_attention: bool):
        if blocks.num_pairs == 1:  # one pair: no padding to build (the common inference case)
            qd, kd, vd = q[None], k[None], v[None]
            mask_dst = torch.ones(1, q.size(0), dtype=torch.bool, device=q.device)
            mask_src = torch.ones(1, k.size(0), dtype=torch.bool, device=q.device)
        else:
            qd, mask_dst = to_dense_batch(q, blocks.batch_dst, batch_size=blocks.num_pairs)  # (B, n, h, d)
            kd, mask_src = to_dense_batch(k, blocks.batch_src, batch_size=blocks.num_pairs)
            vd, _ = to_dense_batch(v, blocks.batch_src, batch_size=blocks.num_pairs)
        qd, kd, vd = qd.transpose(1, 2), kd.transpose(1, 2), vd.transpose(1, 2)  # (B, h, n, d)
        if blocks.exclude is None and kd.size(2) > 0 and bool(mask_src.all()):
            allowed = empty_row = None  # no padding, nothing excluded: SDPA's unmasked kernel
        else:
            allowed = mask_src[:, None, :].expand(-1, qd.size(2), -1)  # (B, n, m)
            if blocks.exclude is not None:
                allowed = allowed & ~blocks.exclude
            # A row with nothing to attend to (empty image, fully excluded) must give 0, not NaN.
            empty_row = ~allowed.any(-1, keepdim=True)
            allowed = allowed | empty_row
        mask = None if allowed is None else allowed[:, None]
        if return_attention:
            logits = qd @ kd.transpose(-1, -2) / math.sqrt(self.head_dim)
            att = (logits if mask is None else logits.masked_fill(~mask, float("-inf"))).softmax(-1)
            out = att @ vd
        else:
            out = F.scaled_dot_product_attention(qd, kd, vd, attn_mask=mask)
        if empty_row is not None:
            out = out.masked_fill(empty_row[:, None], 0.0)
        out = out.transpose(1, 2)
        out = out[0] if blocks.num_pairs == 1 else out[mask_dst]  # (N_dst, h, d)
        if not return_attention:
            return out, None
        # Per-edge weights in the sparse layout: edges j -> i for every allowed (i, j) of a pair.
        if allowed is None:
            allowed, empty_row = mask_src[:, None, :].expand(-1, qd.size(2), -1), torch.zeros_like(mask_dst[:, :, None])
        b, i, j = torch.nonzero(allowed & ~empty_row & mask_dst[:, :, None], as_tuple=True)
        start_dst = torch.cumsum(mask_dst.sum(1), 0) - mask_dst.sum(1)
        start_src = torch.cumsum(mask_src.sum(1), 0) - mask_src.sum(1)
        edge_index = torch.stack([start_src[b] + j, start_dst[b] + i])
        return out, (edge_index, att[b, :, i, j])
