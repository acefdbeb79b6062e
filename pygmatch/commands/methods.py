"""The method flags ``eval.coco``, ``eval.hpatches`` and ``eval.pose`` share: which pipelines to evaluate, on which keypoints."""
from __future__ import annotations

import argparse
from pathlib import Path

from pygmatch.commands.flags import FEATURES_HELP, add_selection_arg, contrast_threshold, positive_int, probability_threshold
from pygmatch.data.features import BENCHMARK_CONTRAST_THRESHOLD, BENCHMARK_MAX_KEYPOINTS, FEATURES, SYNTHESIS_MIN_INLIERS, VIEWS
from pygmatch.data.homography import ESTIMATORS
from pygmatch.weights import shipped_methods


ESTIMATOR_HELP = "RANSAC homography: OpenCV's findHomography (default) or PoseLib's LO-RANSAC (pip install poselib)"


def add_method_args(p: argparse.ArgumentParser, estimators=ESTIMATORS, estimator_help: str = ESTIMATOR_HELP,
                    max_keypoints: int = BENCHMARK_MAX_KEYPOINTS, threshold: float = BENCHMARK_CONTRAST_THRESHOLD,
                    selection: str | None = "strongest") -> None:
    """The method flags; ``max_keypoints``, ``threshold`` and ``selection`` are their defaults (``selection`` None:
    the pipelines', ``features.default_selection``)."""
    p.add_argument("--features", choices=FEATURES, default=None, help=FEATURES_HELP)
    p.add_argument("--max-keypoints", type=positive_int, default=max_keypoints, help="per image (default %(default)s)")
    p.add_argument("--contrast-threshold", type=contrast_threshold, default=threshold,
                   help="SIFT's contrast threshold, OpenCV's units (default %(default)s; COLMAP's is 0.02)")
    add_selection_arg(p, selection)
    p.add_argument("--methods", default=None,
                   help=f"comma-separated pipelines MATCHER[+REFINER]: default (= candidate-graph+refiner at threshold 0.2, the "
                        f"shipped best), matchers candidate-graph (the shipped graph network), nn, nn-ratio, "
                        f"nn-oracle@PX (nn's matches within PX "
                        f"pixels of the truth: a perfect selector), oracle@PX (ground-truth matches: a ceiling), model files, "
                        f"checkpoints or run folders of train.run; refiners refiner (learned), ncc (patch correlation) or a train.refiner run "
                        f"or file, e.g. nn-ratio+refiner; anchors with their own keypoints (the anchors extra: make anchors): "
                        f"aliked+lightglue, disk+lightglue, xfeat+lighterglue (default: {','.join(shipped_methods())})")
    p.add_argument("--compare", nargs="+", type=Path, default=[], metavar="RUN",
                   help="run folders or checkpoints to add to --methods, one table and one plot across them")
    p.add_argument("--match-threshold", type=probability_threshold,
                   help="the graph network: match probability threshold in [0, 1) (default: the model's, or the preset's)")
    p.add_argument("--estimator", choices=estimators, default="opencv", help=estimator_help)
    p.add_argument("--views", choices=VIEWS, default="plain",
                   help="auto: on-demand view synthesis, ASIFT keypoints matched where the plain match has fewer than "
                        f"{SYNTHESIS_MIN_INLIERS} fundamental-matrix inliers (default plain)")
    p.add_argument("--threads", type=positive_int, default=1,
                   help="learned models: torch threads (default 1: on a CPU shared with another busy process, more threads "
                        "spin-wait for each other and run many times slower; see docs/evaluation.md)")


def method_names(args: argparse.Namespace, default: list[str] | None = None) -> list[str]:
    """The method names of ``--methods`` (else ``default``, else the shipped ones) and ``--compare``."""
    names = [m.strip() for m in args.methods.split(",") if m.strip()] if args.methods is not None else (default or shipped_methods())
    return names + [str(r) for r in args.compare]


def methods_from_args(args: argparse.Namespace) -> dict:
    """``{name: Pipeline}`` from ``--methods``, ``--compare``, ``--match-threshold``."""
    from pygmatch.evaluation.evaluate import load_pipelines  # noqa: PLC0415 (torch: after the flags are parsed)

    return load_pipelines(method_names(args), args.features, args.max_keypoints, args.threads, views=args.views,
                          contrast_threshold=args.contrast_threshold, selection=args.selection, match_threshold=args.match_threshold)

