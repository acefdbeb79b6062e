"""How many keypoints the pipelines should take on real photographs, and at which SIFT contrast
threshold: ``eval.pose`` (the pose development scenes) and ``eval.hpatches`` (the real homography
pairs) at each budget K and threshold T, the same methods and pairs, then paired bootstrap
intervals of each method across budgets and thresholds, and of ``default`` against
``nn-ratio+refiner`` at each setting; optionally (``--timing``) the time per pair at each setting as
a ratio to the first, measured in one run (run it on a quiet machine).

    python -m benchmarks.keypoint_budget --out benchmarks/results/keypoint-budget
    python -m benchmarks.keypoint_budget --out benchmarks/results/keypoint-budget --timing    # evaluations kept, timing added

The evaluations go to OUT/pose-K-T and OUT/real-K-T (kept: a second run scores them without
evaluating again); the summary is OUT/report.md and OUT/metrics.json."""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from pygmatch.commands import eval_hpatches, eval_pose
from pygmatch.evaluation.metrics import auc_difference, error_auc

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
METHODS = "default,nn-ratio+refiner,nn-ratio,nn"
TIMED = ("default", "nn-ratio+refiner")


def setting(k: int, t: float) -> str:
    return f"{k}-{t:g}"


def evaluate(out: Path, settings: list[tuple[int, float]]) -> None:
    for k, t in settings:
        # the strongest keypoints, as measured before the selection existed (benchmarks.keypoint_selection compares them)
        flags = ["--max-keypoints", str(k), "--contrast-threshold", f"{t:g}", "--selection", "strongest", "--methods", METHODS, "--overwrite"]
        if not (out / f"pose-{setting(k, t)}" / "pose_errors.npz").is_file():
            eval_pose.main(["--data", str(DATA / "pose"), *flags, "--out", str(out / f"pose-{setting(k, t)}")])
        if not (out / f"real-{setting(k, t)}" / "corner_errors.npz").is_file():
            eval_hpatches.main(["--data", str(DATA / "real-pairs"), *flags, "--out", str(out / f"real-{setting(k, t)}"), "--draw", "0"])


def timing(settings: list[tuple[int, float]], scene_name: str, pairs: int = 10) -> dict:
    """Seconds per pair of ``TIMED`` (SIFT on both images included) on the first ``pairs`` pairs of
    ``scene_name`` at each setting, best of 3 passes; one thread."""
    return time_pipelines({setting(k, t): {"max_keypoints": k, "contrast_threshold": t, "selection": "strongest"} for k, t in settings},
                          scene_name, pairs)


def time_pipelines(settings: dict[str, dict], scene_name: str, pairs: int = 10) -> dict:
    """``{"NAME@LABEL": seconds per pair}`` of each ``TIMED`` pipeline loaded with each setting's
    ``Pipeline.load`` options, on the first ``pairs`` pairs of ``scene_name`` (SIFT on both images
    included), best of 3 passes after a warm-up; one thread."""
    import torch  # noqa: PLC0415

    from pygmatch.data.scenes import load_scene  # noqa: PLC0415
    from pygmatch.pipeline import Pipeline  # noqa: PLC0415

    torch.set_num_threads(1)
    scene = load_scene(DATA / "pose" / scene_name, pairs)
    out = {}
    for name in TIMED:
        for label, options in settings.items():
            pipe = Pipeline.load(name, **options)
            pipe.match(scene.path(scene.pairs[0][0]), scene.path(scene.pairs[0][1]))  # warm-up
            out[f"{name}@{label}"] = min(_timed(pipe, scene) for _ in range(3)) / len(scene.pairs)
    return out


def _timed(pipe, scene) -> float:
    start = time.perf_counter()
    for a, b in scene.pairs:
        pipe.match(scene.path(a), scene.path(b))
    return time.perf_counter() - start


def timing_table(scene_name: str, per_setting: dict, columns: tuple[str, str], reference, reference_text: str) -> list[str]:
    """Markdown lines of ``time_pipelines``' seconds per pair (keys ``NAME@A-B``, columns ``A``, ``B``),
    each as a ratio to the same pipeline at ``reference(label)`` (blank where that was not timed)."""
    lines = ["", f"Seconds per pair (SIFT on both images, matching, refinement; one thread; first 10 {scene_name} pairs, "
             f"photographs downscaled to 1024 px; best of 3 passes; ratio to {reference_text}, same run):", "",
             f"| pipeline | {columns[0]} | {columns[1]} | s/pair | ratio |", "|---|---:|---|---:|---:|"]
    for key, seconds in per_setting.items():
        name, label = key.split("@")
        base = per_setting.get(f"{name}@{reference(label)}")
        ratio = f"{seconds / base:.2f}" if base else ""
        lines.append(f"| {name} | {' | '.join(label.split('-'))} | {seconds:.3f} | {ratio} |")
    return lines


def cell(d) -> str:
    return f"{d[0]:+.1f} [{d[1]:+.1f}, {d[2]:+.1f}]"


def summarise(out: Path, settings: list[tuple[int, float]], timed: dict) -> dict:
    names = [setting(k, t) for k, t in settings]
    pose = {s: np.load(out / f"pose-{s}" / "pose_errors.npz") for s in names}
    real = {s: np.load(out / f"real-{s}" / "corner_errors.npz") for s in names}
    by_scene = {s: json.loads((out / f"pose-{s}" / "metrics.json").read_text())["by_scene"] for s in names}
    methods = METHODS.split(",")
    metrics = {"auc": {}, "differences": {}, "default_minus_nn_ratio_refiner": {}, "seconds_per_pair": timed}
    for s in names:
        for m in methods:
            metrics["auc"][f"{m}@{s}"] = {"pose_auc@5": 100 * error_auc(pose[s][m], (5,))[0], "pose_auc@10": 100 * error_auc(pose[s][m], (10,))[0],
                                          "pose_auc@20": 100 * error_auc(pose[s][m], (20,))[0], "real_auc@3": 100 * error_auc(real[s][m], (3,))[0]}
            for scene, by_method in by_scene[s].items():
                metrics["auc"][f"{m}@{s}"][f"{scene}_auc@5"] = by_method[m]["auc@5"]
        metrics["default_minus_nn_ratio_refiner"][s] = {
            "pose_auc@5": auc_difference(pose[s]["default"], pose[s]["nn-ratio+refiner"], 5),
            "real_auc@3": auc_difference(real[s]["default"], real[s]["nn-ratio+refiner"], 3)}
    # Each setting against the one before it with the same threshold (a larger budget), and against
    # the first threshold at the same budget.
    comparisons = []
    for k, t in settings:
        smaller = [kk for kk, tt in settings if tt == t and kk < k]
        if smaller:
            comparisons.append(((k, t), (max(smaller), t)))
        if t != settings[0][1] and (k, settings[0][1]) in settings:
            comparisons.append(((k, t), (k, settings[0][1])))
    for m in TIMED:
        for a, b in comparisons:
            metrics["differences"][f"{m}: {setting(*a)} minus {setting(*b)}"] = {
                "pose_auc@5": auc_difference(pose[setting(*a)][m], pose[setting(*b)][m], 5),
                "real_auc@3": auc_difference(real[setting(*a)][m], real[setting(*b)][m], 3)}
    lines = ["# Keypoint budget and contrast threshold on the real development sets", "",
             f"`python -m benchmarks.keypoint_budget`: `eval.pose` on `../shared/data/pose` (lund_door, reichstag: 111 pairs, images at "
             "most 1024 px, OpenCV essential matrix at 1 px) and `eval.hpatches` on `../shared/data/real-pairs` (20 pairs, images at most "
             f"640 px), SIFT up to K keypoints per image at contrast threshold T (OpenCV's units; OpenCV's default 0.04, COLMAP's 0.02), "
             f"methods {METHODS}. Intervals: 90 % paired bootstrap over the same pairs.", "",
             "| method | K | T | pose AUC@5 | AUC@10 | AUC@20 | lund_door AUC@5 | reichstag AUC@5 | real AUC@3 |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for m in methods:
        for k, t in settings:
            a = metrics["auc"][f"{m}@{setting(k, t)}"]
            lines.append(f"| {m} | {k} | {t:g} | {a['pose_auc@5']:.1f} | {a['pose_auc@10']:.1f} | {a['pose_auc@20']:.1f} | "
                         f"{a.get('lund_door_auc@5', float('nan')):.1f} | {a.get('reichstag_auc@5', float('nan')):.1f} | {a['real_auc@3']:.1f} |")
    lines += ["", "Differences (K-T minus K-T):", "", "| difference | pose AUC@5 | real AUC@3 |", "|---|---:|---:|"]
    lines += [f"| {name} | {cell(d['pose_auc@5'])} | {cell(d['real_auc@3'])} |" for name, d in metrics["differences"].items()]
    lines += [f"| default minus nn-ratio+refiner at {s} | {cell(d['pose_auc@5'])} | {cell(d['real_auc@3'])} |"
              for s, d in metrics["default_minus_nn_ratio_refiner"].items()]
    for scene_name, per_setting in (timed or {}).items():
        lines += timing_table(scene_name, per_setting, ("K", "T"), lambda label: names[0], "the first setting")
    (out / "report.md").write_text("\n".join(lines) + "\n")
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2, default=float))
    return metrics


def main(argv=None) -> None:
    p = argparse.ArgumentParser(prog="python -m benchmarks.keypoint_budget", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, default=Path("benchmarks/results/keypoint-budget"))
    p.add_argument("--budgets", default="1024,2048,4096")
    p.add_argument("--thresholds", default="0.04,0.02", help="SIFT contrast thresholds; the first is each comparison's reference")
    p.add_argument("--timing", action="store_true",
                   help="also time the pipelines at each setting on lund_door and reichstag (a quiet machine)")
    args = p.parse_args(argv)
    settings = [(int(k), float(t)) for t in args.thresholds.split(",") for k in args.budgets.split(",")]
    args.out.mkdir(parents=True, exist_ok=True)
    evaluate(args.out, settings)
    earlier = json.loads((args.out / "metrics.json").read_text()).get("seconds_per_pair") if (args.out / "metrics.json").is_file() else None
    timed = {scene: timing(settings, scene) for scene in ("lund_door", "reichstag")} if args.timing else earlier
    summarise(args.out, settings, timed if isinstance(timed, dict) and all(isinstance(v, dict) for v in timed.values()) else None)
    print((args.out / "report.md").read_text())


if __name__ == "__main__":
    main()
