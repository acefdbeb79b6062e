"""``Matcher``: the public API. Load weights, give two images, get matches."""
from __future__ import annotations

import contextlib
import numbers
import os

import numpy as np
import torch

from .checkpoint import check_inference_options, load_model
from .data.images import MIN_SIDE, as_gray
from .data.pair_data import PairData, make_pair_data
from .data.sequences import downscale
from .errors import PygmatchError
from .data.features import Keypoints, extract
from .graphs.registry import cross_from_params, graph_from_params
from .nn.model import GraphMatcher

# Longer image side (px) keypoints are extracted at. The models train on 640×480 images; OpenCV's
# SIFT on an 8000×6000 photograph took 65 s and 11.5 GB, at 1024 px it takes ~0.2 s.
DEFAULT_RESIZE = 1024

# torch threads for the matching. One, because on a CPU shared with another busy process torch's
# default (one thread per core) collapses: its OpenMP threads spin-wait for each other at every
# parallel region, and the one that shares a core with the other process stalls all the others
# (the shipped model: 112 ms per pair with 1 thread, 3,955 ms with the default 2 threads while one
# other job ran on this 2-core machine). Ask for more on a machine of your own;
# ``OMP_WAIT_POLICY=PASSIVE`` (set before torch is imported) is the other lever. See
# ``benchmarks/threads.py``.
DEFAULT_THREADS = 1


@contextlib.contextmanager
def torch_threads(n: int | None):
    """Run the block with ``torch.set_num_threads(n)``, then restore the previous count
    (``None``: leave torch's setting alone). Process-wide while it lasts, as torch's setting is."""
    before = torch.get_num_threads()
    if n is None or n == before:
        yield
        return
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _check_threads(threads) -> int | None:
    if threads is None or (isinstance(threads, numbers.Integral) and not isinstance(threads, bool) and threads >= 1):
        return None if threads is None else int(threads)
    raise PygmatchError(f"threads must be an integer >= 1 (or None to keep torch's setting), got {threads!r}")


def _check_resize(resize) -> int | None:
    if resize is None or (isinstance(resize, numbers.Integral) and not isinstance(resize, bool) and resize >= MIN_SIDE):
        return None if resize is None else int(resize)
    raise PygmatchError(f"resize must be a number of pixels >= {MIN_SIDE} (the longer image side), or None for the original size, got {resize!r}")


def points_to_original(xy: np.ndarray, S: np.ndarray) -> np.ndarray:
    """Positions (K, 2) on an image resized by ``S`` in the original image's pixels (float64)."""
    return (np.asarray(xy, np.float64) + 0.5) / np.array([float(S[0, 0]), float(S[1, 1])]) - 0.5


def with_matched_points(out: dict, small0, small1, kp0: Keypoints, kp1: Keypoints, S0, S1, refine) -> dict:
    """``out`` (the keypoints and ``matches`` of a pair found on images resized by ``S0`` / ``S1``)
    with ``points0`` and ``points1``: the matches' positions in the original pixels, image 1's
    refined to sub-pixel accuracy by ``refine`` (``pygmatch.refinement.refine_matches``)."""
    from .refinement import refine_matches  # noqa: PLC0415

    p0, p1 = refine_matches(refine, small0, small1, kp0.xy, kp1.xy, out["matches"])
    out["points0"], out["points1"] = points_to_original(p0, S0), points_to_original(p1, S1)
    return out


def to_original(kp: Keypoints, S: np.ndarray) -> Keypoints:
    """Keypoints found on an image resized by ``S`` (``pygmatch.data.sequences.downscale``: pixel
    centres move as u = s·(x + 0.5) − 0.5 per axis) in the original image's pixels: positions
    mapped back, sizes divided by the mean scale factor."""
    sx, sy = float(S[0, 0]), float(S[1, 1])
    if sx == sy == 1.0:
        return kp
    xy = points_to_original(kp.xy, S).astype(np.float32)
    scale = (kp.scale / np.sqrt(sx * sy)).astype(np.float32)
    return Keypoints(xy, scale, kp.ori, kp.score, kp.descriptors)


class Matcher:
    """Match two images with a trained pygmatch model::

        m = Matcher.load("default")            # shipped weights, or a checkpoint / run folder
        out = m.match("a.jpg", "b.jpg")        # paths or uint8 arrays (gray or BGR)
        out["keypoints0"], out["keypoints1"], out["matches"], out["scores"]

    ``matches`` is a (K, 2) array of keypoint indices, ``scores`` their probabilities. Keypoints
    are extracted inside with the model's features (``cfg.features``, ``cfg.max_keypoints``); the
    graphs are those the model was trained with.

    ``resize`` (default 1024, as LightGlue's): images whose longer side is larger are downscaled
    to it (OpenCV ``INTER_AREA``, never enlarged) for keypoint extraction and matching, and the
    keypoints are returned in the original image's pixels. ``None`` keeps the original size (SIFT
    on a 48-megapixel photograph takes a minute and ~11 GB).

    ``threads`` (default 1): torch threads while matching, restored afterwards; ``None`` keeps
    torch's own setting. One thread degrades gracefully on a shared CPU (see ``DEFAULT_THREADS``).
    """

    def __init__(self, model: GraphMatcher, device: str | torch.device = "cpu", threads: int | None = DEFAULT_THREADS,
                 resize: int | None = DEFAULT_RESIZE):
        check_inference_options(model.cfg)
        self.threads = _check_threads(threads)
        self.resize = _check_resize(resize)
        self.model = model.to(device).eval()
        self.device = torch.device(device)
        self.cfg = model.cfg
        self.graph, self.cross = graph_from_params(self.cfg.graph), cross_from_params(self.cfg.cross)

    @classmethod
    def load(cls, name: str | os.PathLike = "default", device: str = "cpu", threads: int | None = DEFAULT_THREADS,
             resize: int | None = DEFAULT_RESIZE, **overrides) -> "Matcher":
        """``name``: ``"default"`` (the shipped weights), a ``.pt`` / ``.ckpt`` file or a run folder;
        ``overrides``: inference options of the model (``match_threshold`` in [0, 1),
        ``early_exit``, ``pruning``, ``max_keypoints``)."""
        threads, resize = _check_threads(threads), _check_resize(resize)  # before the (slower) load
        return cls(load_model(name, **overrides), device, threads, resize)

    def _extract(self, image) -> tuple[np.ndarray, np.ndarray, Keypoints, np.ndarray]:
        """(original gray image, the resized one, keypoints on it, the resize matrix)."""
        gray = as_gray(image)
        small, S = downscale(gray, self.resize)
        return gray, small, extract(small, self.cfg.features, self.cfg.max_keypoints), S

    def extract(self, image) -> tuple[np.ndarray, Keypoints]:
        """(grayscale image, keypoints in its pixels), found at most ``resize`` px large."""
        gray, _, kp, S = self._extract(image)
        return gray, to_original(kp, S)

    def match(self, image0, image1, refine: str | None = "refiner") -> dict:
        """Keypoints of both images (in their original pixels), the matches between them, and the
        matched positions ``points0`` / ``points1`` (K, 2), image 1's refined to sub-pixel accuracy
        by ``refine``: ``"refiner"`` (the shipped learned refiner), ``"ncc"`` (patch correlation), a
        ``train.refiner`` file, or None (the keypoints' own positions)."""
        _, small0, kp0, S0 = self._extract(image0)
        _, small1, kp1, S1 = self._extract(image1)
        out = self.match_keypoints(kp0, kp1, small0.shape[::-1], small1.shape[::-1])
        out["keypoints0"], out["keypoints1"] = to_original(kp0, S0).xy, to_original(kp1, S1).xy
        with torch_threads(self.threads):
            return with_matched_points(out, small0, small1, kp0, kp1, S0, S1, refine)

    def prepare(self, kp0: Keypoints, kp1: Keypoints, image_size0: tuple[int, int], image_size1: tuple[int, int] | None = None,
                *, graph=None, cross=None) -> PairData:
        """The network's input for two sets of keypoints in the pixels of images of (w, h) sizes
        ``image_size0`` and ``image_size1`` (default: the same): the ``PairData`` with each image's
        graph and the cross edges built by the model's transforms (``graph`` / ``cross``: other
        transforms instead, e.g. to time a graph the model was not trained on), on the matcher's
        device. No resizing here. The one preparation behind ``match_keypoints``, the attention
        drawings (``python -m eval.attention``) and ``benchmarks/matcher.py``."""
        graph = self.graph if graph is None else graph
        cross = self.cross if cross is None else cross
        return make_pair_data(kp0, kp1, image_size0, graph, cross, image_size1=image_size1).to(self.device)

    @torch.no_grad()
    def match_keypoints(self, kp0: Keypoints, kp1: Keypoints, image_size0: tuple[int, int], image_size1: tuple[int, int] | None = None) -> dict:
        """Lower-level call on already extracted keypoints (``pygmatch.data.features.Keypoints``), in
        the pixels of images of the given (w, h) sizes; no resizing here."""
        with torch_threads(self.threads):  # the graphs too: some backends run torch ops
            pair = self.prepare(kp0, kp1, image_size0, image_size1)
            out = self.model(pair)
        m0 = out.matches0[0].cpu().numpy()
        i = np.nonzero(m0 >= 0)[0]
        return {
            "keypoints0": kp0.xy, "keypoints1": kp1.xy,
            "matches": np.stack([i, m0[i]], 1).astype(np.int64).reshape(-1, 2),
            "scores": out.matching_scores0[0].cpu().numpy()[i].astype(np.float32),
            "stop_layer": out.stop_layer, "pruned": out.pruned,
        }

    def match_keypoints_fn(self):
        """The ``(kp0, kp1, size) -> (matches, scores)`` form that ``pygmatch.evaluation`` runs."""
        def fn(kp0, kp1, size):
            out = self.match_keypoints(kp0, kp1, size)
            return out["matches"], out["scores"]
        return fn
