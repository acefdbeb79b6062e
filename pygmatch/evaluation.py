"""Evaluate matchers on a pair set: the library behind ``python -m eval.coco``."""
from __future__ import annotations

import json
import math
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
from threadpoolctl import threadpool_limits
from tqdm import tqdm

from .baselines import BASELINES
from .data.pairs import PairSet
from .errors import PygmatchError
from .features import Keypoints, extract
from .geometry import warp_points
from .ground_truth import ground_truth_matches
from .metrics import AUC_THRESHOLDS, pair_metrics, summarize
from . import viz

MatchFn = Callable[[Keypoints, Keypoints, tuple[int, int]], tuple[np.ndarray, np.ndarray]]


def resolve_method(name: str, features: str = "sift", **overrides) -> MatchFn:
    """A baseline name (``nn``, ``nn-ratio``), ``default`` (the shipped model) or the path of a
    trained checkpoint / run folder. A model trained on other features than ``features`` is refused;
    ``overrides`` set inference options of learned models (``match_threshold``, ``early_exit``, ...)."""
    if name in BASELINES:
        fn = BASELINES[name]
        return lambda kp0, kp1, size: fn(kp0, kp1)
    if name == "default" or Path(name).exists():
        from .matcher import Matcher  # noqa: PLC0415 (only needed for learned methods)

        matcher = Matcher.load(name, **overrides)
        if matcher.cfg.features != features:
            raise PygmatchError(f"{name}: trained on {matcher.cfg.features} keypoints, but this evaluation uses {features} (--features)")
        return matcher.match_keypoints_fn()
    raise PygmatchError(f"unknown method {name!r}: choose from default, {', '.join(BASELINES)} or give a checkpoint path")


UNMATCHABLE = {"matches": 0, "precision": math.nan, "recall": math.nan, "ransac_error": math.inf, "dlt_error": math.inf}


@dataclass
class EvalResult:
    summary: dict[str, dict]
    errors: dict[str, np.ndarray]  # per method: RANSAC corner error of every evaluated pair
    skipped: list[str] = field(default_factory=list)
    extract_ms: float = math.nan


def evaluate(
    pairs: PairSet,
    methods: dict[str, MatchFn],
    features: str = "sift",
    max_keypoints: int = 1024,
    out: str | Path | None = None,
    draw: int = 3,
    progress: bool = True,
) -> EvalResult:
    """Extract keypoints once per pair, run every method on the same keypoints, score them.

    With ``out``, the matches of the first ``draw`` pairs are drawn there (``write_report``
    writes the tables and plots)."""
    out = Path(out) if out is not None else None
    if out is not None:
        (out / "matches").mkdir(parents=True, exist_ok=True)
    per_pair = {name: [] for name in methods}
    times = {name: [] for name in methods}
    skipped = list(pairs.skipped)
    extract_ms = []
    # numpy's BLAS threads keep spinning after each call (the nn baselines, the DLT); on a small
    # CPU they took the cores from whichever torch matcher ran next, slowing it by up to 2x.
    # The matrices here are small, so one BLAS thread costs the baselines little.
    with threadpool_limits(limits=1, user_api="blas"):
        for k in tqdm(range(len(pairs)), desc="evaluating", unit="pair", disable=not progress):
            im0, im1, H = pairs.image0[k], pairs.image1[k], pairs.H_0to1[k]
            t = time.perf_counter()
            kp0, kp1 = extract(im0, features, max_keypoints), extract(im1, features, max_keypoints)
            extract_ms.append((time.perf_counter() - t) * 1e3 / 2)
            if len(kp0) < 2 or len(kp1) < 2:
                # Not matched, but not dropped either: it counts as a failed estimate for every
                # method, so the AUCs stay comparable with sets where it has keypoints.
                msg = f"pair {pairs.names[k]}: only {len(kp0)}/{len(kp1)} keypoints (counted as a failure)"
                warnings.warn(f"skipping {msg}", stacklevel=2)
                skipped.append(msg)
                for name in methods:
                    per_pair[name].append(UNMATCHABLE)
                continue
            # Every matcher runs before any scoring, so each is timed after the same work.
            outputs = {}
            for name, fn in methods.items():
                t = time.perf_counter()
                outputs[name] = fn(kp0, kp1, pairs.size)
                times[name].append((time.perf_counter() - t) * 1e3)
            gt0, _ = ground_truth_matches(kp0.xy, kp1.xy, H)
            for name, (matches, scores) in outputs.items():
                per_pair[name].append(pair_metrics(matches, scores, kp0.xy, kp1.xy, gt0, H, pairs.size))
                if out is not None and k < draw:
                    err = np.linalg.norm(warp_points(kp0.xy[matches[:, 0]], H) - kp1.xy[matches[:, 1]], axis=1)
                    safe = name.replace("/", "_").replace("\\", "_")
                    viz.draw_matches(im0, im1, kp0.xy, kp1.xy, matches, err < 3.0, out / "matches" / f"{pairs.names[k]}_{safe}.png",
                                     title=f"{name}: {int((err < 3).sum())}/{len(matches)} correct")
    if not any(times.values()):
        raise PygmatchError("no pair could be evaluated (every pair has fewer than 2 keypoints)")
    summary = {}
    for name in methods:
        s = summarize(per_pair[name])
        s["ms_per_pair"] = float(np.median(times[name]))
        s["skipped"] = len(skipped)
        summary[name] = s
    errors = {n: np.array([p["ransac_error"] for p in per_pair[n]]) for n in methods}
    return EvalResult(summary, errors, skipped, float(np.median(extract_ms)))


COLUMNS = [("P", "precision"), ("R", "recall")] + [(f"AUC@{t}", f"auc@{t}") for t in AUC_THRESHOLDS] + \
    [(f"DLT@{t}", f"dlt_auc@{t}") for t in AUC_THRESHOLDS] + [("matches", "matches"), ("ms/pair", "ms_per_pair")]


def format_table(summary: dict[str, dict]) -> str:
    """A markdown table, one row per method."""
    width = max(len("method"), *(len(n) for n in summary))
    cols = [(c.rjust(6), key) for c, key in COLUMNS]
    head = "| " + "method".ljust(width) + " | " + " | ".join(c for c, _ in cols) + " |"
    rule = "|" + "-" * (width + 2) + "|" + "|".join("-" * (len(c) + 1) + ":" for c, _ in cols) + "|"
    rows = [head, rule]
    for name, s in summary.items():
        cells = [f"{s[key]:.1f}".rjust(len(c)) for c, key in cols]
        rows.append("| " + name.ljust(width) + " | " + " | ".join(cells) + " |")
    return "\n".join(rows)


def write_report(result: EvalResult, out: Path, context: str = "") -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "metrics.json").write_text(json.dumps(result.summary, indent=2))
    # Per-pair errors (inf = no homography), so models can be compared pair by pair later
    # (pygmatch.metrics.auc_difference).
    np.savez(out / "corner_errors.npz", **result.errors)
    viz.plot_error_curves(result.errors, out / "corner_error.png", title="RANSAC corner error")
    viz.plot_bars(result.summary, ["precision", "recall", "auc@3", "auc@5"], out / "precision_recall.png")
    any_method = next(iter(result.summary.values()))
    lines = [
        "# pygmatch evaluation",
        "",
        context,
        f"Pairs evaluated: {any_method['pairs']}, skipped: {len(result.skipped)}. "
        f"Keypoint extraction: {result.extract_ms:.1f} ms per image (median). "
        "P/R in %, AUC of the corner-error curve at 1/3/5/10 px with RANSAC (3 px) and with weighted DLT.",
        "",
        format_table(result.summary),
        "",
        "![corner error](corner_error.png) ![precision/recall](precision_recall.png)",
        "",
    ]
    if result.skipped:
        lines += ["## Skipped", ""] + [f"- {s}" for s in result.skipped] + [""]
    (out / "report.md").write_text("\n".join(lines))
