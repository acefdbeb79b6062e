"""Each descriptor's two most similar descriptors in the other image, exactly and fast:
``nearest_two`` gives the two largest dot products of every descriptor of each image with those of
the other (and the indices for image 0's), bit for bit those of the whole similarity matrix, without
holding it, and with an int8 first pass that rules out most of it at thousands of keypoints. The
descriptor candidates of the graph network (``candidate_graph.descriptor_candidates``) and the
nearest-neighbour matchers (``nearest.nearest_neighbor_match``) are read off it."""
from __future__ import annotations

import math

import numpy as np
import torch

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


def mutual_rows(best0: np.ndarray, order0: np.ndarray, best1: np.ndarray) -> np.ndarray:
    """The rows i of image 0, ascending, that are mutual nearest neighbours with their nearest j =
    ``order0[i, 0]`` (``nearest_two``'s output as arrays): their similarity is the largest of j's
    (the same sums, bit for bit); where several i are equally similar to one j, the first."""
    nn0 = order0[:, 0]
    i = np.nonzero(best0[:, 0] == best1[nn0, 0])[0]
    return np.sort(i[np.unique(nn0[i], return_index=True)[1]])
