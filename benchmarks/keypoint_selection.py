"""Which SIFT keypoints should fill a budget on real photographs: the strongest, or the strongest
spread over the image (ANMS, ``pygmatch.data.selection``). ``eval.pose`` (the pose development
scenes, OpenCV's and PoseLib's essential matrix) and ``eval.hpatches`` (the real homography pairs)
at each budget with each selection, the same methods and pairs; paired bootstrap intervals of
spread minus strongest for each method at each budget; optionally (``--timing``) the time per
pair of each setting as a ratio to the strongest at the same budget, measured in one run (run it on
a quiet machine).

    python -m benchmarks.keypoint_selection --out benchmarks/results/keypoint-selection
    python -m benchmarks.keypoint_selection --out benchmarks/results/keypoint-selection --timing   # evaluations kept, timing added

The evaluations go to OUT/pose-K-SELECTION and OUT/real-K-SELECTION (kept: a second run scores
them without evaluating again); the summary is OUT/report.md and OUT/metrics.json."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from benchmarks.keypoint_budget import DATA, cell, time_pipelines, timing_table
from pygmatch.commands import eval_hpatches, eval_pose
from pygmatch.data.selection import SELECTIONS
from pygmatch.evaluation.metrics import auc_difference, error_auc

METHODS = "default,nn-ratio+refiner"
POSE_COLUMNS = {"OpenCV": "", "PoseLib": "poselib/"}


def setting(k: int, selection: str) -> str:
    return f"{k}-{selection}"


def evaluate(out: Path, budgets: list[int]) -> None:
    for k in budgets:
        for selection in SELECTIONS:
            s = setting(k, selection)
            flags = ["--max-keypoints", str(k), "--selection", selection, "--methods", METHODS, "--overwrite"]
            if not (out / f"pose-{s}" / "pose_errors.npz").is_file():
                eval_pose.main(["--data", str(DATA / "pose"), "--estimator", "both", *flags, "--out", str(out / f"pose-{s}")])
            if not (out / f"real-{s}" / "corner_errors.npz").is_file():
                eval_hpatches.main(["--data", str(DATA / "real-pairs"), *flags, "--out", str(out / f"real-{s}"), "--draw", "0"])


def timing(budgets: list[int], scene_name: str, pairs: int = 10) -> dict:
    """Seconds per pair of ``TIMED`` (SIFT on both images included) on the first ``pairs`` pairs of
    ``scene_name`` at each setting, best of 3 passes; one thread."""
    return time_pipelines({setting(k, s): {"max_keypoints": k, "selection": s} for k in budgets for s in SELECTIONS}, scene_name, pairs)


def summarise(out: Path, budgets: list[int], timed: dict | None) -> dict:
    names = [setting(k, s) for k in budgets for s in SELECTIONS]
    pose = {s: np.load(out / f"pose-{s}" / "pose_errors.npz") for s in names}
    real = {s: np.load(out / f"real-{s}" / "corner_errors.npz") for s in names}
    by_scene = {s: json.loads((out / f"pose-{s}" / "metrics.json").read_text())["by_scene"] for s in names}
    methods = METHODS.split(",")
    metrics = {"auc": {}, "spread_minus_strongest": {}, "seconds_per_pair": timed}
    lines = ["# Keypoint selection on the real development sets", "",
             "`python -m benchmarks.keypoint_selection`: `eval.pose --estimator both` on `../shared/data/pose` (lund_door, reichstag: "
             "111 pairs, images at most 1024 px, essential matrix at 1 px) and `eval.hpatches` on `../shared/data/real-pairs` (20 pairs, "
             "images at most 640 px, contrast threshold 0.04), SIFT up to K keypoints per image: the strongest, or spread (ANMS among "
             f"4K candidates). Methods {METHODS}. Intervals: 90 % paired bootstrap over the same pairs.", "",
             "| method | K | selection | pose AUC@5 / 10 / 20 OpenCV | PoseLib | reichstag AUC@5 OpenCV / PoseLib | real AUC@3 |",
             "|---|---:|---|---:|---:|---:|---:|"]
    for m in methods:
        for k in budgets:
            for selection in SELECTIONS:
                s = setting(k, selection)
                auc = {f"pose_auc@{t} {e}": 100 * error_auc(pose[s][f"{p}{m}"], (t,))[0] for e, p in POSE_COLUMNS.items() for t in (5, 10, 20)}
                auc["real_auc@3"] = 100 * error_auc(real[s][m], (3,))[0]
                scene = by_scene[s].get("reichstag", {}).get(m, {})
                auc["reichstag_auc@5 OpenCV"], auc["reichstag_auc@5 PoseLib"] = scene.get("auc@5", np.nan), scene.get("poselib/auc@5", np.nan)
                metrics["auc"][f"{m}@{s}"] = auc
                lines.append(f"| {m} | {k} | {selection} | " + " | ".join(
                    " / ".join(f"{auc[f'pose_auc@{t} {e}']:.1f}" for t in (5, 10, 20)) for e in POSE_COLUMNS)
                    + f" | {auc['reichstag_auc@5 OpenCV']:.1f} / {auc['reichstag_auc@5 PoseLib']:.1f} | {auc['real_auc@3']:.1f} |")
    lines += ["", "Spread minus strongest, same budget, same pairs:", "",
              "| method | K | pose AUC@5 OpenCV | pose AUC@5 PoseLib | real AUC@3 |", "|---|---:|---:|---:|---:|"]
    for m in methods:
        for k in budgets:
            a, b = setting(k, "spread"), setting(k, "strongest")
            d = {f"pose_auc@5 {e}": auc_difference(pose[a][f"{p}{m}"], pose[b][f"{p}{m}"], 5) for e, p in POSE_COLUMNS.items()}
            d["real_auc@3"] = auc_difference(real[a][m], real[b][m], 3)
            metrics["spread_minus_strongest"][f"{m}@{k}"] = d
            lines.append(f"| {m} | {k} | {cell(d['pose_auc@5 OpenCV'])} | {cell(d['pose_auc@5 PoseLib'])} | {cell(d['real_auc@3'])} |")
    for scene_name, per_setting in (timed or {}).items():
        lines += timing_table(scene_name, per_setting, ("K", "selection"), lambda label: f"{label.split('-')[0]}-strongest",
                              "the strongest at the same budget")
    lines += ["", "![AUC@5 by budget and selection; the strongest and spread keypoints of one reichstag photograph](keypoint_selection.png)"]
    (out / "report.md").write_text("\n".join(lines) + "\n")
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2, default=float))
    return metrics


def plot(out: Path, budgets: list[int], metrics: dict, budget_drawn: int = 1024) -> None:
    """OUT/keypoint_selection.png: pose AUC@5 against the budget per method, estimator and
    selection; and the ``budget_drawn`` keypoints each selection keeps on one reichstag photograph."""
    import matplotlib  # noqa: PLC0415

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415
    import matplotlib.ticker  # noqa: PLC0415

    from pygmatch.data.features import DEFAULT_CONTRAST_THRESHOLD, detect  # noqa: PLC0415
    from pygmatch.data.images import DEFAULT_RESIZE, downscale, list_images, read_gray  # noqa: PLC0415

    fig, axes = plt.subplots(1, 4, figsize=(17, 4.2), gridspec_kw={"width_ratios": [1, 1, 1.3, 1.3]})
    for ax, estimator in zip(axes[:2], POSE_COLUMNS):
        for m, colour in zip(METHODS.split(","), ("C0", "C1")):
            for selection, style in zip(SELECTIONS, ("--", "-")):
                ax.plot(budgets, [metrics["auc"][f"{m}@{setting(k, selection)}"][f"pose_auc@5 {estimator}"] for k in budgets],
                        style, color=colour, marker="o", label=f"{m}, {selection}")
        ax.set_xscale("log", base=2)
        ax.xaxis.set_minor_locator(matplotlib.ticker.NullLocator())
        ax.set(xticks=budgets, xticklabels=[str(k) for k in budgets], xlabel="keypoints per image",
               ylabel=f"pose AUC@5 ({estimator})", title=f"111 pose pairs, {estimator}")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    image = read_gray(list_images(DATA / "pose" / "reichstag" / "images")[0], None)
    small, _ = downscale(image, DEFAULT_RESIZE)
    for ax, selection in zip(axes[2:], SELECTIONS):
        kp = detect(small, "sift", budget_drawn, DEFAULT_CONTRAST_THRESHOLD, selection)
        ax.imshow(small, cmap="gray")
        ax.scatter(kp.xy[:, 0], kp.xy[:, 1], s=3, c="yellow")
        ax.set(title=f"{budget_drawn} SIFT keypoints, {selection}", xticks=[], yticks=[])
    fig.tight_layout()
    fig.savefig(out / "keypoint_selection.png", dpi=80)
    plt.close(fig)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(prog="python -m benchmarks.keypoint_selection", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, default=Path("benchmarks/results/keypoint-selection"))
    p.add_argument("--budgets", default="1024,2048,4096")
    p.add_argument("--timing", action="store_true", help="also time the pipelines at each setting on lund_door and reichstag (a quiet machine)")
    args = p.parse_args(argv)
    budgets = [int(k) for k in args.budgets.split(",")]
    args.out.mkdir(parents=True, exist_ok=True)
    evaluate(args.out, budgets)
    earlier = json.loads((args.out / "metrics.json").read_text()).get("seconds_per_pair") if (args.out / "metrics.json").is_file() else None
    metrics = summarise(args.out, budgets, {scene: timing(budgets, scene) for scene in ("lund_door", "reichstag")} if args.timing else earlier)
    plot(args.out, budgets, metrics)
    print((args.out / "report.md").read_text())


if __name__ == "__main__":
    main()
