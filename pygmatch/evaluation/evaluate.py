"""Evaluate matchers on pairs of images: the one core behind ``python -m eval.coco`` (synthetic
pairs, equal sizes) and ``python -m eval.hpatches`` (real photograph sequences, any two sizes)."""
from __future__ import annotations

import argparse
import math
import time
import warnings
from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
from threadpoolctl import threadpool_limits
from tqdm import tqdm

from .. import viz
from ..cli import make_folder, positive_int, probability_threshold
from ..data.features import FEATURES, Keypoints, extract
from ..data.geometry import warp_points
from ..data.ground_truth import ground_truth_matches
from ..data.sequences import BadPair
from ..errors import PygmatchError
from ..refinement import REFINEMENTS, load_refiner, refine_matches
from .baselines import BASELINES, oracle_match, parse_oracle
from .metrics import pair_metrics, summarize

# fn(kp0, kp1, size0, size1, H_0to1) -> (matches (K, 2) int64, scores (K,)). Sizes are image 0's
# and image 1's (width, height). H_0to1 is the true homography: only the oracle ceilings read it.
MatchFn = Callable[[Keypoints, Keypoints, tuple[int, int], tuple[int, int], np.ndarray], tuple[np.ndarray, np.ndarray]]
# refine(image0, image1, points0, points1) -> refined points1: the matched positions' last stage.
Refiner = Callable[[np.ndarray, np.ndarray, np.ndarray, np.ndarray], np.ndarray]


@dataclass(frozen=True)
class Method:
    """A matcher and, optionally, the refinement of its matched image-1 positions. Called like its
    ``match``, so a ``Method`` is also a ``MatchFn``."""

    match: MatchFn
    refine: Refiner | None = None

    def __call__(self, kp0, kp1, size0, size1, H):
        return self.match(kp0, kp1, size0, size1, H)


def looks_like_path(name: str) -> bool:
    """A method name meant as a checkpoint: it has a folder separator or a checkpoint extension."""
    return "/" in name or "\\" in name or name.lower().endswith((".pt", ".ckpt"))


def resolve_method(name: str, features: str = "sift", threads: int | None = 1, **overrides) -> Method:
    """A matcher, optionally followed by ``+REFINEMENT`` of its matched positions
    (``pygmatch.refinement``): ``+refiner`` the shipped learned refiner, ``+ncc`` the classical
    correlation refinement, ``+FILE`` a refiner trained with ``train.refiner``; e.g. ``verifier+refiner``.

    The matcher: a baseline name (``nn``, ``nn-ratio``), ``oracle@PX`` (the ground-truth matches at PX
    pixels: a ceiling that uses the true homography), ``default`` (the shipped attention model),
    ``verifier`` (the shipped candidate verifier, ``pygmatch.verifier``), the path of a trained
    checkpoint / run folder or of a verifier file (``python -m train.verifier``). A model trained on other features than
    ``features`` is refused; learned models match with ``threads`` torch threads (``Matcher``'s
    ``threads``); ``overrides`` set their inference options (``match_threshold``, ``early_exit``, ...)."""
    base, plus, refinement = name.rpartition("+")
    if plus and base and (refinement in REFINEMENTS or (looks_like_path(refinement) and Path(refinement).is_file())):
        from ..matcher import torch_threads  # noqa: PLC0415

        refine = load_refiner(refinement)

        def refine_on_threads(*args):  # as many torch threads as the learned matchers get
            with torch_threads(threads):
                return refine(*args)
        return Method(resolve_method(base, features, threads, **overrides).match, refine_on_threads)
    if plus and not Path(name).exists():
        raise PygmatchError(f"{name}: unknown refinement {refinement!r} after '+': choose from {', '.join(REFINEMENTS)} or a "
                            f"refiner file (python -m train.refiner)")
    return Method(_resolve_matcher(name, features, threads, **overrides))


def _resolve_matcher(name: str, features: str, threads: int | None, **overrides) -> MatchFn:
    if name in BASELINES:
        fn = BASELINES[name]
        return lambda kp0, kp1, size0, size1, H: fn(kp0, kp1)
    if name.startswith("oracle@"):
        px = parse_oracle(name)
        return lambda kp0, kp1, size0, size1, H: oracle_match(kp0.xy, kp1.xy, H, px)
    from ..verifier import CandidateVerifier, is_verifier_file  # noqa: PLC0415 (only needed for learned methods)

    if name == "verifier" or is_verifier_file(name):
        if features != "sift":
            raise PygmatchError(f"{name}: the verifier is trained on sift keypoints, but this evaluation uses {features} (--features)")
        options = {"threshold": overrides["match_threshold"]} if "match_threshold" in overrides else {}
        verifier = CandidateVerifier.load("default" if name == "verifier" else name, **options)
        return lambda kp0, kp1, size0, size1, H: verifier.match(kp0, kp1)
    if name == "default" or Path(name).exists():
        from ..matcher import Matcher  # noqa: PLC0415 (only needed for learned methods)

        matcher = Matcher.load(name, threads=threads, **overrides)
        if matcher.cfg.features != features:
            raise PygmatchError(f"{name}: trained on {matcher.cfg.features} keypoints, but this evaluation uses {features} (--features)")

        def learned(kp0, kp1, size0, size1, H):
            out = matcher.match_keypoints(kp0, kp1, size0, size1)
            return out["matches"], out["scores"]
        return learned
    if looks_like_path(name):
        raise PygmatchError(f"{name}: no such checkpoint file or run folder (in --methods / --compare)")
    raise PygmatchError(f"unknown method {name!r}: choose from default, verifier, {', '.join(BASELINES)}, oracle@PX or give a checkpoint path")


def default_methods() -> str:
    """The shipped pipeline (``verifier+refiner``: the verifier's matches, refined by the learned
    refiner) and the shipped models alone (``verifier``, ``default``) as far as they are installed,
    then ``nn,nn-ratio``."""
    from ..checkpoint import WEIGHTS_DIR  # noqa: PLC0415

    def shipped(*files):
        return all((WEIGHTS_DIR / f).is_file() for f in files)

    names = [name for name, files in (("verifier+refiner", ("verifier.pt", "refiner.pt")), ("verifier", ("verifier.pt",)),
                                      ("default", ("default.pt",))) if shipped(*files)]
    return ",".join(names + ["nn", "nn-ratio"])


def add_method_args(p: argparse.ArgumentParser) -> None:
    """The keypoint and method flags shared by ``eval.coco`` and ``eval.hpatches``."""
    p.add_argument("--features", choices=FEATURES, default="sift")
    p.add_argument("--max-keypoints", type=positive_int, default=1024)
    p.add_argument("--methods", default=None, help=f"comma-separated: verifier and default (the shipped models), nn, nn-ratio, "
                   f"oracle@PX (ground-truth matches at PX pixels: a ceiling, uses the true homography), checkpoint files, run "
                   f"folders or verifier files; each may end in +refiner (sub-pixel refinement of the matched positions by the "
                   f"shipped learned refiner), +ncc (classical patch correlation) or +FILE (a train.refiner file), e.g. "
                   f"verifier+refiner,nn+ncc (default: {default_methods()})")
    p.add_argument("--compare", nargs="+", type=Path, default=[], metavar="RUN",
                   help="run folders or checkpoints to add to --methods, one table and one plot across them")
    p.add_argument("--match-threshold", type=probability_threshold,
                   help="learned models: match probability threshold in [0, 1) (default: the model's)")
    p.add_argument("--adaptive", action="store_true", help="learned models: early exit and point pruning on")
    p.add_argument("--threads", type=positive_int, default=1,
                   help="learned models: torch threads (default 1: on a CPU shared with another busy process, more threads "
                        "spin-wait for each other and run many times slower; see README)")


def methods_from_args(args: argparse.Namespace) -> dict[str, Method]:
    """``{name: Method}`` from ``--methods``, ``--compare``, ``--match-threshold``, ``--adaptive``."""
    names = [m.strip() for m in (args.methods or default_methods()).split(",") if m.strip()] + [str(r) for r in args.compare]
    if not names:
        raise PygmatchError("--methods is empty: name at least one method")
    overrides = {"early_exit": True, "pruning": True} if args.adaptive else {}
    if args.match_threshold is not None:
        overrides["match_threshold"] = args.match_threshold
    threads = getattr(args, "threads", 1)
    return {name: resolve_method(name, args.features, threads, **overrides) for name in dict.fromkeys(names)}


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
    methods: dict[str, MatchFn | Method],
    features: str = "sift",
    max_keypoints: int = 1024,
    out: str | Path | None = None,
    draw: int | Collection[int] = 3,
    progress: bool = True,
) -> EvalResult:
    """Extract keypoints once per pair, run every method on the same keypoints, score them.

    ``pairs``: a ``PairSet`` or a ``SequencePairs``, anything with ``names``, ``skipped``,
    ``__len__`` and either ``image0``/``image1``/``H_0to1`` or ``load_pair(k)``; the two images of
    a pair may have different sizes (the corner error is taken over image 0's corners, in image-1
    pixels). A pair that cannot be read (``BadPair``) or has fewer than 2 keypoints in an image is
    warned about, listed in ``skipped`` and counted as a failure of every method.

    With ``out``, the matches of the first ``draw`` pairs (or of the pair indices in ``draw``)
    are drawn there (``write_report`` writes the tables and plots)."""
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
            size0, size1 = (im0.shape[1], im0.shape[0]), (im1.shape[1], im1.shape[0])
            t = time.perf_counter()
            kp0, kp1 = extract(im0, features, max_keypoints), extract(im1, features, max_keypoints)
            extract_ms.append((time.perf_counter() - t) * 1e3 / 2)
            if len(kp0) < 2 or len(kp1) < 2:
                fail(f"pair {pairs.names[k]}: only {len(kp0)}/{len(kp1)} keypoints (counted as a failure)")
                continue
            # Every matcher runs before any scoring, so each is timed after the same work; a
            # method's time includes its refinement.
            outputs = {}
            for name, fn in methods.items():
                t = time.perf_counter()
                matches, scores = fn(kp0, kp1, size0, size1, H)
                matches = np.asarray(matches, np.int64).reshape(-1, 2)
                _, points1 = refine_matches(getattr(fn, "refine", None), im0, im1, kp0.xy, kp1.xy, matches)
                outputs[name] = matches, scores, points1
                times[name].append((time.perf_counter() - t) * 1e3)
            gt0, _ = ground_truth_matches(kp0.xy, kp1.xy, H)
            drawn = k < draw if isinstance(draw, int) else k in draw
            for name, (matches, scores, points1) in outputs.items():
                per_pair[name].append(pair_metrics(matches, scores, kp0.xy, kp1.xy, gt0, H, size0, points1=points1))
                if out is not None and drawn:
                    err = np.linalg.norm(warp_points(kp0.xy[matches[:, 0]], H) - points1, axis=1)
                    safe = name.replace("/", "_").replace("\\", "_")
                    viz.draw_matches(im0, im1, kp0.xy, kp1.xy, matches, err < 3.0, out / "matches" / f"{pairs.names[k]}_{safe}.png",
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
