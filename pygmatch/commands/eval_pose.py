"""``python -m eval.pose``: relative pose on real photograph pairs with known cameras.

Every pair of every scene (a COLMAP model of the true cameras beside the images, text or binary, or a
SuperGlue-style pair file; see ``pygmatch.data.scenes``) is matched by each method; the essential
matrix is estimated by RANSAC (1 px; OpenCV's, PoseLib's or both) on the matched positions, and the
pose error is the larger of the rotation error and the angle between the translation directions. AUC
of the pose error at 5/10/20 degrees, overall and per scene; the first method against each other
with a paired bootstrap interval."""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from pygmatch.data.features import DEFAULT_CONTRAST_THRESHOLD, DEFAULT_MAX_KEYPOINTS
from pygmatch.data.homography import ESTIMATORS
from pygmatch.data.images import DEFAULT_RESIZE
from pygmatch.files import writable_folder, write_text, write_with
from pygmatch.weights import shipped_methods

from pygmatch.commands.flags import ArgumentParser, command_name, positive, positive_int, run_cli
from pygmatch.commands.methods import add_method_args, method_names

DEFAULT_OUT = Path("eval-out/pose")
# The development scenes (lund_door, reichstag) beside a checkout; else the embedded pose-mini (4 lund_door photographs).
DEV_DATA = (Path("../shared/data/pose"), Path(__file__).resolve().parents[2].parent / "shared" / "data" / "pose")
ESTIMATOR_NAMES = {"opencv": "OpenCV", "poselib": "PoseLib"}


def estimators_of(choice: str) -> tuple[str, ...]:
    """``--estimator``: one of ``ESTIMATORS`` or ``both``."""
    return tuple(ESTIMATORS) if choice == "both" else (choice,)


def columns(estimators: tuple[str, ...]) -> list[tuple[str, str]]:
    """The table's columns: AUC@5/10/20 per estimator (OpenCV's unprefixed), then matches, inliers and
    failures per estimator, pairs, ms per pair."""
    from pygmatch.evaluation.pose import column  # noqa: PLC0415

    def label(e, name):
        return name if estimators == ("opencv",) else f"{name} {ESTIMATOR_NAMES[e]}"

    auc = [(label(e, f"AUC@{t}"), column(e, f"auc@{t}")) for e in estimators for t in (5, 10, 20)]
    return (auc + [("matches", "matches")] + [(label(e, "inliers"), column(e, "inliers")) for e in estimators]
            + [("pairs", "pairs")] + [(label(e, "failed"), column(e, "failed")) for e in estimators] + [("ms/pair", "ms_per_pair")])


def default_data() -> Path:
    from pygmatch.data.scenes import EMBEDDED_SCENES  # noqa: PLC0415

    return next((folder for folder in DEV_DATA if folder.is_dir()), EMBEDDED_SCENES)


def parser() -> argparse.ArgumentParser:
    p = ArgumentParser(prog=command_name("python -m eval.pose"), description=__doc__,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", type=Path, default=None,
                   help="folder of scene folders, or one scene folder (SCENE/images/, SCENE/gt/cameras.txt and images.txt or "
                        "cameras.bin and images.bin, optional SCENE/pairs.txt; default: ../shared/data/pose of a checkout, else the "
                        "embedded pose-mini), or a SuperGlue-style pair file (name0 name1 rot0 rot1 K0 K1 T_0to1 per line; images under --images)")
    p.add_argument("--images", type=Path, default=None,
                   help="with a pair file as --data: the folder its image names are relative to (default: the file's folder)")
    p.add_argument("--max-pairs-per-scene", type=positive_int, default=None,
                   help="only the first N pairs of each scene (pairs.txt order, else every pair sorted by name)")
    p.add_argument("--ransac-px", type=positive(float), default=1.0, help="essential-matrix RANSAC threshold in pixels (default 1)")
    p.add_argument("--resize", type=positive_int, default=DEFAULT_RESIZE,
                   help=f"longer image side keypoints are found at, px (default {DEFAULT_RESIZE}, the pipelines'; never enlarged)")
    add_method_args(p, (*ESTIMATORS, "both"),
                    "essential-matrix RANSAC: OpenCV's findEssentialMat + recoverPose (default), PoseLib's estimate_relative_pose "
                    "(LO-RANSAC; pip install poselib, or the sfm extra) or both, side by side, on the same matches",
                    max_keypoints=DEFAULT_MAX_KEYPOINTS, threshold=DEFAULT_CONTRAST_THRESHOLD, selection=None)
    p.add_argument("--out", type=Path, default=None,
                   help=f"folder for report.md, metrics.json and pose_errors.npz (default: {DEFAULT_OUT}, or when that holds an "
                        f"earlier evaluation the first free {DEFAULT_OUT}-2, {DEFAULT_OUT}-3, ...)")
    p.add_argument("--overwrite", action="store_true", help="replace an earlier evaluation in --out")
    return p


def _difference_table(diffs: dict, reference: str, estimators: tuple[str, ...] = ("opencv",)) -> str:
    from pygmatch.evaluation.pose import column  # noqa: PLC0415

    keys = [(f"AUC@{t}" if estimators == ("opencv",) else f"AUC@{t} {ESTIMATOR_NAMES[e]}", column(e, f"auc@{t}"))
            for e in estimators for t in (5, 10, 20)]
    lines = [f"| {reference} minus | " + " | ".join(f"{label} [90% CI]" for label, _ in keys) + " |", "|---|" + "---:|" * len(keys)]
    for other, by_t in diffs.items():
        cells = [f"{d:+.1f} [{lo:+.1f}, {hi:+.1f}]" for d, lo, hi in (by_t[key] for _, key in keys)]
        lines.append(f"| {other} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv=None) -> int:
    args = parser().parse_args(argv)
    estimators = estimators_of(args.estimator)
    # imported after parsing: --help answers without loading torch
    from pygmatch.data.homography import check_estimator  # noqa: PLC0415
    from pygmatch.data.scenes import load_scenes  # noqa: PLC0415
    from pygmatch.evaluation.pose import evaluate_pose, load_pose_pipelines, paired_differences  # noqa: PLC0415
    from pygmatch.evaluation.report import clear_previous_report, default_out, format_group_table, format_table  # noqa: PLC0415

    start = time.perf_counter()
    for e in estimators:  # PoseLib missing: one line before any work
        check_estimator(e, "relative-pose")
    if args.out is None:
        args.out = default_out(DEFAULT_OUT, args.overwrite)
    writable_folder(args.out, "--out")
    clear_previous_report(args.out, args.overwrite, remove=False)
    data = args.data or default_data()
    scenes = load_scenes(data, args.max_pairs_per_scene, args.images)
    names = method_names(args, [m for m in shipped_methods() if "oracle@" not in m])  # the ceilings need a homography
    methods = load_pose_pipelines(names, args.features, args.max_keypoints, args.threads, args.resize, views=args.views,
                                  contrast_threshold=args.contrast_threshold, selection=args.selection, match_threshold=args.match_threshold)
    n_pairs = sum(len(s.pairs) for s in scenes)
    print(f"{len(scenes)} scene(s), {n_pairs} pairs, {len(methods)} method(s)", flush=True)

    def progress(done, total):
        if done % 10 == 0 or done == total:
            print(f"  {done}/{total} pairs ({time.perf_counter() - start:.0f} s)", flush=True)

    result = evaluate_pose(scenes, methods, args.ransac_px, progress=progress, estimators=estimators)
    reference = next(iter(methods))
    diffs = paired_differences(result, reference)

    clear_previous_report(args.out, args.overwrite)
    scene_list = ", ".join(f"{s.name} ({len(s.pairs)} pairs)" for s in scenes)
    kinds = list(dict.fromkeys(pipe.extractor.features for pipe in methods.values()))
    selections = list(dict.fromkeys(getattr(pipe.extractor, "selection", "strongest") for pipe in methods.values()))
    context = (f"Data: {data}: {scene_list}. {', '.join(k.upper() if k in ('sift', 'orb') else k for k in kinds)}, up to "
               f"{args.max_keypoints} keypoints (contrast threshold {args.contrast_threshold:g}; {' or '.join(selections)}) "
               f"found on images downscaled to "
               f"at most {next(iter(methods.values())).extractor.resize} px; essential matrix by "
               f"{' and by '.join(ESTIMATOR_NAMES[e] for e in estimators)} RANSAC at "
               f"{args.ransac_px:g} px on the matched (refined) positions in original pixels, intrinsics from the "
               f"{'pair file' if data.is_file() else 'COLMAP model (distortion ignored)'}. "
               f"Pose error = max(rotation error, translation-direction error), degrees; "
               f"a pair without an estimate counts as infinite error (`failed`). "
               f"Matches and RANSAC inliers: mean per pair. Keypoint extraction per image (median): "
               f"{', '.join(f'{k} {ms:.0f} ms' for k, ms in result.extract_ms.items())}.")
    overall = format_table(result.summary, columns(estimators))
    by_scene = format_group_table(result.by_scene, "scene", columns=columns(estimators))
    by_rotation = format_group_table(result.by_rotation, "true rotation", columns=columns(estimators))
    sections = ["# pygmatch relative-pose evaluation", "", context, "", overall, "", "## By scene", "", by_scene, "",
                "## By true rotation", "", "The pairs grouped by the angle of their true relative rotation.", "", by_rotation, ""]
    if diffs:
        sections += ["## Paired differences", "",
                     f"AUC of `{reference}` (the first method) minus each other method's, percentage points, with a 90 % paired "
                     f"bootstrap interval over the {n_pairs} pairs (`pygmatch.evaluation.metrics.auc_difference`); an interval "
                     f"containing 0 says these pairs cannot tell the two apart.", "", _difference_table(diffs, reference, estimators), ""]
    write_text(args.out / "report.md", "\n".join(sections))
    write_text(args.out / "metrics.json", json.dumps({
        "overall": result.summary, "by_scene": result.by_scene, "by_rotation": result.by_rotation,
        "paired": {o: {k: list(v) for k, v in d.items()} for o, d in diffs.items()}, "reference": reference,
        "estimators": list(estimators),
        "pairs": [list(p) for p in result.pairs]}, indent=2))
    write_with(args.out / "pose_errors.npz", lambda path: np.savez(path, **result.errors))
    print(context)
    print(overall)
    print("\nby scene:")
    print(by_scene)
    if diffs:
        print()
        print(_difference_table(diffs, reference, estimators))
    print(f"{n_pairs} pairs in {len(scenes)} scene(s); total {time.perf_counter() - start:.1f} s; report in {args.out}/report.md")
    return 0


def cli() -> None:
    """The ``pygmatch-pose`` console script: ``main`` with one-line errors and exit statuses."""
    run_cli(main, sys.argv[1:])


if __name__ == "__main__":
    cli()
