"""``GraphMatching``: the attention graph network (``pygmatch.nn.GraphMatcher``) as a matching stage.

Two keypoint sets → each image's graph and the cross edges (the transforms the model was trained
with) → the network → ``(matches (K, 2) int64, scores (K,) float32)``."""
from __future__ import annotations

import os

import numpy as np
import torch

from ..checkpoint import check_inference_options, load_model
from ..data.features import Keypoints
from ..data.pair_data import PairData, make_pair_data
from ..graphs.registry import cross_from_params, graph_from_params
from ..nn.model import GraphMatcher
from ..threads import DEFAULT_THREADS, check_threads, torch_threads


class GraphMatching:
    """A trained ``GraphMatcher`` as a matching stage::

        stage = GraphMatching.load("graph")            # the shipped weights, or a checkpoint / run folder
        matches, scores = stage.match(kp0, kp1, (w0, h0), (w1, h1))

    Keypoints are in the pixels of images of the given (width, height) sizes; no resizing here
    (``pygmatch.Pipeline`` resizes). ``threads`` (default 1): torch threads while matching, restored
    afterwards; ``None`` keeps torch's own setting (see ``pygmatch.threads``)."""

    def __init__(self, model: GraphMatcher, device: str | torch.device = "cpu", threads: int | None = DEFAULT_THREADS):
        check_inference_options(model.cfg)
        self.threads = check_threads(threads)
        self.model = model.to(device).eval()
        self.device = torch.device(device)
        self.cfg = model.cfg
        self.graph, self.cross = graph_from_params(self.cfg.graph), cross_from_params(self.cfg.cross)

    @classmethod
    def load(cls, name: str | os.PathLike = "default", device: str = "cpu", threads: int | None = DEFAULT_THREADS,
             **overrides) -> "GraphMatching":
        """``name``: ``"default"`` (the shipped weights), a ``.pt`` / ``.ckpt`` file or a run folder;
        ``overrides``: inference options of the model (``match_threshold`` in [0, 1),
        ``early_exit``, ``pruning``, ``max_keypoints``)."""
        threads = check_threads(threads)  # before the (slower) load
        return cls(load_model(name, **overrides), device, threads)

    def prepare(self, kp0: Keypoints, kp1: Keypoints, image_size0: tuple[int, int], image_size1: tuple[int, int] | None = None,
                *, graph=None, cross=None) -> PairData:
        """The network's input: the ``PairData`` with each image's graph and the cross edges built by
        the model's transforms (``graph`` / ``cross``: other transforms instead, e.g. to time a graph
        the model was not trained on), on the stage's device. The one preparation behind ``match``,
        the attention drawings (``python -m eval.attention``) and ``benchmarks/matcher.py``."""
        graph = self.graph if graph is None else graph
        cross = self.cross if cross is None else cross
        return make_pair_data(kp0, kp1, image_size0, graph, cross, image_size1=image_size1).to(self.device)

    @torch.no_grad()
    def match_keypoints(self, kp0: Keypoints, kp1: Keypoints, image_size0: tuple[int, int], image_size1: tuple[int, int] | None = None) -> dict:
        """``match`` with what the adaptive network did: ``{"matches", "scores", "stop_layer", "pruned"}``."""
        with torch_threads(self.threads):  # the graphs too: some backends run torch ops
            out = self.model(self.prepare(kp0, kp1, image_size0, image_size1))
        m0 = out.matches0[0].cpu().numpy()
        i = np.nonzero(m0 >= 0)[0]
        return {"matches": np.stack([i, m0[i]], 1).astype(np.int64).reshape(-1, 2),
                "scores": out.matching_scores0[0].cpu().numpy()[i].astype(np.float32),
                "stop_layer": out.stop_layer, "pruned": out.pruned}

    def match(self, kp0: Keypoints, kp1: Keypoints, size0: tuple[int, int], size1: tuple[int, int] | None = None) -> tuple[np.ndarray, np.ndarray]:
        """``(matches (K, 2) int64, scores (K,) float32)`` of keypoints on images of (w, h) ``size0``
        and ``size1`` (default: the same)."""
        out = self.match_keypoints(kp0, kp1, size0, size1)
        return out["matches"], out["scores"]

    def __repr__(self) -> str:
        return f"{type(self).__name__}(graph={self.graph!r}, cross={self.cross!r}, threads={self.threads})"
