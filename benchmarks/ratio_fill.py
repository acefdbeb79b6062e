"""The graph network's selection filled with Lowe's ratio test: ``default``'s matches, then the
ratio test's (``nn-ratio`` at ``--ratios``, both ways) among the keypoints it left unmatched,
refined by the same learned refiner; against ``default`` on the real development data, paired:

- relative pose on ``../shared/data/pose`` (AUC@5 with OpenCV's and PoseLib's estimator, the
  photograph pipelines' 4096 keypoints at contrast threshold 0.02);
- homographies: RANSAC AUC@3 on the 20 ``real-pairs`` and on ``coco/val`` at difficulties 1 and 2
  (the benchmarks' 1024 keypoints at 0.04; coco/val only reports);
- reconstruction: camera-centre RMSE of ``eval.sfm`` on the pose scenes, against their true
  cameras (``eval.sfm``'s defaults), for the ratio ``--sfm-ratio``.

    python -m benchmarks.ratio_fill [--ratios 0.7,0.8,0.9] [--out benchmarks/results/ratio-fill.md]
"""
from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
import torch

from pygmatch.data.features import BENCHMARK_CONTRAST_THRESHOLD, BENCHMARK_MAX_KEYPOINTS
from pygmatch.data.pairs import make_pairs
from pygmatch.data.scenes import load_scenes
from pygmatch.data.sequences import load_sequences
from pygmatch.evaluation.evaluate import evaluate
from pygmatch.evaluation.metrics import auc_difference
from pygmatch.evaluation.pose import evaluate_pose, paired_differences
from pygmatch.evaluation.sfm import run_sfm
from pygmatch.matching.nearest import nearest_neighbor_match
from pygmatch.pipeline import Pipeline

DATA = Path("../shared/data")


class RatioFill:
    """A graph-network matching stage whose matches are filled with the ratio test's among the
    keypoints it left unmatched (scored 0)."""

    def __init__(self, network, ratio: float):
        self.network, self.ratio, self.cfg = network, ratio, network.cfg

    def match(self, kp0, kp1, size0, size1=None):
        matches, scores = self.network.match(kp0, kp1, size0, size1)
        extra, _ = nearest_neighbor_match(kp0.descriptors, kp1.descriptors, self.ratio)
        free0, free1 = np.ones(len(kp0), bool), np.ones(len(kp1), bool)
        free0[matches[:, 0]], free1[matches[:, 1]] = False, False
        extra = extra[free0[extra[:, 0]] & free1[extra[:, 1]]]
        return np.concatenate([matches, extra]), np.concatenate([scores, np.zeros(len(extra), np.float32)])


def pipelines(ratios: list[float], **extraction) -> dict[str, Pipeline]:
    default = Pipeline.load("default", **extraction)
    out = {"default": default}
    for r in ratios:
        out[f"fill {r:g}"] = Pipeline(default.extractor, RatioFill(default.matcher, r), default.refiner, name=f"fill {r:g}")
    return out


def cell(d) -> str:
    return f"{d[0]:+.1f} [{d[1]:+.1f}, {d[2]:+.1f}]"


def negated(d) -> tuple[float, float, float]:
    """``paired_differences`` gives the reference minus the other: the other minus the reference."""
    return -d[0], -d[2], -d[1]


def main(argv=None) -> None:
    p = argparse.ArgumentParser(prog="python -m benchmarks.ratio_fill", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--ratios", default="0.7,0.8,0.9")
    p.add_argument("--sfm-ratio", type=float, default=0.8)
    p.add_argument("--out", type=Path, default=Path("benchmarks/results/ratio-fill.md"))
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    ratios = [float(r) for r in args.ratios.split(",")]
    fills = [f"fill {r:g}" for r in ratios]
    lines = ["# The graph network's selection filled with the ratio test's matches", "",
             f"`python -m benchmarks.ratio_fill --ratios {args.ratios} --sfm-ratio {args.sfm_ratio:g}`. Each row: the filled "
             "pipeline minus `default` on the same pairs, 90 % paired bootstrap intervals.", ""]

    pose = evaluate_pose(load_scenes(DATA / "pose"), pipelines(ratios), estimators=("opencv", "poselib"))
    differences = paired_differences(pose, "default")
    lines += ["## Relative pose (111 pairs of lund_door and reichstag; 4096 keypoints at 0.02)", "",
              "| pipeline | AUC@5 OpenCV | AUC@5 PoseLib | matches | minus default, OpenCV | minus default, PoseLib |",
              "|---|---:|---:|---:|---:|---:|"]
    for name in ["default", *fills]:
        s = pose.summary[name]
        diff = differences.get(name)
        lines.append(f"| {name} | {s['auc@5']:.1f} | {s['poselib/auc@5']:.1f} | {s['matches']:.0f} | "
                     + (f"{cell(negated(diff['auc@5']))} | {cell(negated(diff['poselib/auc@5']))} |" if diff else " | |"))

    homography = [("real-pairs (20)", load_sequences(DATA / "real-pairs"))]
    homography += [(f"coco/val, difficulty {d:g} (200)", make_pairs(DATA / "coco" / "val", 0, 4, d)) for d in (1.0, 2.0)]
    lines += ["", "## Homographies (RANSAC AUC@3; 1024 keypoints at 0.04)", "",
              "| pairs | default | " + " | ".join(fills) + " | " + " | ".join(f"{f} minus default" for f in fills) + " |",
              "|---|" + "---:|" * (1 + 2 * len(fills))]
    bench = pipelines(ratios, max_keypoints=BENCHMARK_MAX_KEYPOINTS, contrast_threshold=BENCHMARK_CONTRAST_THRESHOLD)
    for label, pairs in homography:
        result = evaluate(pairs, bench, max_keypoints=BENCHMARK_MAX_KEYPOINTS, draw=0, progress=False)
        lines.append(f"| {label} | " + " | ".join(f"{result.summary[n]['auc@3']:.1f}" for n in ["default", *fills]) + " | "
                     + " | ".join(cell(auc_difference(result.errors[f], result.errors["default"], 3.0)) for f in fills) + " |")

    lines += ["", f"## Reconstruction (`eval.sfm` defaults, fill {args.sfm_ratio:g})", "",
              "| scene | default centre RMSE | filled centre RMSE | default 3D points | filled 3D points |", "|---|---:|---:|---:|---:|"]
    methods = pipelines([args.sfm_ratio], match_threshold=0.1)  # eval.sfm's match threshold
    for scene in ("lund_door", "reichstag"):
        with tempfile.TemporaryDirectory() as tmp:
            metrics = run_sfm(DATA / "pose" / scene / "images", Path(tmp), ["default", f"fill {args.sfm_ratio:g}"], progress=False,
                              load_pipeline=methods.__getitem__, truth=DATA / "pose" / scene / "gt")
        m = metrics["methods"]
        d, f = m["default"], m[f"fill {args.sfm_ratio:g}"]
        lines.append(f"| {scene} | {d['cameras']['centre_rmse']:.4g} | {f['cameras']['centre_rmse']:.4g} | {d['points3D']} | {f['points3D']} |")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
