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

import os

import numpy as np
import torch
from torch_geometric.data import Data

from ..data.features import Keypoints
from ..errors import PygmatchError
from ..graphs.base import complete_edges
from ..graphs.registry import graph_from_params
from ..checkpoint import load_model, save_model
from ..nn.candidate_graph import CANDIDATES, CandidateGraphConfig, CandidateGraphNet
from .select import keep_probable

MIN_CANDIDATES = 8  # fewer: nothing to judge them against, all are kept


SIMILARITY_ROWS = 256  # rows of image 0 whose similarities are computed at a time: a (256, m) block stays in the caches
TOP2_BLOCK = 64  # top2's blocks of a similarity row


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
    which are overwritten (fresh buffers at every step cost more than the arithmetic)."""
    while len(first) > 1:
        if len(first) % 2:
            pad = first.new_full((1, first.size(1)), -torch.inf)
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

    The (n, m) similarity matrix is never held whole: ``SIMILARITY_ROWS`` rows at a time, each
    block's row maxima (``top2``) and its column maxima (``fold_top2``), the latter merged over the
    blocks at the end. A block of ``torch.mm`` sums each product in the same order as the whole
    product (the tests check it on real descriptors), except with a handful of keypoints (8 or
    fewer on a side), where the whole product takes a small-matrix kernel whose sums may differ in
    the last bit. Both sets are padded to a multiple of ``TOP2_BLOCK`` with zero descriptors whose
    similarities are set to −inf."""
    n, m = len(d0), len(d1)
    a = torch.from_numpy(np.ascontiguousarray(d0, np.float32))
    b = torch.from_numpy(np.ascontiguousarray(d1, np.float32))
    rows, cols = -(-n // TOP2_BLOCK) * TOP2_BLOCK, -(-m // TOP2_BLOCK) * TOP2_BLOCK
    a = torch.cat([a, a.new_zeros(rows - n, a.size(1))])
    b = torch.cat([b, b.new_zeros(cols - m, b.size(1))])
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
    graph = graph or graph_from_params(cfg.graph)
    i, j = cand[:, 0], cand[:, 1]
    s0, s1 = np.maximum(kp0.scale[i], 1e-3), np.maximum(kp1.scale[j], 1e-3)
    log_scale = np.log(s1 / s0).astype(np.float32)
    angle = np.angle(np.exp(1j * (kp1.ori[j] - kp0.ori[i]))).astype(np.float32)
    x = np.concatenate([desc_feats, np.stack([np.log(s0), log_scale, np.cos(angle), np.sin(angle),
                                              kp0.score[i] / max(float(kp0.score.max()), 1e-12),
                                              kp1.score[j] / max(float(kp1.score.max()), 1e-12)], 1)], 1).astype(np.float32)
    pos0 = torch.from_numpy(kp0.xy[i].astype(np.float32))
    pos1 = torch.from_numpy(kp1.xy[j].astype(np.float32))
    (edge_index0, edge_scale0), (edge_index1, edge_scale1) = intra_edges(pos0, size0, graph), intra_edges(pos1, size1, graph)
    data = Data(x=torch.from_numpy(x), pos0=pos0, pos1=pos1, log_scale=torch.from_numpy(log_scale), angle=torch.from_numpy(angle),
                edge_index0=edge_index0, edge_scale0=edge_scale0, edge_index1=edge_index1, edge_scale1=edge_scale1,
                group_index0=torch.from_numpy(np.unique(i, return_inverse=True)[1].reshape(-1)),
                group_index1=torch.from_numpy(np.unique(j, return_inverse=True)[1].reshape(-1)), num_nodes=len(cand))
    return cand, data


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
        if data is None:
            return cand, None
        return cand, self.model(data).score.numpy()

    def match(self, kp0: Keypoints, kp1: Keypoints, size0: tuple[int, int], size1: tuple[int, int] | None = None) -> tuple[np.ndarray, np.ndarray]:
        """``(matches (K, 2) int64, scores (K,) float32)`` of keypoints on images of (w, h) ``size0``
        and ``size1`` (default: the same)."""
        cand, prob = self.probabilities(kp0, kp1, size0, size1)
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


__all__ = ["CandidateGraphMatching", "candidate_graph", "descriptor_candidates", "nearest_two"]
