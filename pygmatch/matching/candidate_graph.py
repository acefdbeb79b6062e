"""``CandidateGraphMatching``: the candidate graph network (``pygmatch.nn.candidate_graph``) as a
matching stage.

Two keypoint sets → descriptor candidates (mutual nearest neighbours, or the two nearest both
ways) → their graphs in image 0 and image 1 (a ``pygmatch.graphs`` transform over the candidates'
positions) → the network → ``(matches (K, 2) int64, scores (K,) float32)``: the candidates whose
assignment probability passes ``threshold``, and at least the ``min_keep`` most probable ones (on
hard pairs a short list leaves RANSAC without support) when ``pad_from`` pass on their own (fewer
say that the images do not overlap). The score is the probability that the
candidate is a match (sparse dual-softmax) and a precise one (within 1 px).

Keypoints are in image pixels (those of the extraction: ``pygmatch.Pipeline`` resizes to a
longer side of at most 1024 px; the network was trained at 640×480)."""
from __future__ import annotations

import math
import os

import numpy as np
import torch
from torch_geometric.data import Data

from ..data.features import Keypoints
from ..data.views import ViewKeypoints, local_affine
from ..errors import PygmatchError
from ..graphs.base import complete_edges
from ..graphs.registry import graph_from_params
from ..checkpoint import load_model, save_model
from ..nn.candidate_graph import CANDIDATES, CandidateGraphConfig, CandidateGraphNet
from .nearest import fginn_nearest
from .select import keep_probable

MIN_CANDIDATES = 8  # fewer: nothing to judge them against, all are kept


SIMILARITY_ROWS = 256  # rows of image 0 whose similarities are computed at a time: a (256, m) block stays in the caches
TOP2_BLOCK = 64  # top2's blocks of a similarity row
TILE = 64  # int8_candidates keeps or drops the similarities of a keypoint with TILE consecutive keypoints of the other image together
INT8_MIN_KEYPOINTS = 2048  # fewer on a side: the int8 first pass does not pay, nearest_two computes all similarities in float32
INT8_MAX_RESCORED = 0.4  # nor when it leaves more than this share of the similarities (of image 0's rows and of image 1's, summed)
MM_MIN = 16  # torch.mm of fewer rows or columns takes other kernels, whose sums may differ from the blocks' in the last bit


def top2(sim: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(values (r, 2), indices (r, 2))``: the two largest values of each row of ``sim`` (r, c),
    largest first, as ``sim.topk(2, dim=1)`` gives them (ties aside). With ``c`` a multiple of
    ``TOP2_BLOCK``, each row is cut into blocks and ``topk`` runs only over the two blocks with the
    largest maxima, which hold the row's two largest values: a block's maximum is a vectorised
    ``amax``, several times cheaper than ``topk`` over the whole row."""
    r, c = sim.shape
    if c % TOP2_BLOCK or c < 2 * TOP2_BLOCK:
        return sim.topk(2, dim=1)
    blocks = sim.view(r, c // TOP2_BLOCK, TOP2_BLOCK).amax(2).topk(2, dim=1).indices  # (r, 2)
    cols = (blocks[:, :, None] * TOP2_BLOCK + torch.arange(TOP2_BLOCK)).reshape(r, 2 * TOP2_BLOCK)
    values, k = sim.gather(1, cols).topk(2, dim=1)
    return values, cols.gather(1, k)


def fold_top2(first: torch.Tensor, second: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The largest and second largest values (c,) over the rows of ``first`` and ``second`` (r, c),
    each row a group's largest and second largest: the upper half of the groups is merged into the
    lower half (the second of two groups is the largest of the smaller first and the two seconds)
    until one is left. Elementwise ``maximum``/``minimum``, vectorised along the rows, where
    ``topk(2, dim=0)`` walks each column with a stride; written into ``first`` and ``second``,
    which are overwritten (fresh buffers at every step cost more than the arithmetic). Float or
    integer values."""
    lowest = -torch.inf if first.is_floating_point() else torch.iinfo(first.dtype).min
    while len(first) > 1:
        if len(first) % 2:
            pad = first.new_full((1, first.size(1)), lowest)
            first, second = torch.cat([first, pad]), torch.cat([second, pad])
        h = len(first) // 2
        low = torch.minimum(first[:h], first[h:])
        torch.maximum(second[:h], second[h:], out=second[:h])
        torch.maximum(second[:h], low, out=second[:h])
        torch.maximum(first[:h], first[h:], out=first[:h])
        first, second = first[:h], second[:h]
    return first[0], second[0]


def nearest_two(d0: np.ndarray, d1: np.ndarray) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(best0 (n, 2), order0 (n, 2), best1 (m, 2))``: the two largest dot products of each
    descriptor of ``d0`` with those of ``d1`` and their indices, most similar first, and the two
    largest of each descriptor of ``d1`` with those of ``d0`` (values only). Bit for bit the values
    of ``(d0 @ d1.T).topk(2, dim=1)`` and ``topk(2, dim=0)`` (ties aside, the same indices).

    Every value comes from ``torch.mm``, of ``SIMILARITY_ROWS`` rows of ``d0`` at a time with all
    of ``d1``, or of some keypoints with a tile of the other image (``rescore``): both make each
    sum in the same order as the whole product (the tests check it on real descriptors), except
    with a handful of keypoints (8 or fewer on a side), where the whole product takes a
    small-matrix kernel whose sums may differ in the last bit. Both sets are padded to a multiple
    of ``TOP2_BLOCK`` with zero descriptors whose similarities are set to −inf.

    With ``INT8_MIN_KEYPOINTS`` or more keypoints on both sides, an int8 product, a few times
    cheaper, first rules out, with a proven bound on its error, the tiles of ``TILE`` similarities
    that cannot hold a keypoint's two largest (``int8_candidates``); only the others, about a tenth
    of each side on real pairs, are computed in float32 (``rescore``). A keypoint with many
    candidates has many tiles computed, up to its whole row, and where all keypoints together leave
    too many (``INT8_MAX_RESCORED``) all similarities are computed (``float32_nearest_two``)."""
    n, m = len(d0), len(d1)
    a = torch.from_numpy(np.ascontiguousarray(d0, np.float32))
    b = torch.from_numpy(np.ascontiguousarray(d1, np.float32))
    rows, cols = -(-n // TOP2_BLOCK) * TOP2_BLOCK, -(-m // TOP2_BLOCK) * TOP2_BLOCK
    a = torch.cat([a, a.new_zeros(rows - n, a.size(1))])
    b = torch.cat([b, b.new_zeros(cols - m, b.size(1))])
    if min(n, m) >= INT8_MIN_KEYPOINTS and hasattr(torch, "_int_mm"):  # torch's int8 product (private; CPU since 2.2)
        keep0, keep1 = int8_candidates(a, b, n, m)
        if keep0.float().mean() + keep1.float().mean() <= INT8_MAX_RESCORED:
            best0, order0 = rescore(a, b, keep0, m, image0=True)
            return best0, order0, rescore(a, b, keep1, n, image0=False)[0]
    return float32_nearest_two(a, b, n, m)


def float32_nearest_two(a: torch.Tensor, b: torch.Tensor, n: int, m: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``nearest_two`` of ``a`` and ``b`` (``n`` and ``m`` descriptors, padded) from all their
    similarities: ``SIMILARITY_ROWS`` rows at a time (the (n, m) matrix is never held whole), each
    block's row maxima (``top2``) and its column maxima (``fold_top2``), the latter merged over the
    blocks at the end."""
    rows, cols = len(a), len(b)
    starts = range(0, rows, SIMILARITY_ROWS)
    best0, order0, columns = [], [], torch.empty(2, len(starts), cols)  # each block's column maxima: largest, second
    for k, start in enumerate(starts):
        sim = torch.mm(a[start:start + SIMILARITY_ROWS], b.T)
        sim[:, m:] = -torch.inf
        sim[max(n - start, 0):] = -torch.inf
        values, index = top2(sim)
        best0.append(values)
        order0.append(index)
        h = len(sim) // 2  # even: a multiple of TOP2_BLOCK rows
        second = torch.minimum(sim[:h], sim[h:])
        columns[0, k], columns[1, k] = fold_top2(torch.maximum(sim[:h], sim[h:], out=sim[:h]), second)
    first, second = fold_top2(columns[0], columns[1])
    return torch.cat(best0)[:n], torch.cat(order0)[:n], torch.stack([first, second], 1)[:m]


def int8_candidates(a: torch.Tensor, b: torch.Tensor, n: int, m: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``(keep0 (len(b) // TILE, n), keep1 (len(a) // TILE, m))`` bool, for the ``n`` and ``m``
    descriptors of ``a`` and ``b`` (padded): ``keep0[g, i]`` unless the tile g of image 1,
    ``b[g·TILE:(g+1)·TILE]``, provably holds neither of the two most similar to ``a[i]``; ``keep1[h,
    j]`` the same for the tiles of image 0 and ``b[j]``.

    Each set is put on an int8 grid, x ≈ x̂ = step · (q + offset) (``quantise``), and
    ``torch._int_mm`` gives, exactly in int32 and in blocks of ``SIMILARITY_ROWS`` rows, the
    q_a·q_b to which a term of each row and one of each column (the offsets times the sums of q)
    are added: s = â·b̂ / (step_a · step_b), less a constant. Its error:

        a·b − â·b̂ = a·e_b + b̂·e_a  (e = x − x̂),   x·e ≤ |x⁺| |e⁺| + |x⁻| |e⁻|,   −x·e ≤ |x⁺| |e⁻| + |x⁻| |e⁺|

    (x⁺, x⁻ the positive and negative parts, |·| the Euclidean norm). Over all pairs, a·b lies
    in [â·b̂ − L, â·b̂ + U] with U + L ≤ W = P(a) R(e_b) + P(b̂) R(e_a), where P(x) = max |x⁺| +
    max |x⁻| and R the same of the residuals (maxima over the set); the float32 value f of the
    blocks' ``torch.mm`` is within ρ = γ₁₂₈ max |a| max |b| of a·b (γ₁₂₈ = 128u / (1 − 128u),
    u = 2⁻²⁴, whatever the order of the sums). For keypoint i, let t be the second largest of its
    tiles' maxima of â·b̂: two distinct keypoints have â·b̂ ≥ t, so the second largest f of i is
    at least t − L − ρ, and any keypoint j with f_ij at least that has â·b̂_ij ≥ f_ij − U − ρ ≥
    t − W − 2ρ. A tile whose maximum is below t − W − 2ρ is dropped: it holds neither of i's two
    largest. All of this is in units of step_a · step_b, the width rounded up. The norms are
    computed in float32: a slack covers the rounding of x̂ and of the residuals (√d times their
    largest error per component), and a margin of 1% that of the sums of squares (below 130u,
    relative)."""
    rows, cols = len(a), len(b)
    (qa, offset_a, step_a, a_hat), (qb, offset_b, step_b, b_hat) = quantise(a, n), quantise(b, m)
    u = 2.0 ** -24
    slack = a.size(1) ** 0.5 * 4 * u * 254 * max(step_a, step_b)  # a residual's float32 error: 2u (|x̂| + |e|) ≤ 2u · 1.01 range a component

    def spread(x: torch.Tensor) -> float:  # P(x): max |x⁺| + max |x⁻| over the rows
        return torch.relu(x).norm(dim=1).max().item() + torch.relu(-x).norm(dim=1).max().item() + 2 * slack

    width = spread(a[:n]) * spread(b[:m] - b_hat) + spread(b_hat) * spread(a[:n] - a_hat)
    rho = 128 * u / (1 - 128 * u) * a[:n].norm(dim=1).max().item() * b[:m].norm(dim=1).max().item()
    w = math.ceil((width * 1.01 + 2 * rho) / (step_a * step_b)) + 1
    low = -(1 << 29)  # the padding's s: far below any real one (|s| ≤ 3 · 128 · 127² < 2²³), and the sum of two fits in int32
    row_term = offset_b * qa.sum(1, dtype=torch.int32)
    row_term[n:] = low
    col_term = offset_a * qb.sum(1, dtype=torch.int32)
    col_term[m:] = low
    peak0 = torch.empty(cols // TILE, rows, dtype=torch.int32)  # the maximum of s in each tile of image 1, for each keypoint of image 0
    peak1 = torch.empty(rows // TILE, cols, dtype=torch.int32)  # ... of image 0, of image 1
    for start in range(0, rows, SIMILARITY_ROWS):
        s = torch._int_mm(qa[start:start + SIMILARITY_ROWS], qb.T)
        s += col_term
        s += row_term[start:start + SIMILARITY_ROWS, None]
        peak0[:, start:start + len(s)] = s.view(len(s), cols // TILE, TILE).amax(2).T
        peak1[start // TILE:(start + len(s)) // TILE] = s.view(len(s) // TILE, TILE, cols).amax(1)
    keep = []
    for peak, count in ((peak0[:, :n], n), (peak1[:, :m], m)):
        t = fold_top2(peak.clone(), torch.full_like(peak, torch.iinfo(torch.int32).min))[1]  # the second largest (the lowest with one tile)
        keep.append(peak >= t.long() - w)
    return keep[0], keep[1]


def quantise(x: torch.Tensor, count: int) -> tuple[torch.Tensor, int, float, torch.Tensor]:
    """``(q (len(x), d) int8, offset, step, x̂ (count, d) float32)`` of the first ``count`` rows of
    ``x`` (the others, padding, get q = 0): x̂ = step · (q + offset), on a grid of 255 values that
    spans the values and 0 (``offset`` 127 for descriptors ≥ 0, such as rootSIFT: the whole int8
    range serves)."""
    real = x[:count]
    lo, hi = min(real.min().item(), 0.0), max(real.max().item(), 0.0)
    step = (hi - lo) / 254 or 1.0
    offset = round((hi + lo) / (2 * step))  # within ±127
    q = torch.round(real / step).sub_(offset).clamp_(-127, 127)
    out = torch.zeros(len(x), x.size(1), dtype=torch.int8)
    out[:count] = q.to(torch.int8)
    return out, offset, step, q.add_(offset).mul_(step)


def rescore(a: torch.Tensor, b: torch.Tensor, keep: torch.Tensor, count: int, image0: bool) -> tuple[torch.Tensor, torch.Tensor | None]:
    """``(values (k, 2), indices (k, 2) or None)``: the two largest float32 similarities of each of
    ``k`` keypoints over its kept tiles (``int8_candidates``: ``keep`` (tiles, k)) and, for those of
    image 0 (``image0``), their indices in image 1; ``count`` keypoints in the other image.

    The keypoints that keep a tile are computed together with it: one ``torch.mm`` of their
    descriptors (padded to ``MM_MIN``: fewer take another kernel) and the tile's, image 0 always on
    the left, which makes the same sums as the blocks of ``float32_nearest_two``, bit for bit (the
    tests check it on real descriptors). Each keypoint's best tile (the largest maximum) gives its
    two largest values but where the maximum of its other tiles is larger than the second."""
    group, owner = keep.nonzero().unbind(1)  # sorted by tile
    picked = (a if image0 else b).index_select(0, owner)
    sim = torch.empty(len(owner), TILE)
    start = 0
    for g, end in enumerate(torch.bincount(group, minlength=len(keep)).cumsum(0).tolist()):
        if end > start:
            part = picked[start:end]
            if len(part) < MM_MIN:
                part = torch.cat([part, part.new_zeros(MM_MIN - len(part), part.size(1))])
            tile = (b if image0 else a)[g * TILE:(g + 1) * TILE]
            sim[start:end] = (torch.mm(part, tile.T) if image0 else torch.mm(tile, part.T).T)[:end - start]
        start = end
    if count % TILE:  # the last tile's padding
        sim[group == len(keep) - 1, count % TILE:] = -torch.inf
    size = keep.size(1)
    peak = sim.amax(1)
    best = peak.new_full((size,), -torch.inf).scatter_reduce_(0, owner, peak, "amax")
    top = torch.empty(size, dtype=torch.long)
    hit = (peak == best[owner]).nonzero()[:, 0]
    top[owner[hit]] = hit  # a best tile of each keypoint
    own = sim.index_select(0, top)
    first, k1 = own.max(1)
    own[torch.arange(size), k1] = -torch.inf
    second, k2 = own.max(1)
    peak[top] = -torch.inf
    other = peak.new_full((size,), -torch.inf).scatter_reduce_(0, owner, peak, "amax")  # the best of the other tiles
    beyond = other > second
    values = torch.stack([first, torch.where(beyond, other, second)], 1)
    if not image0:
        return values, None
    order = torch.stack([k1, k2], 1) + group[top, None] * TILE
    if beyond.any():
        hit = ((peak == other[owner]) & beyond[owner]).nonzero()[:, 0]
        nxt = torch.empty(size, dtype=torch.long)
        nxt[owner[hit]] = hit
        j = beyond.nonzero()[:, 0]
        order[j, 1] = sim.index_select(0, nxt[j]).argmax(1) + group[nxt[j]] * TILE
    return values, order


def descriptor_candidates(d0: np.ndarray, d1: np.ndarray, kind: str = "mutual") -> tuple[np.ndarray, np.ndarray]:
    """``(candidates (K, 2) int64, features (K, len(NODE_FEATURES)) float32 without the keypoint
    columns)``: ``mutual`` nearest neighbours; ``mutual2``: the pairs where each is among the
    other's two nearest (the mutual ones, and second nearest neighbours that are so both ways); or
    ``top2``: the union of each keypoint's two nearest in the other image, both ways. Returns the
    distance², the ratio of the two nearest (each side), and whether the candidate is a mutual
    nearest neighbour. The descriptors are of unit norm: distance² = 2 − 2 · similarity
    (``nearest_two``).

    Keypoint i of image 0 and its nearest j are mutual when their similarity is the largest of
    j's (on a tie between several i, the first); ``mutual2`` and ``top2`` also need each j's two
    nearest, from ``nearest_two`` with the images swapped (the same similarities, bit for bit)."""
    n, m = len(d0), len(d1)
    if kind not in CANDIDATES:
        raise PygmatchError(f"unknown candidates {kind!r}: choose from {', '.join(CANDIDATES)}")
    if n < 2 or m < 2:
        return np.zeros((0, 2), np.int64), np.zeros((0, 4), np.float32)
    best0, order0, best1 = (t.numpy() for t in nearest_two(d0, d1))
    two0 = np.maximum(2.0 - 2.0 * best0, 0.0)
    two1 = np.maximum(2.0 - 2.0 * best1, 0.0)
    nn0 = order0[:, 0]
    if kind == "mutual":
        i = np.nonzero(best0[:, 0] == best1[nn0, 0])[0]
        i = i[np.sort(np.unique(nn0[i], return_index=True)[1])]
        cand, dist2, is_mutual = np.stack([i, nn0[i]], 1), two0[i, 0], np.ones(len(i), bool)
    elif kind == "mutual2":
        order1 = nearest_two(d1, d0)[1].numpy()
        nn1 = order1[:, 0]
        i, rank = np.nonzero((order1[order0, 0] == np.arange(n)[:, None]) | (order1[order0, 1] == np.arange(n)[:, None]))
        cand, dist2 = np.stack([i, order0[i, rank]], 1), two0[i, rank]
        is_mutual = (nn0[cand[:, 0]] == cand[:, 1]) & (nn1[cand[:, 1]] == cand[:, 0])
    else:
        order1 = nearest_two(d1, d0)[1].numpy()
        nn1 = order1[:, 0]
        # every candidate with its distance² (the same similarity from either side); unique keeps one of each
        pairs = np.concatenate([np.stack([np.repeat(np.arange(n), 2), order0.reshape(-1)], 1),
                                np.stack([order1.reshape(-1), np.repeat(np.arange(m), 2)], 1)])
        cand, first = np.unique(pairs, axis=0, return_index=True)
        dist2 = np.concatenate([two0.reshape(-1), two1.reshape(-1)])[first]
        is_mutual = (nn0[cand[:, 0]] == cand[:, 1]) & (nn1[cand[:, 1]] == cand[:, 0])
    i, j = cand[:, 0], cand[:, 1]
    ratio0 = np.sqrt(two0[i, 0] / np.maximum(two0[i, 1], 1e-12))
    ratio1 = np.sqrt(two1[j, 0] / np.maximum(two1[j, 1], 1e-12))
    return cand.astype(np.int64), np.stack([dist2, ratio0, ratio1, is_mutual], 1).astype(np.float32)


def intra_edges(pos: torch.Tensor, size: tuple[int, int], graph) -> tuple[torch.Tensor, torch.Tensor]:
    """``(edges (2, E) source, target; scale (E,))`` of ``graph`` (a ``pygmatch.graphs`` transform)
    over ``pos``: every edge set of the transform, numbered by scale, without self-loops. A complete
    set is written out (with an exclusive transform, less the edges another set holds)."""
    data = graph(Data(pos=pos, pos_norm=pos / float(max(size)), image_size=torch.tensor([size], dtype=torch.float32), num_nodes=pos.size(0)))
    keep = data.edge_index[0] != data.edge_index[1]  # a node's own vote would say its hypothesis fits (partition has loops)
    edges, scale = data.edge_index[:, keep], data.edge_scale[keep]
    for s, complete in enumerate(data.scale_complete[0].tolist()):
        if complete:
            full = complete_edges(pos.size(0), loop=False)
            if bool(data.scale_exclusive):
                n = pos.size(0)
                full = full[:, ~torch.isin(full[0] * n + full[1], edges[0] * n + edges[1])]
            edges, scale = torch.cat([edges, full], 1), torch.cat([scale, torch.full((full.size(1),), s, dtype=torch.long)])
    return edges, scale


def candidate_graph(kp0: Keypoints, kp1: Keypoints, size0: tuple[int, int], size1: tuple[int, int], cfg: CandidateGraphConfig,
                    graph=None) -> tuple[np.ndarray, Data | None]:
    """``(candidates (K, 2) int64, the network's input Data)``; the Data is None with fewer than
    ``MIN_CANDIDATES`` candidates. ``graph``: the intra-image transform (default: the config's)."""
    cand, desc_feats = descriptor_candidates(kp0.descriptors, kp1.descriptors, cfg.candidates)
    if len(cand) < MIN_CANDIDATES:
        return cand, None
    i, j = cand[:, 0], cand[:, 1]
    s0, s1 = np.maximum(kp0.scale[i], 1e-3), np.maximum(kp1.scale[j], 1e-3)
    angle = np.angle(np.exp(1j * (kp1.ori[j] - kp0.ori[i])))
    no_tilt = np.zeros(len(cand))
    return cand, graph_data(cand, desc_feats, kp0, kp1, np.log(s0), np.log(s1 / s0), angle, no_tilt, no_tilt, size0, size1,
                            graph or graph_from_params(cfg.graph))


def view_candidates(a0: ViewKeypoints, a1: ViewKeypoints) -> tuple[np.ndarray, np.ndarray]:
    """``descriptor_candidates`` of keypoints found on simulated views: mutual nearest neighbours,
    with the ratios against the first geometrically inconsistent neighbour (``fginn_nearest``)
    instead of the second nearest, since one place of an image seen on several views has
    near-equal descriptors. No ratio test: the network judges them all."""
    k0, k1 = a0.keypoints, a1.keypoints
    if len(k0) < 2 or len(k1) < 2:
        return np.zeros((0, 2), np.int64), np.zeros((0, 4), np.float32)
    nn0, d0, second0 = fginn_nearest(k0.descriptors, k1.descriptors, k1.xy)
    nn1, _, second1 = fginn_nearest(k1.descriptors, k0.descriptors, k0.xy)
    i = np.nonzero(nn1[nn0] == np.arange(len(nn0)))[0]
    j = nn0[i]
    ratio0 = np.sqrt(d0[i] / np.maximum(second0[i], 1e-12))
    ratio1 = np.sqrt(d0[i] / np.maximum(second1[j], 1e-12))  # the candidate's distance seen from image 1: the same pair
    return np.stack([i, j], 1).astype(np.int64), np.stack([d0[i], ratio0, ratio1, np.ones(len(i))], 1).astype(np.float32)


def view_candidate_graph(a0: ViewKeypoints, a1: ViewKeypoints, size0: tuple[int, int], size1: tuple[int, int],
                         cfg: CandidateGraphConfig, graph=None) -> tuple[np.ndarray, Data | None]:
    """``candidate_graph`` of keypoints found on simulated views (``pygmatch.data.views``):
    ``view_candidates``, and each candidate's scale change and rotation those of the local linear
    map its two views and keypoints imply (``local_affine``), its image-0 scale in the image's
    pixels, and the log tilt of each keypoint's view; what plain SIFT candidates have with tilt 1."""
    cand, desc_feats = view_candidates(a0, a1)
    if len(cand) < MIN_CANDIDATES:
        return cand, None
    i, j = cand[:, 0], cand[:, 1]
    M = local_affine(a0, a1, cand)
    log_scale = 0.5 * np.log(np.maximum(np.abs(np.linalg.det(M)), 1e-12))
    angle = np.arctan2(M[:, 1, 0] - M[:, 0, 1], M[:, 0, 0] + M[:, 1, 1])  # the rotation nearest to M
    view_area = np.abs(np.linalg.det(a0.affine[a0.view[i]][:, :, :2]))  # a view shrinks the image's areas by this
    log_scale0 = np.log(np.maximum(a0.keypoints.scale[i], 1e-3)) - 0.5 * np.log(view_area)
    return cand, graph_data(cand, desc_feats, a0.keypoints, a1.keypoints, log_scale0, log_scale, angle, np.log(a0.tilts[i]),
                            np.log(a1.tilts[j]), size0, size1, graph or graph_from_params(cfg.graph))


def graph_data(cand: np.ndarray, desc_feats: np.ndarray, kp0: Keypoints, kp1: Keypoints, log_scale0: np.ndarray, log_scale: np.ndarray,
               angle: np.ndarray, log_tilt0: np.ndarray, log_tilt1: np.ndarray, size0: tuple[int, int], size1: tuple[int, int],
               graph) -> Data:
    """The network's input Data (``CandidateGraphNet``'s keys) of candidates ``cand`` (K, 2) with their
    descriptor features (K, 4) and geometry (K,) each: ``NODE_FEATURES`` and the intra-image graphs."""
    i, j = cand[:, 0], cand[:, 1]
    x = np.concatenate([desc_feats, np.stack([log_scale0, log_scale, np.cos(angle), np.sin(angle),
                                              kp0.score[i] / max(float(kp0.score.max()), 1e-12),
                                              kp1.score[j] / max(float(kp1.score.max()), 1e-12), log_tilt0, log_tilt1], 1)], 1)
    pos0 = torch.from_numpy(kp0.xy[i].astype(np.float32))
    pos1 = torch.from_numpy(kp1.xy[j].astype(np.float32))
    (edge_index0, edge_scale0), (edge_index1, edge_scale1) = intra_edges(pos0, size0, graph), intra_edges(pos1, size1, graph)
    return Data(x=torch.from_numpy(x.astype(np.float32)), pos0=pos0, pos1=pos1, log_scale=torch.from_numpy(log_scale.astype(np.float32)),
                angle=torch.from_numpy(angle.astype(np.float32)), edge_index0=edge_index0, edge_scale0=edge_scale0,
                edge_index1=edge_index1, edge_scale1=edge_scale1,
                group_index0=torch.from_numpy(np.unique(i, return_inverse=True)[1].reshape(-1)),
                group_index1=torch.from_numpy(np.unique(j, return_inverse=True)[1].reshape(-1)), num_nodes=len(cand))


class CandidateGraphMatching:
    """A trained ``CandidateGraphNet`` as a matching stage::

        stage = CandidateGraphMatching.load("default")      # the shipped weights, a model file or a train.run folder
        matches, scores = stage.match(kp0, kp1, (w0, h0), (w1, h1))
    """

    def __init__(self, model: CandidateGraphNet):
        self.model = model.eval()
        self.cfg = model.cfg
        self.graph = graph_from_params(self.cfg.graph)

    @torch.no_grad()
    def probabilities(self, kp0: Keypoints, kp1: Keypoints, size0, size1=None) -> tuple[np.ndarray, np.ndarray | None]:
        """``(candidates (K, 2), scores (K,) or None with too few candidates)``: the probability that
        the candidate is a match and within 1 px (``CandidateGraphOutput.score``)."""
        cand, data = candidate_graph(kp0, kp1, size0, size1 or size0, self.cfg, self.graph)
        return cand, None if data is None else self.model(data).score.numpy()

    def match(self, kp0: Keypoints, kp1: Keypoints, size0: tuple[int, int], size1: tuple[int, int] | None = None) -> tuple[np.ndarray, np.ndarray]:
        """``(matches (K, 2) int64, scores (K,) float32)`` of keypoints on images of (w, h) ``size0``
        and ``size1`` (default: the same)."""
        return self.keep(*self.probabilities(kp0, kp1, size0, size1))

    @torch.no_grad()
    def match_views(self, a0: ViewKeypoints, a1: ViewKeypoints, size0: tuple[int, int], size1: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
        """``match`` of keypoints found on simulated views (``view_candidate_graph``)."""
        cand, data = view_candidate_graph(a0, a1, size0, size1, self.cfg, self.graph)
        return self.keep(cand, None if data is None else self.model(data).score.numpy())

    def keep(self, cand: np.ndarray, prob: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        """The candidates the inference options keep (``keep_probable``); all, scored 1, when too
        few for the network to judge (``prob`` None)."""
        if prob is None:
            return cand, np.ones(len(cand), np.float32)
        keep = keep_probable(prob, self.cfg.threshold, self.cfg.min_keep, self.cfg.pad_from)
        return cand[keep], prob[keep].astype(np.float32)

    def save(self, path: str | os.PathLike, **extra) -> None:
        save_model(self.model, path, **extra)

    @classmethod
    def load(cls, path: str | os.PathLike = "default", **overrides) -> "CandidateGraphMatching":
        """``"default"`` (the shipped weights), a model file (``train.export``), a ``train.run``
        checkpoint or run folder; ``overrides``: inference options (``threshold``, ``min_keep``,
        ``pad_from``)."""
        return cls(load_model(path, **overrides))

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.cfg})"


__all__ = ["CandidateGraphMatching", "candidate_graph", "descriptor_candidates", "nearest_two", "view_candidate_graph",
           "view_candidates"]
