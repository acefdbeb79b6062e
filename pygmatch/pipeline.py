"""``Pipeline``: two images → keypoints → matches → refined matched positions, in one object.

::

    import pygmatch
    pipe = pygmatch.Pipeline.load("default")          # SIFT → candidate graph network → learned refiner
    res = pipe.match("a.jpg", "b.jpg")                # paths, arrays (gray, BGR) or PIL images
    res.keypoints0, res.keypoints1                    # (N, 2), (M, 2) in the original images' pixels
    res.matches, res.scores                           # (K, 2) indices into them, (K,) confidences
    res.points0, res.points1                          # (K, 2) matched positions, image 1's refined
    H = res.homography()                              # RANSAC on points0 → points1 (None if impossible)
    F, inliers = res.fundamental()                    # fundamental matrix by RANSAC, its inliers (None if impossible)
    pose = res.pose(K0, K1)                           # with intrinsics: R, t (x1 = R x0 + t, |t| = 1), inliers, E

    f0 = pipe.extract("a.jpg")                        # features once per image ...
    res = pipe.match(f0, pipe.extract("b.jpg"))       # ... matched against many

Three stages, each with one small interface (as glue-factory's two-view pipeline):

- **extract** (``Extractor``): image → ``Features``: the keypoints, found on the image downscaled so
  that its longer side is at most ``resize`` pixels; they are reported in the original pixels.
- **match** (``pygmatch.matching``): ``match(kp0, kp1, size0, size1) -> (matches (K, 2) int64,
  scores (K,) float32)`` on keypoints in the extraction pixels; nearest neighbour, the ratio test
  and the graph network alike.
- **refine** (optional): ``refine(image0, image1, points0, points1) -> points1`` on the extraction
  images; the classical ``PatchRefiner`` (``ncc``) or the ``LearnedRefiner`` (``refiner``).

A pipeline is named ``MATCHER[+REFINER]`` (the names ``eval.coco`` and ``eval.hpatches`` take):
matchers ``nn``, ``nn-ratio``, ``candidate-graph`` (the shipped graph network) or the graph network
of a model file (``train.export``), checkpoint or run folder (``train.run``); refiners ``refiner``,
``ncc`` or a refiner file; ``default`` is ``candidate-graph+refiner`` with the network's threshold
at 0.2, the shipped best. ``oracle@PX`` / ``nn-oracle@PX`` are ceilings that read the true
homography: only the evaluation runs them (``Pipeline.result`` with their matches).
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from .data.epipolar import RelativePose, estimate_fundamental, estimate_relative_pose
from .data.features import (DEFAULT_CONTRAST_THRESHOLD, DEFAULT_MAX_KEYPOINTS, DESCRIPTOR_DIM, FEATURES, SYNTHESIS_MAX_KEYPOINTS,
                            SYNTHESIS_MIN_INLIERS, VIEWS, Keypoints, check_contrast_threshold, check_selection,
                            default_selection, extract)
from .data.homography import estimate_homography
from .data.images import DEFAULT_RESIZE, as_gray, check_resize, downscale, points_to_original
from .errors import PygmatchError
from .checkpoint import is_model_file
from .matching.candidate_graph import CandidateGraphMatching
from .data.views import SYNTHESIS_ROUNDS, ViewKeypoints, detect_views, local_affine, synthesised_keypoints, views_of
from .matching.nearest import RATIO, NearestNeighbor, fginn_match
from .matching.oracle import Oracle, parse_oracle
from .refinement import REFINEMENTS, PatchStage, load_refiner, local_linear_maps
from .threads import DEFAULT_THREADS, check_threads, torch_threads
from .values import probability_threshold

PRESETS = {"default": "candidate-graph+refiner"}  # names of whole pipelines ...
# ... and their matcher options: with the refiner behind it the candidate graph keeps more candidates,
# since the refiner brings 1-3 px matches within 1 px (measured: benchmarks/results/candidate_graph.md)
PRESET_OPTIONS = {"default": {"match_threshold": 0.2}}
MATCHERS = ("nn", "nn-ratio", "candidate-graph")  # matcher names besides files and oracles
MATCHER_OPTIONS = ("match_threshold", "min_keep", "pad_from")  # the graph network's inference options
_UNSET = object()


@dataclass
class Features:
    """One image's keypoints, extracted once and matched against any number of others.

    ``image``: the gray image (h, w) uint8 the keypoints were found on (downscaled by ``S``);
    ``keypoints``: in ``image``'s pixels; ``S``: 3×3, original pixels → ``image``'s pixels;
    ``original_size``: (width, height) of the image given. ``synthetic``: the keypoints of every
    simulated view of ``SYNTHESIS_ROUNDS`` found beforehand (``Pipeline.with_views``; None: found
    when a pair needs them). An image's *full set* is ``keypoints`` then ``synthetic``; ``rows``:
    for keypoints chosen from that set (a synthesised match), each one's row in it."""

    image: np.ndarray
    keypoints: Keypoints
    S: np.ndarray = field(default_factory=lambda: np.eye(3))
    original_size: tuple[int, int] | None = None
    synthetic: ViewKeypoints | None = None
    rows: np.ndarray | None = None

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) of ``image``, the pixels the stages work in."""
        return self.image.shape[1], self.image.shape[0]

    def to_original(self, xy: np.ndarray) -> np.ndarray:
        """Positions (K, 2) in ``image``'s pixels → the original image's pixels (float64)."""
        xy = np.asarray(xy, np.float64).reshape(-1, 2)
        return xy if np.array_equal(self.S, np.eye(3)) else points_to_original(xy, self.S)

    @property
    def xy(self) -> np.ndarray:
        """(N, 2) keypoint positions in the original image's pixels."""
        return self.to_original(self.keypoints.xy)

    def __len__(self) -> int:
        return len(self.keypoints)


class Extractor:
    """Image → ``Features``: up to ``max_keypoints``
    ``features`` keypoints (``sift``, ``orb``, ``asift`` or ``xfeat``), found on the image downscaled to at most ``resize``
    pixels on its longer side (OpenCV ``INTER_AREA``, never enlarged; ``None`` keeps the size), at
    SIFT's ``contrast_threshold`` (``pygmatch.data.features``: COLMAP's by default, which lets a
    photograph with little texture fill the budget). ``selection``: which keypoints fill the budget,
    "strongest" or "spread" (ANMS, ``pygmatch.data.selection``); None: ``default_selection``, SIFT's
    spread below 4096 keypoints, where that gives the better poses.

    An image is a path, a PIL image, or an array: H×W gray, H×W×3 BGR or H×W×4 BGRA (OpenCV's
    order), uint8, other integers scaled by their bit depth (12-bit data in a uint16: 0–4095) or
    floats in 0–1 or 0–255 (``pygmatch.data.images.as_gray``)."""

    def __init__(self, features: str = "sift", max_keypoints: int = DEFAULT_MAX_KEYPOINTS, resize: int | None = DEFAULT_RESIZE,
                 contrast_threshold: float = DEFAULT_CONTRAST_THRESHOLD, selection: str | None = None):
        if features not in FEATURES:
            raise PygmatchError(f"unknown features {features!r}: choose from {', '.join(FEATURES)}")
        if isinstance(max_keypoints, bool) or not isinstance(max_keypoints, (int, np.integer)) or max_keypoints < 1:
            raise PygmatchError(f"max_keypoints must be an integer >= 1, got {max_keypoints!r}")
        self.features, self.max_keypoints, self.resize = features, int(max_keypoints), check_resize(resize)
        self.contrast_threshold = check_contrast_threshold(contrast_threshold)
        self.selection = default_selection(features, self.max_keypoints) if selection is None else check_selection(selection)

    def __call__(self, image) -> Features:
        return self.with_keypoints(image, None)

    def with_keypoints(self, image, keypoints: Keypoints | None) -> Features:
        """``Features`` of an image with the given keypoints (in the downscaled image's pixels, as
        this extractor found them earlier, e.g. read back from a store); None: extract them."""
        gray = as_gray(image)
        small, S = downscale(gray, self.resize)
        keypoints = extract(small, self.features, self.max_keypoints, self.contrast_threshold, self.selection) if keypoints is None else keypoints
        return Features(small, keypoints, S, (gray.shape[1], gray.shape[0]))

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(features={self.features!r}, max_keypoints={self.max_keypoints}, resize={self.resize}, "
                f"contrast_threshold={self.contrast_threshold}, selection={self.selection!r})")


@dataclass
class MatchResult:
    """The matches of two images. Positions are in the original images' pixels.

    ``keypoints0`` (N, 2), ``keypoints1`` (M, 2); ``matches`` (K, 2) int64 indices into them;
    ``scores`` (K,) float32 confidences; ``points0`` (K, 2) image 0's matched keypoints and
    ``points1`` (K, 2) their correspondences in image 1, refined when the pipeline refines."""

    features0: Features
    features1: Features
    matches: np.ndarray
    scores: np.ndarray
    points0: np.ndarray
    points1: np.ndarray

    @property
    def keypoints0(self) -> np.ndarray:
        return self.features0.xy

    @property
    def keypoints1(self) -> np.ndarray:
        return self.features1.xy

    def homography(self, threshold: float = 3.0, method: str = "ransac", estimator: str = "opencv") -> np.ndarray | None:
        """The homography image 0 → image 1 (3×3) fitted to ``points0`` → ``points1`` by RANSAC with a
        ``threshold`` px reprojection threshold (``estimator``: OpenCV's ``findHomography`` or
        ``"poselib"``'s LO-RANSAC; ``method="dlt"``: a plain direct linear transform of all
        matches); None with fewer than 4 matches or a degenerate fit."""
        if method not in ("ransac", "dlt") or not threshold > 0:
            raise PygmatchError(f"homography: method must be 'ransac' or 'dlt' and threshold > 0, got {method!r}, {threshold!r}")
        return estimate_homography(self.points0, self.points1, method, ransac_px=threshold, estimator=estimator)

    def fundamental(self, threshold: float = 1.0, estimator: str = "opencv") -> tuple[np.ndarray, np.ndarray] | None:
        """``(F, inliers)``: the fundamental matrix (3×3, x1ᵀ F x0 = 0 for ``points0`` → ``points1``
        in pixels, unit norm) by RANSAC at ``threshold`` px (``estimator``: OpenCV's
        ``findFundamentalMat`` or ``"poselib"``'s LO-RANSAC, ``pygmatch.data.epipolar``) and which
        matches are its inliers, (K,) bool; None with fewer than 8 matches or no model. The geometry of
        any two views of a rigid scene, no intrinsics needed; ``pose()`` when they are known."""
        _check_threshold("fundamental", threshold)
        return estimate_fundamental(self.points0, self.points1, threshold, estimator)

    def pose(self, K0, K1, threshold: float = 1.0, estimator: str = "opencv") -> RelativePose | None:
        """The relative pose of camera 1 to camera 0 from the essential matrix, given each image's
        intrinsics ``K0``, ``K1`` (3×3, original pixels, COLMAP's convention: the first pixel's centre
        at (0.5, 0.5)): a ``RelativePose`` with ``R``, ``t`` (x1 = R x0 + t in camera coordinates,
        |t| = 1: the scale is unknown), ``inliers`` (K,) bool and ``E``; by RANSAC at ``threshold`` px
        (divided by the mean focal length; ``estimator``: OpenCV's ``findEssentialMat`` +
        ``recoverPose`` or ``"poselib"``'s ``estimate_relative_pose``), what ``eval.pose`` measures.
        None with fewer than 5 matches or no model."""
        _check_threshold("pose", threshold)
        return estimate_relative_pose(self.points0, self.points1, K0, K1, threshold, estimator)

    def __len__(self) -> int:
        return len(self.matches)

    def __repr__(self) -> str:
        return f"MatchResult({len(self.keypoints0)} and {len(self.keypoints1)} keypoints, {len(self.matches)} matches)"


# The neighbour-fitted motion of a synthesised match is trusted when it is within this fraction of the
# views' motion (whose median error on correct matches is ~0.13: docs/views.md); set a priori, not tuned.
MAP_AGREEMENT = 0.3


def checked_maps(a0: ViewKeypoints, a1: ViewKeypoints, matches: np.ndarray) -> np.ndarray:
    """(K, 2, 2) the local linear motion each synthesised match is refined through: the one fitted to
    its neighbouring matches (what the refiners use on their own, the more precise), unless it
    disagrees with the one its two views imply (``local_affine``; off where the neighbours are wrong
    matches) by more than ``MAP_AGREEMENT`` of its norm; then the views' one."""
    views = local_affine(a0, a1, matches)
    fitted = local_linear_maps(a0.keypoints.xy[matches[:, 0]].astype(np.float64), a1.keypoints.xy[matches[:, 1]].astype(np.float64))
    agree = np.linalg.norm(fitted - views, axis=(1, 2)) <= MAP_AGREEMENT * np.linalg.norm(views, axis=(1, 2))
    return np.where(agree[:, None, None], fitted, views)


def inlier_count(result: MatchResult) -> int:
    """RANSAC inliers of the fundamental matrix of a match, at 1 px of the (downscaled) images the
    stages work in; 0 below 8 matches."""
    px = max(1.0 / float(f.S[0, 0]) for f in (result.features0, result.features1))  # in original pixels
    found = result.fundamental(px) if len(result) >= 8 else None
    return 0 if found is None else int(found[1].sum())


def _check_threshold(what: str, threshold) -> None:
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float, np.integer, np.floating)) or not threshold > 0:
        raise PygmatchError(f"{what}: threshold must be a number of pixels > 0, got {threshold!r}")


def looks_like_path(name: str) -> bool:
    """A stage name meant as a file: it has a folder separator or a model file's extension."""
    return "/" in name or "\\" in name or name.lower().endswith((".pt", ".ckpt"))


def load_matcher(name: str, **options):
    """A matching stage by name: ``nn``, ``nn-ratio``, ``candidate-graph`` (the shipped graph
    network), ``oracle@PX`` / ``nn-oracle@PX``, or the graph network of a model file
    (``train.export``), a checkpoint or a run folder (``train.run``).
    ``options``: the graph network's inference options (``match_threshold``, ``min_keep``,
    ``pad_from``); given to a matcher that has none, or unknown, they are an error, not silently
    ignored."""
    unknown = sorted(set(options) - set(MATCHER_OPTIONS))
    if unknown:
        raise PygmatchError(f"unknown matcher option(s) {', '.join(unknown)}: choose from {', '.join(MATCHER_OPTIONS)}")
    name = str(name)
    given = {k: v for k, v in options.items() if v is not None}
    if name in ("nn", "nn-ratio") or name.startswith(("oracle@", "nn-oracle@")):
        if given:
            raise PygmatchError(f"{name}: takes no matcher options (got {', '.join(sorted(given))}); they are the graph network's")
        return NearestNeighbor(RATIO if name == "nn-ratio" else None) if name in ("nn", "nn-ratio") else parse_oracle(name)
    if "match_threshold" in given:  # named as the caller named it, not as the network's config field
        try:
            probability_threshold(str(given["match_threshold"]))
        except ValueError as e:
            raise PygmatchError(f"match_threshold: {e}") from None
    selection = {{"match_threshold": "threshold"}.get(k, k): v for k, v in given.items()}
    if name == "candidate-graph" or is_model_file(name):
        return CandidateGraphMatching.load("default" if name == "candidate-graph" else name, **selection)
    if looks_like_path(name):
        raise PygmatchError(f"{name}: no such model file, checkpoint or run folder")
    raise PygmatchError(f"unknown matcher {name!r}: choose from {', '.join(MATCHERS)}, oracle@PX, nn-oracle@PX or a model file")


def is_learned(name: str) -> bool:
    """Whether the pipeline ``name``'s matcher is the graph network (takes its inference options)."""
    matcher = split_name(name)[0]
    return not (matcher in ("nn", "nn-ratio") or matcher.startswith(("oracle@", "nn-oracle@")))


def matcher_features(matcher) -> str | None:
    """The keypoints a matching stage was trained on (None: any)."""
    return matcher.cfg.features if isinstance(matcher, CandidateGraphMatching) else None


def split_name(name: str) -> tuple[str, str | None]:
    """``MATCHER[+REFINER]`` → ``(matcher, refiner or None)``, presets expanded."""
    name = PRESETS.get(str(name), str(name))
    base, plus, refinement = name.rpartition("+")
    if plus and base and (refinement in REFINEMENTS or looks_like_path(refinement)):
        return PRESETS.get(base, base), refinement
    if plus and not Path(name).exists():
        raise PygmatchError(f"{name}: unknown refinement {refinement!r} after '+': choose from {', '.join(REFINEMENTS)} or a "
                            f"refiner file or run (python -m train.refiner)")
    return name, None


class Pipeline:
    """extract → match → refine (see the module's docstring). ``threads`` (default 1): torch threads
    of the learned stages while a pair is matched, restored afterwards; ``None`` keeps torch's
    setting (see ``pygmatch.threads``)."""

    def __init__(self, extractor: Extractor, matcher, refiner=None, threads: int | None = DEFAULT_THREADS, name: str | None = None,
                 views: str = "plain"):
        if views not in VIEWS:
            raise PygmatchError(f"views must be one of {', '.join(VIEWS)}, got {views!r}")
        if views != "plain" and extractor.features != "sift":
            raise PygmatchError(f"views={views!r}: the simulated views are matched by SIFT keypoints, not {extractor.features}")
        wanted = matcher_features(matcher)
        if wanted is not None and wanted != extractor.features:
            raise PygmatchError(f"{name or matcher!r}: the matcher was trained on {wanted} keypoints, but the extractor finds {extractor.features}")
        if refiner is not None and not callable(getattr(refiner, "refine", None)):
            raise PygmatchError(f"refiner must have refine(image0, image1, points0, points1), got {refiner!r}")
        self.extractor, self.matcher, self.refiner = extractor, matcher, refiner
        self.threads = check_threads(threads)
        self.name, self.views = name, views

    @classmethod
    def load(cls, name: str = "default", *, refine=_UNSET, features: str | None = None, max_keypoints: int = DEFAULT_MAX_KEYPOINTS,
             resize: int | None = DEFAULT_RESIZE, contrast_threshold: float = DEFAULT_CONTRAST_THRESHOLD, selection: str | None = None,
             threads: int | None = DEFAULT_THREADS, match_threshold: float | None = None, views: str = "plain",
             **matcher_options) -> "Pipeline":
        """The pipeline ``name`` (``MATCHER[+REFINER]``, see the module's docstring).

        ``refine``: replaces the name's refinement (``None``: unrefined; ``"refiner"``, ``"ncc"``, a
        refiner file or an object with ``refine``). ``features``: the keypoints (default: those the
        matcher was trained on, else ``sift``); ``max_keypoints``, ``resize``, ``contrast_threshold``,
        ``selection``: the extraction's (``Extractor``);
        ``match_threshold`` and ``matcher_options`` (``min_keep``, ``pad_from``): the graph
        network's inference options (``load_matcher``; a preset's own, e.g. ``default``'s
        threshold, unless given). ``views="auto"``: on-demand view synthesis (``Pipeline.match``)."""
        threads = check_threads(threads)
        matcher_name, refinement = split_name(name)
        if refine is not _UNSET:
            refinement = refine
        options = {"match_threshold": match_threshold, **matcher_options}
        for option, value in PRESET_OPTIONS.get(str(name), {}).items():  # the preset's own, where not given
            if options.get(option) is None:
                options[option] = value
        matcher = load_matcher(matcher_name, **options)
        extractor = Extractor(features or matcher_features(matcher) or "sift", max_keypoints, resize, contrast_threshold, selection)
        refiner = refinement if refinement is None or hasattr(refinement, "refine") else load_refiner(refinement)
        return cls(extractor, matcher, refiner, threads, name=str(name), views=views)

    def extract(self, image) -> Features:
        """``Features`` of an image (path or uint8 array); ``Features`` are returned as they are."""
        if not isinstance(image, Features):
            with torch_threads(self.threads):  # the learned keypoints (xfeat) run torch
                return self.extractor(image)
        dim = image.keypoints.descriptors.shape[1]
        if dim != DESCRIPTOR_DIM[self.extractor.features]:
            raise PygmatchError(f"these features have {dim}-dimensional descriptors, but this pipeline matches "
                                f"{self.extractor.features} ({DESCRIPTOR_DIM[self.extractor.features]})")
        return image

    def match(self, image0, image1) -> MatchResult:
        """Match two images (paths, uint8 arrays or ``Features`` from ``extract``). With
        ``views="auto"``, a pair whose match has fewer than ``SYNTHESIS_MIN_INLIERS`` fundamental-matrix
        inliers is matched again on keypoints of simulated oblique views (``synthesised``); that match
        is returned when it has at least the minimum of inliers and more than the plain one. A pair
        the plain match solves costs one RANSAC fit more and gives the same result."""
        f0, f1 = self.extract(image0), self.extract(image1)
        if isinstance(self.matcher, Oracle):
            raise PygmatchError(f"{self.matcher.name}: an oracle reads the true homography; only the evaluation runs it")
        with torch_threads(self.threads):
            matches, scores = self.matcher.match(f0.keypoints, f1.keypoints, f0.size, f1.size)
            plain = self.result(f0, f1, matches, scores)
        if self.views == "plain" or (found := inlier_count(plain)) >= SYNTHESIS_MIN_INLIERS:
            return plain
        return self.synthesised(f0, f1, found) or plain

    def with_views(self, features: Features) -> Features:
        """``features`` with the keypoints of the simulated views of ``SYNTHESIS_ROUNDS`` found now
        (``Features.synthetic``), as ``synthesised`` would find them round by round: for a
        collection, whose store keeps one set of keypoints per image. Only those that a round's
        strongest ``SYNTHESIS_MAX_KEYPOINTS`` include are kept (at most that many per round, a
        fraction of all): ``synthesised`` picks the same ones from them."""
        if features.synthetic is not None:
            return features
        with torch_threads(self.threads):
            synthetic = synthesised_keypoints(features.image, features.keypoints, self.extractor.max_keypoints)
        return replace(features, synthetic=synthetic)

    def _round_views(self, f: Features, tilts) -> tuple[ViewKeypoints, np.ndarray]:
        """The keypoints of the views of ``tilts`` and their rows in the image's full set."""
        if f.synthetic is None:
            return detect_views(f.image, views_of(tilts), self.extractor.max_keypoints), np.zeros(0, np.int64)
        index = np.nonzero(np.isin(f.synthetic.tilts, tilts))[0]
        return f.synthetic.subset(index), len(f.keypoints) + index

    def synthesised(self, f0: Features, f1: Features, found: int = 0) -> MatchResult | None:
        """View synthesis on demand (``pygmatch.data.views``, MODS): round by round
        (``SYNTHESIS_ROUNDS``), SIFT on more simulated views of both images joins the keypoints
        already found (or, with ``Features.synthetic``, those found beforehand are taken), the
        strongest ``SYNTHESIS_MAX_KEYPOINTS`` per image are matched by the ratio test against the
        first geometrically inconsistent neighbour (``fginn_match``) and refined by this pipeline's
        refiner through the local motion ``checked_maps`` gives each match. The first round whose
        match has at least ``SYNTHESIS_MIN_INLIERS`` inliers and more than ``found`` is returned
        (with ``Features.synthetic``, its features' ``rows`` say where each keypoint is in the full
        set); None if none does."""
        known0, known1 = ViewKeypoints.of_image(f0.keypoints), ViewKeypoints.of_image(f1.keypoints)
        rows0, rows1 = np.arange(len(f0.keypoints)), np.arange(len(f1.keypoints))
        for tilts in SYNTHESIS_ROUNDS:
            with torch_threads(self.threads):
                (v0, new0), (v1, new1) = self._round_views(f0, tilts), self._round_views(f1, tilts)
                known0, known1 = ViewKeypoints.concatenate([known0, v0]), ViewKeypoints.concatenate([known1, v1])
                rows0, rows1 = np.concatenate([rows0, new0]), np.concatenate([rows1, new1])
                pick0, pick1 = known0.strongest_index(SYNTHESIS_MAX_KEYPOINTS), known1.strongest_index(SYNTHESIS_MAX_KEYPOINTS)
                a0, a1 = known0.subset(pick0), known1.subset(pick1)
                matches, scores = self.match_views(a0, a1, f0.size, f1.size)
                result = self.result(*(replace(f, keypoints=a.keypoints, synthetic=None, rows=rows[pick] if f.synthetic is not None else None)
                                       for f, a, rows, pick in ((f0, a0, rows0, pick0), (f1, a1, rows1, pick1))),
                                     matches, scores, checked_maps(a0, a1, matches))
            if inlier_count(result) >= max(SYNTHESIS_MIN_INLIERS, found + 1):
                return result
        return None

    def match_views(self, a0: ViewKeypoints, a1: ViewKeypoints, size0: tuple[int, int], size1: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
        """``(matches, scores)`` of the keypoints of a round of simulated views: the ratio test against
        the first geometrically inconsistent neighbour (``fginn_match``), whatever the matcher. The
        graph network can judge them (``CandidateGraphMatching.match_views``), but on photographs
        that do not overlap it let false geometries through (docs/views.md); the sizes are for it."""
        return fginn_match(a0.keypoints.descriptors, a1.keypoints.descriptors, a0.keypoints.xy, a1.keypoints.xy)

    def result(self, f0: Features, f1: Features, matches: np.ndarray, scores: np.ndarray, maps: np.ndarray | None = None) -> MatchResult:
        """The ``MatchResult`` of given matches: their positions, refined by this pipeline's refiner
        (``maps``: each match's local linear motion, for the patch refiners, when known)."""
        matches = np.asarray(matches, np.int64).reshape(-1, 2)
        points0 = f0.keypoints.xy[matches[:, 0]].astype(np.float64)
        points1 = f1.keypoints.xy[matches[:, 1]].astype(np.float64)
        if self.refiner is not None and len(matches):
            with torch_threads(self.threads):
                if maps is not None and isinstance(self.refiner, PatchStage):
                    points1 = self.refiner.refine(f0.image, f1.image, points0, points1, maps)
                else:
                    points1 = self.refiner.refine(f0.image, f1.image, points0, points1)
        return MatchResult(f0, f1, matches, np.asarray(scores, np.float32).reshape(-1), f0.to_original(points0), f1.to_original(points1))

    def __repr__(self) -> str:
        def short(stage):  # the models' own repr lists every layer
            return repr(stage) if stage is None or not hasattr(stage, "cfg") else f"{type(stage).__name__}({stage.cfg})"
        views = "" if self.views == "plain" else f", views={self.views!r}"  # as before the option, for the stores made then
        return (f"{type(self).__name__}(name={self.name!r}, extractor={self.extractor!r}, matcher={short(self.matcher)}, "
                f"refiner={short(self.refiner)}{views}, threads={self.threads})")


__all__ = ["VIEWS", "SYNTHESIS_MIN_INLIERS", "inlier_count",
           "Pipeline", "MatchResult", "RelativePose", "Features", "Extractor", "load_matcher", "DEFAULT_RESIZE", "PRESETS", "PRESET_OPTIONS"]
