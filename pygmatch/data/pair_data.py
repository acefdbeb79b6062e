"""PyG data structures: one image's keypoints as ``Data``, a pair of images as ``PairData``.

Units (per image):
- ``pos``: pixel coordinates (x, y), OpenCV convention (top-left pixel centre at (0, 0)).
- ``pos_norm``: ``pos / max(width, height)``, so the longer side spans [0, 1) and distances are
  isotropic; radii such as ``RadiusGraph(r=0.05)`` are in these units (0.05 = 32 px at 640×480).
- ``scale``: keypoint diameter in pixels; ``ori``: radians; ``score``: detector response.
- ``image_size``: (1, 2) tensor ``[[width, height]]``.

Every graph transform writes ``edge_index`` (2, E; row 0 = message source, row 1 = target),
``edge_scale`` (E,; which edge set of a multi-scale graph an edge belongs to, 0 otherwise) and
``scale_complete`` (1, S; True where an edge set is the complete graph, which is *marked*
instead of materialised so the model can take its dense attention path).
"""
from __future__ import annotations

import numpy as np
import torch
from torch_geometric.data import Data

from .features import Keypoints
from .ground_truth import ground_truth_matches

NODE_KEYS = ("x", "pos", "pos_norm", "scale", "ori", "score")
GRAPH_KEYS = ("edge_index", "edge_scale", "scale_complete", "scale_exclusive")


def keypoints_to_data(kp: Keypoints, image_size: tuple[int, int]) -> Data:
    """One image's keypoints as a PyG ``Data`` (no edges yet: a graph transform adds them)."""
    pos = torch.from_numpy(np.ascontiguousarray(kp.xy, np.float32))
    w, h = image_size
    return Data(
        x=torch.from_numpy(np.ascontiguousarray(kp.descriptors, np.float32)),
        pos=pos,
        pos_norm=pos / float(max(w, h)),
        scale=torch.from_numpy(np.ascontiguousarray(kp.scale, np.float32)),
        ori=torch.from_numpy(np.ascontiguousarray(kp.ori, np.float32)),
        score=torch.from_numpy(np.ascontiguousarray(kp.score, np.float32)),
        image_size=torch.tensor([[w, h]], dtype=torch.float32),
        num_nodes=len(kp),
    )


class PairData(Data):
    """Two keypoint graphs (suffix ``_0`` for image 0, ``_1`` for image 1) in one ``Data``.

    ``__inc__`` offsets each index by the node count of its own image, so
    ``DataLoader(pairs, batch_size=B, follow_batch=["x_0", "x_1"])`` batches pairs with different
    keypoint counts without padding; ``x_0_batch``/``x_1_batch`` tell which pair a node is in.

    Cross edges: ``edge_index_cross`` (2, E) holds (i in image 0, j in image 1) pairs and
    ``cross_complete`` (1, 1) marks the complete bipartite graph instead of listing n·m pairs.
    Ground truth: ``gt_matches`` (2, K) pairs (i, j); ``gt_unmatched_0``/``_1`` flag keypoints
    that belong in the dustbin; keypoints in neither are ignored by the loss.
    """

    def __inc__(self, key, value, *args, **kwargs):
        if key in ("edge_index_cross", "gt_matches"):
            return torch.tensor([[self.x_0.size(0)], [self.x_1.size(0)]])
        if key == "edge_index_0":
            return self.x_0.size(0)
        if key == "edge_index_1":
            return self.x_1.size(0)
        if key in ("edge_scale_0", "edge_scale_1"):
            return 0
        return super().__inc__(key, value, *args, **kwargs)

    def __cat_dim__(self, key, value, *args, **kwargs):
        if key in ("edge_index_cross", "gt_matches"):
            return 1
        return super().__cat_dim__(key, value, *args, **kwargs)

    def side(self, image: str) -> Data:
        """One image's graph (``"0"`` or ``"1"``) as a plain ``Data`` without suffixes."""
        out = Data(num_nodes=self[f"x_{image}"].size(0))
        for key in NODE_KEYS + GRAPH_KEYS + ("image_size",):
            if f"{key}_{image}" in self:
                out[key] = self[f"{key}_{image}"]
        return out

    def set_side(self, image: str, data: Data) -> "PairData":
        """Store one image's graph (``"0"`` or ``"1"``) as this pair's ``*_{image}`` attributes."""
        for key in NODE_KEYS + GRAPH_KEYS + ("image_size",):
            if key in data:
                self[f"{key}_{image}"] = data[key]
        return self

    @classmethod
    def from_graphs(cls, g0: Data, g1: Data) -> "PairData":
        pair = cls()
        pair.set_side("0", g0).set_side("1", g1)
        pair.edge_index_cross = torch.zeros(2, 0, dtype=torch.long)
        pair.cross_complete = torch.tensor([[True]])
        return pair


def attach_ground_truth(pair: PairData, H_0to1: np.ndarray, match_px: float = 3.0, unmatched_px: float = 5.0) -> PairData:
    """Add ``gt_matches``, ``gt_unmatched_0/_1`` and ``H_0to1`` from the known homography."""
    m0, m1 = ground_truth_matches(pair.pos_0.numpy(), pair.pos_1.numpy(), H_0to1, match_px, unmatched_px)
    i = np.nonzero(m0 >= 0)[0]
    pair.gt_matches = torch.from_numpy(np.stack([i, m0[i]])).long().reshape(2, -1)
    pair.gt_unmatched_0 = torch.from_numpy(m0 == -1)
    pair.gt_unmatched_1 = torch.from_numpy(m1 == -1)
    pair.H_0to1 = torch.from_numpy(np.asarray(H_0to1, np.float32)).reshape(1, 3, 3)
    return pair


def make_pair_data(kp0: Keypoints, kp1: Keypoints, image_size: tuple[int, int], graph=None, cross=None, H_0to1=None,
                   image_size1: tuple[int, int] | None = None, match_px: float = 3.0, unmatched_px: float = 5.0) -> PairData:
    """Keypoints of two images -> ``PairData`` with intra-image graphs, cross edges and (given H)
    ground truth at ``match_px`` / ``unmatched_px`` (``ground_truth_matches``). ``image_size1``
    defaults to ``image_size``."""
    g0, g1 = keypoints_to_data(kp0, image_size), keypoints_to_data(kp1, image_size1 or image_size)
    pair = PairData.from_graphs(g0, g1)
    if graph is not None:
        pair = graph(pair)
    if cross is not None:
        pair = cross(pair)
    if H_0to1 is not None:
        pair = attach_ground_truth(pair, H_0to1, match_px, unmatched_px)
    return pair
