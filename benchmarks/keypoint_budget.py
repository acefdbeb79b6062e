"""How many keypoints the pipelines should take on real photographs: ``eval.pose`` (the pose
development scenes) and ``eval.hpatches`` (the real homography pairs) at each budget, the same
methods and pairs, then paired bootstrap intervals of each method across budgets and of ``default``
against ``nn-ratio+refiner`` at each budget; optionally (``--timing``) the matching time per pair
at each budget as a ratio to the first, measured in one run (run it on a quiet machine).

    python -m benchmarks.keypoint_budget --out benchmarks/results/keypoint-budget
    python -m benchmarks.keypoint_budget --out benchmarks/results/keypoint-budget --timing    # evaluations kept, timing added

The evaluations go to OUT/pose-K and OUT/real-K (kept: a second run scores them without
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


def evaluate(out: Path, budgets: list[int]) -> None:
    for k in budgets:
        if not (out / f"pose-{k}" / "pose_errors.npz").is_file():
            eval_pose.main(["--data", str(DATA / "pose"), "--max-keypoints", str(k), "--methods", METHODS, "--out", str(out / f"pose-{k}"),
                            "--overwrite"])
        if not (out / f"real-{k}" / "corner_errors.npz").is_file():
            eval_hpatches.main(["--data", str(DATA / "real-pairs"), "--max-keypoints", str(k), "--methods", METHODS, "--out",
                                str(out / f"real-{k}"), "--draw", "0", "--overwrite"])


def timing(budgets: list[int], pairs: int = 10) -> dict:
    """Seconds per pair of ``default`` and ``nn-ratio+refiner`` (extraction included) on the first
    ``pairs`` lund_door pairs at each budget, best of 3 passes; one thread."""
    import torch  # noqa: PLC0415

    from pygmatch.data.scenes import load_scene  # noqa: PLC0415
    from pygmatch.pipeline import Pipeline  # noqa: PLC0415

    torch.set_num_threads(1)
    scene = load_scene(DATA / "pose" / "lund_door", pairs)
    out = {}
    for name in ("default", "nn-ratio+refiner"):
        for k in budgets:
            pipe = Pipeline.load(name, max_keypoints=k)
            pipe.match(scene.path(scene.pairs[0][0]), scene.path(scene.pairs[0][1]))  # warm-up
            best = min(_timed(pipe, scene) for _ in range(3))
            out[f"{name}@{k}"] = best / len(scene.pairs)
    return out


def _timed(pipe, scene) -> float:
    start = time.perf_counter()
    for a, b in scene.pairs:
        pipe.match(scene.path(a), scene.path(b))
    return time.perf_counter() - start


def cell(d) -> str:
    return f"{d[0]:+.1f} [{d[1]:+.1f}, {d[2]:+.1f}]"


def summarise(out: Path, budgets: list[int], timed: dict | None) -> dict:
    pose = {k: np.load(out / f"pose-{k}" / "pose_errors.npz") for k in budgets}
    real = {k: np.load(out / f"real-{k}" / "corner_errors.npz") for k in budgets}
    methods = METHODS.split(",")
    metrics = {"auc": {}, "across_budgets": {}, "default_minus_nn_ratio_refiner": {}, "seconds_per_pair": timed}
    for k in budgets:
        for m in methods:
            metrics["auc"][f"{m}@{k}"] = {"pose_auc@5": 100 * error_auc(pose[k][m], (5,))[0], "pose_auc@10": 100 * error_auc(pose[k][m], (10,))[0],
                                          "pose_auc@20": 100 * error_auc(pose[k][m], (20,))[0], "real_auc@3": 100 * error_auc(real[k][m], (3,))[0]}
        metrics["default_minus_nn_ratio_refiner"][k] = {
            "pose_auc@5": auc_difference(pose[k]["default"], pose[k]["nn-ratio+refiner"], 5),
            "real_auc@3": auc_difference(real[k]["default"], real[k]["nn-ratio+refiner"], 3)}
    for m in ("default", "nn-ratio+refiner"):
        for a, b in zip(budgets[1:], budgets):
            metrics["across_budgets"][f"{m}: {a} minus {b}"] = {"pose_auc@5": auc_difference(pose[a][m], pose[b][m], 5),
                                                                "real_auc@3": auc_difference(real[a][m], real[b][m], 3)}
    lines = ["# Keypoint budget on the real development sets", "",
             f"`python -m benchmarks.keypoint_budget`: `eval.pose` on `../shared/data/pose` (lund_door, reichstag: 111 pairs, images at "
             "most 1024 px, OpenCV essential matrix at 1 px) and `eval.hpatches` on `../shared/data/real-pairs` (20 pairs, images at most "
             f"640 px), SIFT up to K keypoints per image, methods {METHODS}. Intervals: 90 % paired bootstrap over the same pairs.", "",
             "| method | K | pose AUC@5 | AUC@10 | AUC@20 | real AUC@3 |", "|---|---:|---:|---:|---:|---:|"]
    for m in methods:
        for k in budgets:
            a = metrics["auc"][f"{m}@{k}"]
            lines.append(f"| {m} | {k} | {a['pose_auc@5']:.1f} | {a['pose_auc@10']:.1f} | {a['pose_auc@20']:.1f} | {a['real_auc@3']:.1f} |")
    lines += ["", "| difference | pose AUC@5 | real AUC@3 |", "|---|---:|---:|"]
    lines += [f"| {name} | {cell(d['pose_auc@5'])} | {cell(d['real_auc@3'])} |" for name, d in metrics["across_budgets"].items()]
    lines += [f"| default minus nn-ratio+refiner at {k} | {cell(d['pose_auc@5'])} | {cell(d['real_auc@3'])} |"
              for k, d in metrics["default_minus_nn_ratio_refiner"].items()]
    if timed:
        base = {name: timed[f"{name}@{budgets[0]}"] for name in ("default", "nn-ratio+refiner")}
        lines += ["", "Seconds per pair (SIFT on both images, matching, refinement; one thread; first 10 lund_door pairs, 1296×1936 "
                  "photographs downscaled to 1024 px; best of 3 passes; ratio to the first budget, same run):", "",
                  "| pipeline | K | s/pair | ratio |", "|---|---:|---:|---:|"]
        lines += [f"| {key.split('@')[0]} | {key.split('@')[1]} | {v:.3f} | {v / base[key.split('@')[0]]:.2f} |" for key, v in timed.items()]
    (out / "report.md").write_text("\n".join(lines) + "\n")
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2, default=float))
    return metrics


def main(argv=None) -> None:
    p = argparse.ArgumentParser(prog="python -m benchmarks.keypoint_budget", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, default=Path("benchmarks/results/keypoint-budget"))
    p.add_argument("--budgets", default="1024,2048,4096")
    p.add_argument("--timing", action="store_true", help="also time the pipelines at each budget (a quiet machine)")
    args = p.parse_args(argv)
    budgets = [int(k) for k in args.budgets.split(",")]
    args.out.mkdir(parents=True, exist_ok=True)
    evaluate(args.out, budgets)
    timed = timing(budgets) if args.timing else json.loads((args.out / "metrics.json").read_text()).get("seconds_per_pair") \
        if (args.out / "metrics.json").is_file() else None
    summarise(args.out, budgets, timed)
    print((args.out / "report.md").read_text())


if __name__ == "__main__":
    main()
