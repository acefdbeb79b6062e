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
from ..nn.candidate_graph import CandidateGraphConfig, CandidateGraphNet
from .select import keep_probable

MIN_CANDIDATES = 8  # fewer: nothing to judge them against, all are kept


def descriptor_candidates(d0: np.ndarray, d1: np.ndarray, kind: str = "mutual") -> tuple[np.ndarray, np.ndarray]:
    """``(candidates (K, 2) int64, features (K, len(NODE_FEATURES)) float32 without the keypoint
    columns)``: ``mutual`` nearest neighbours, or ``top2``: the union of each keypoint's two nearest
    in the other image, both ways. Returns the distance², the ratio of the two nearest (each side),
    and whether the candidate is a mutual nearest neighbour."""
    n, m = len(d0), len(d1)
    if n < 2 or m < 2:
        return np.zeros((0, 2), np.int64), np.zeros((0, 4), np.float32)
    # torch's top-k: numpy's argpartition of the (n, m) matrix took ~35 ms at 1024 keypoints
    sim = torch.from_numpy(np.ascontiguousarray(d0, np.float32)) @ torch.from_numpy(np.ascontiguousarray(d1, np.float32)).T
    best0, order0 = sim.topk(2, dim=1)  # (n, 2), most similar first
    # (m, 2): along the rows of the transposed copy; the same values and indices as sim.topk(2, dim=0), which walks
    # the columns with a stride and took 155 against 97 ms at 4096 keypoints (one thread, sacre_coeur)
    best1, order1 = sim.T.contiguous().topk(2, dim=1)
    two0 = np.maximum(2.0 - 2.0 * best0.numpy(), 0.0)
    two1 = np.maximum(2.0 - 2.0 * best1.numpy(), 0.0)
    order0, order1 = order0.numpy(), order1.numpy()
    nn0, nn1 = order0[:, 0], order1[:, 0]
    mutual = nn1[nn0] == np.arange(n)
    if kind == "mutual":
        i = np.nonzero(mutual)[0]
        cand = np.stack([i, nn0[i]], 1)
    elif kind == "top2":
        pairs = np.concatenate([np.stack([np.repeat(np.arange(n), 2), order0.reshape(-1)], 1),
                                np.stack([order1.reshape(-1), np.repeat(np.arange(m), 2)], 1)])
        cand = np.unique(pairs, axis=0)
    else:
        raise PygmatchError(f"unknown candidates {kind!r}: mutual or top2")
    i, j = cand[:, 0], cand[:, 1]
    ratio0 = np.sqrt(two0[i, 0] / np.maximum(two0[i, 1], 1e-12))
    ratio1 = np.sqrt(two1[j, 0] / np.maximum(two1[j, 1], 1e-12))
    is_mutual = (nn0[i] == j) & (nn1[j] == i)
    dist2 = np.maximum(2.0 - 2.0 * sim.numpy()[i, j], 0.0)
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


__all__ = ["CandidateGraphMatching", "candidate_graph", "descriptor_candidates"]
