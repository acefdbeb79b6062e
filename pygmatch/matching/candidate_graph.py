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
from ..data.views import ViewKeypoints, local_affine
from ..errors import PygmatchError
from ..graphs.base import complete_edges
from ..graphs.registry import graph_from_params
from ..checkpoint import load_model, save_model
from ..nn.candidate_graph import CANDIDATES, CandidateGraphConfig, CandidateGraphNet
from .nearest import fginn_nearest
from .select import keep_probable
from .similarity import mutual_rows, nearest_two

MIN_CANDIDATES = 8  # fewer: nothing to judge them against, all are kept


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
        i = mutual_rows(best0, order0, best1)
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
                            graph or graph_from_params(cfg.graph), cfg.resolution)


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
                            np.log(a1.tilts[j]), size0, size1, graph or graph_from_params(cfg.graph), cfg.resolution)


def network_scale(size0: tuple[int, int], size1: tuple[int, int], resolution: int) -> float:
    """The factor from image pixels to the network's (``CandidateGraphConfig.resolution``): the
    larger image's longer side brought down to ``resolution`` px, both images by the same factor so
    that the candidates' displacements and scale changes stay what they are; never enlarged."""
    longest = max(*size0, *size1)
    return min(1.0, resolution / longest) if resolution and longest > 0 else 1.0


def graph_data(cand: np.ndarray, desc_feats: np.ndarray, kp0: Keypoints, kp1: Keypoints, log_scale0: np.ndarray, log_scale: np.ndarray,
               angle: np.ndarray, log_tilt0: np.ndarray, log_tilt1: np.ndarray, size0: tuple[int, int], size1: tuple[int, int],
               graph, resolution: int) -> Data:
    """The network's input Data (``CandidateGraphNet``'s keys) of candidates ``cand`` (K, 2) with their
    descriptor features (K, 4) and geometry (K,) each: ``NODE_FEATURES`` and the intra-image graphs.
    Positions and image-0 scales are in the network's pixels (``network_scale``); ``pos_scale`` (K,)
    holds the factor, for what needs image pixels back (``pos0 / pos_scale``)."""
    i, j = cand[:, 0], cand[:, 1]
    f = network_scale(size0, size1, resolution)
    x = np.concatenate([desc_feats, np.stack([log_scale0 + np.log(f), log_scale, np.cos(angle), np.sin(angle),
                                              kp0.score[i] / max(float(kp0.score.max()), 1e-12),
                                              kp1.score[j] / max(float(kp1.score.max()), 1e-12), log_tilt0, log_tilt1], 1)], 1)
    pos0 = torch.from_numpy((kp0.xy[i] * f).astype(np.float32))
    pos1 = torch.from_numpy((kp1.xy[j] * f).astype(np.float32))
    size0, size1 = (size0[0] * f, size0[1] * f), (size1[0] * f, size1[1] * f)
    (edge_index0, edge_scale0), (edge_index1, edge_scale1) = intra_edges(pos0, size0, graph), intra_edges(pos1, size1, graph)
    return Data(x=torch.from_numpy(x.astype(np.float32)), pos0=pos0, pos1=pos1, log_scale=torch.from_numpy(log_scale.astype(np.float32)),
                angle=torch.from_numpy(angle.astype(np.float32)), edge_index0=edge_index0, edge_scale0=edge_scale0,
                edge_index1=edge_index1, edge_scale1=edge_scale1,
                group_index0=torch.from_numpy(np.unique(i, return_inverse=True)[1].reshape(-1)),
                group_index1=torch.from_numpy(np.unique(j, return_inverse=True)[1].reshape(-1)),
                pos_scale=torch.full((len(cand),), f, dtype=torch.float32), num_nodes=len(cand))


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
