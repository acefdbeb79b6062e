"""Evaluate matchers on pairs of images: the one core behind ``python -m eval.coco`` (synthetic
pairs, equal sizes) and ``python -m eval.hpatches`` (real photograph sequences, any two sizes)."""
from __future__ import annotations

import math
import time
import warnings
from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits
from tqdm import tqdm

from .. import viz
from ..data.features import BENCHMARK_CONTRAST_THRESHOLD, BENCHMARK_MAX_KEYPOINTS, extract
from ..data.geometry import warp_points
from ..data.ground_truth import ground_truth_matches
from ..data.homography import check_estimator
from ..data.sequences import BadPair
from ..errors import PygmatchError
from ..files import make_folder
from ..matching.oracle import Oracle
from ..pipeline import Features, Pipeline, is_learned
from .anchors import ANCHOR_KEYPOINTS, AnchorPipeline, OnAnchorKeypoints, is_anchor, own_keypoints, split_keypoints
from .metrics import pair_metrics, summarize


def load_pipelines(names: list[str], features: str | None = None, max_keypoints: int = BENCHMARK_MAX_KEYPOINTS, threads: int | None = 1,
                   resize: int | None = None, views: str = "plain", contrast_threshold: float = BENCHMARK_CONTRAST_THRESHOLD,
                   selection: str | None = None, **matcher_options) -> dict[str, Pipeline]:
    """``{name: Pipeline}`` for method names (``pygmatch.pipeline``: ``MATCHER[+REFINER]``, presets,
    model files, ``oracle@PX`` / ``nn-oracle@PX``; the anchors of ``pygmatch.evaluation.anchors``,
    with their own keypoints, the same budget and size), each extracting ``features`` (None: each
    graph network's own, SIFT for the other matchers; a network trained on others is refused; SIFT
    at ``contrast_threshold``, ``selection`` as ``Extractor`` takes it) on images downscaled to ``resize`` px (None: as given) and matching
    with ``threads`` torch threads; ``matcher_options`` are the graph network's inference options
    (``match_threshold``, ``min_keep``, ``pad_from``), given to the pipelines whose matcher is the
    graph network; ``views``: the pipelines' view synthesis (``Pipeline.match``; not the anchors')."""
    if not names:
        raise PygmatchError("no method to evaluate: name at least one")

    def load(name: str):
        if is_anchor(name):
            return AnchorPipeline(name, max_keypoints, resize, threads)
        keypoints, pipeline = split_keypoints(name)
        if keypoints is not None and "oracle@" in pipeline:
            raise PygmatchError(f"{name}: an oracle reads the truth of the run's own keypoints; name {pipeline} alone")
        pipe = Pipeline.load(pipeline, features=None if keypoints in ANCHOR_KEYPOINTS else keypoints or features, max_keypoints=max_keypoints,
                             resize=resize, contrast_threshold=contrast_threshold, selection=selection, threads=threads, views=views,
                             **(matcher_options if is_learned(pipeline) else {}))
        return OnAnchorKeypoints(keypoints, pipe, max_keypoints, resize, threads) if keypoints in ANCHOR_KEYPOINTS else pipe

    return {name: load(name) for name in dict.fromkeys(names)}


def shared_features(methods: dict) -> str:
    """The one kind of keypoints ``evaluate`` extracts for every pipeline of ``methods`` (those with
    their own keypoints, ``own_keypoints``, excepted), or one ``PygmatchError`` when they need several."""
    kinds = sorted({pipe.extractor.features for name, pipe in methods.items() if not own_keypoints(name)})
    if len(kinds) > 1:
        raise PygmatchError(f"these methods match different keypoints ({', '.join(kinds)}), and each pair is extracted once: "
                            f"name the others KEYPOINTS:PIPELINE (e.g. xfeat:nn+refiner), which find their own, or evaluate them in separate runs")
    return kinds[0] if kinds else "sift"


UNMATCHABLE = {"matches": 0, "precision": math.nan, "precision@1": math.nan, "recall": math.nan,
               "ransac_error": math.inf, "dlt_error": math.inf, "failed": True}


@dataclass
class EvalResult:
    summary: dict[str, dict]
    errors: dict[str, np.ndarray]  # per method: RANSAC corner error of every evaluated pair
    skipped: list[str] = field(default_factory=list)
    extract_ms: float = math.nan
    per_pair: dict[str, list[dict]] = field(default_factory=dict)  # per method: pair_metrics of every pair, in order


def _load_pair(pairs, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A ``PairSet`` (arrays) or anything with ``load_pair(k)`` (``SequencePairs``: read lazily,
    raising ``BadPair``)."""
    load = getattr(pairs, "load_pair", None)
    if load is not None:
        return load(k)
    return pairs.image0[k], pairs.image1[k], pairs.H_0to1[k]


def evaluate(
    pairs,
    methods: dict[str, Pipeline],
    features: str = "sift",
    max_keypoints: int = 1024,
    out: str | Path | None = None,
    draw: int | Collection[int] = 3,
    progress: bool = True,
    estimator: str = "opencv",
    contrast_threshold: float = BENCHMARK_CONTRAST_THRESHOLD,
    selection: str = "strongest",
) -> EvalResult:
    """Extract keypoints once per pair, run every method on the same keypoints, score them.

    ``pairs``: a ``PairSet`` or a ``SequencePairs``, anything with ``names``, ``skipped``,
    ``__len__`` and either ``image0``/``image1``/``H_0to1`` or ``load_pair(k)``; the two images of
    a pair may have different sizes (the corner error is taken over image 0's corners, in image-1
    pixels). A pair that cannot be read (``BadPair``) or has fewer than 2 keypoints in an image is
    warned about, listed in ``skipped`` and counted as a failure of every method.

    ``estimator``: the RANSAC homography estimator (``opencv``, ``poselib``; ``pygmatch.data.homography``).
    ``contrast_threshold``: SIFT's; ``selection``: which keypoints fill the budget (``pygmatch.data.features``).

    With ``out``, the matches of the first ``draw`` pairs (or of the pair indices in ``draw``)
    are drawn there (``write_report`` writes the tables and plots)."""
    check_estimator(estimator)  # before any work
    out = Path(out) if out is not None else None
    if out is not None:
        make_folder(out / "matches")
    per_pair = {name: [] for name in methods}
    times = {name: [] for name in methods}
    skipped = list(pairs.skipped)
    extract_ms = []
    unreadable = 0

    def fail(message: str) -> None:
        # Not matched, but not dropped either: it counts as a failed estimate for every method,
        # so the AUCs stay comparable with sets where it could be evaluated.
        with tqdm.external_write_mode():  # on a line of its own, not after the progress bar
            warnings.warn(f"skipping {message}", stacklevel=3)
        skipped.append(message)
        for name in methods:
            per_pair[name].append(dict(UNMATCHABLE))

    # numpy's BLAS threads keep spinning after each call (the nn baselines, the DLT); on a small
    # CPU they took the cores from whichever torch matcher ran next, slowing it by up to 2x.
    # The matrices here are small, so one BLAS thread costs the baselines little.
    with threadpool_limits(limits=1, user_api="blas"):
        for k in tqdm(range(len(pairs)), desc="evaluating", unit="pair", disable=not progress):
            try:
                im0, im1, H = _load_pair(pairs, k)
            except BadPair as e:
                unreadable += 1
                fail(f"pair {pairs.names[k]}: {e} (counted as a failure)")
                continue
            size0 = (im0.shape[1], im0.shape[0])
            t = time.perf_counter()
            kp0, kp1 = (extract(im, features, max_keypoints, contrast_threshold, selection) for im in (im0, im1))
            extract_ms.append((time.perf_counter() - t) * 1e3 / 2)
            if len(kp0) < 2 or len(kp1) < 2:
                fail(f"pair {pairs.names[k]}: only {len(kp0)}/{len(kp1)} keypoints (counted as a failure)")
                continue
            # Every matcher runs before any scoring, so each is timed after the same work; a
            # method's time includes its refinement.
            f0, f1 = Features(im0, kp0), Features(im1, kp1)
            outputs = {}
            for name, pipe in methods.items():
                t = time.perf_counter()
                if isinstance(pipe.matcher, Oracle):  # a ceiling: the only matcher that reads the truth
                    res = pipe.result(f0, f1, *pipe.matcher.match_truth(kp0, kp1, H))
                elif own_keypoints(name):  # an anchor's or KEYPOINTS:PIPELINE: their extraction is timed with the matching
                    res = pipe.match(im0, im1)
                else:
                    res = pipe.match(f0, f1)
                outputs[name] = res
                times[name].append((time.perf_counter() - t) * 1e3)
            gt0, _ = ground_truth_matches(kp0.xy, kp1.xy, H)
            drawn = k < draw if isinstance(draw, int) else k in draw
            for name, res in outputs.items():
                xy0, xy1, matches, points1 = res.features0.keypoints.xy, res.features1.keypoints.xy, res.matches, res.points1
                gt = gt0 if res.features0 is f0 else ground_truth_matches(xy0, xy1, H)[0]  # an anchor's own keypoints: their truth
                per_pair[name].append(pair_metrics(matches, res.scores, xy0, xy1, gt, H, size0, points1=points1, estimator=estimator))
                if out is not None and drawn:
                    err = np.linalg.norm(warp_points(xy0[matches[:, 0]], H) - points1, axis=1)
                    safe = name.replace("/", "_").replace("\\", "_")
                    viz.draw_matches(im0, im1, xy0, xy1, matches, err < 3.0, out / "matches" / f"{pairs.names[k]}_{safe}.png",
                                     title=f"{name}: {int((err < 3).sum())}/{len(matches)} correct")
    if not any(times.values()):
        if unreadable == len(pairs):
            raise PygmatchError("no pair could be evaluated (no pair could be read)")
        if unreadable:
            raise PygmatchError(f"no pair could be evaluated ({unreadable} could not be read, the others have fewer than 2 keypoints)")
        raise PygmatchError("no pair could be evaluated (every pair has fewer than 2 keypoints)")
    summary = {}
    for name in methods:
        s = summarize(per_pair[name])
        s["ms_per_pair"] = float(np.median(times[name]))
        s["skipped"] = len(skipped)
        summary[name] = s
    errors = {n: np.array([p["ransac_error"] for p in per_pair[n]]) for n in methods}
    return EvalResult(summary, errors, skipped, float(np.median(extract_ms)), per_pair)


def summarize_groups(result: EvalResult, groups: list[str]) -> dict[str, dict[str, dict]]:
    """``{group: {method: summary}}``: the metrics of ``summarize`` over the pairs of each group
    (``groups[k]`` names pair k's group; groups in first-seen order). ``failed`` counts the pairs of
    the group that could not be evaluated (in the AUCs as infinite errors)."""
    out: dict[str, dict[str, dict]] = {}
    for group in dict.fromkeys(groups):
        idx = [k for k, g in enumerate(groups) if g == group]
        out[group] = {}
        for name, per_pair in result.per_pair.items():
            chosen = [per_pair[k] for k in idx]
            s = summarize(chosen)
            s["failed"] = sum(bool(p.get("failed")) for p in chosen)
            out[group][name] = s
    return out
