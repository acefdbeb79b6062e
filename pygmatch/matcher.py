"""``Matcher``: the public API. Load weights, give two images, get matches."""
from __future__ import annotations

import os

import numpy as np
import torch

from .checkpoint import load_model
from .data.images import as_gray
from .data.pair_data import make_pair_data
from .features import Keypoints, extract
from .graphs.registry import graph_from_config
from .nn.model import GraphMatcher


class Matcher:
    """Match two images with a trained pygmatch model::

        m = Matcher.load("default")            # shipped weights, or a checkpoint / run folder
        out = m.match("a.jpg", "b.jpg")        # paths or uint8 arrays (gray or BGR)
        out["keypoints0"], out["keypoints1"], out["matches"], out["scores"]

    ``matches`` is a (K, 2) array of keypoint indices, ``scores`` their probabilities. Keypoints
    are extracted inside with the model's features (``cfg.features``, ``cfg.max_keypoints``)
    on the images at their own size; the graphs are those the model was trained with.
    """

    def __init__(self, model: GraphMatcher, device: str | torch.device = "cpu"):
        self.model = model.to(device).eval()
        self.device = torch.device(device)
        self.cfg = model.cfg
        self.graph, self.cross = graph_from_config(self.cfg.graph)

    @classmethod
    def load(cls, name: str | os.PathLike = "default", device: str = "cpu", **overrides) -> "Matcher":
        return cls(load_model(name, **overrides), device)

    def extract(self, image) -> tuple[np.ndarray, Keypoints]:
        gray = as_gray(image)
        return gray, extract(gray, self.cfg.features, self.cfg.max_keypoints)

    def match(self, image0, image1) -> dict:
        im0, kp0 = self.extract(image0)
        im1, kp1 = self.extract(image1)
        return self.match_keypoints(kp0, kp1, (im0.shape[1], im0.shape[0]), (im1.shape[1], im1.shape[0]))

    @torch.no_grad()
    def match_keypoints(self, kp0: Keypoints, kp1: Keypoints, image_size0: tuple[int, int], image_size1: tuple[int, int] | None = None) -> dict:
        """Lower-level call on already extracted keypoints (``pygmatch.features.Keypoints``)."""
        pair = make_pair_data(kp0, kp1, image_size0, self.graph, self.cross, image_size1=image_size1).to(self.device)
        out = self.model(pair)
        m0 = out["matches0"][0].cpu().numpy()
        i = np.nonzero(m0 >= 0)[0]
        return {
            "keypoints0": kp0.xy, "keypoints1": kp1.xy,
            "matches": np.stack([i, m0[i]], 1).astype(np.int64).reshape(-1, 2),
            "scores": out["scores0"][0].cpu().numpy()[i].astype(np.float32),
            "stop_layer": out["stop_layer"], "pruned": out["pruned"],
        }

    def match_keypoints_fn(self):
        """The ``(kp0, kp1, size) -> (matches, scores)`` form that ``pygmatch.evaluation`` runs."""
        def fn(kp0, kp1, size):
            out = self.match_keypoints(kp0, kp1, size)
            return out["matches"], out["scores"]
        return fn
