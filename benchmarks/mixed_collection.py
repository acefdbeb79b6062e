"""A mixed folder end to end: the photographs of ``--scenes`` and ``--distractors`` unrelated
photographs of ``../shared/data/extra`` (the same number from each of its folders, evenly spaced
in name order) linked into one folder, then ``pygmatch sfm FOLDER --pairs retrieval --top N``.
Measured: the models and which scene each one's images come from (every model should hold one
scene, no distractor should be registered), the pairs matched against exhaustive matching's
n(n-1)/2, and the time of each step.

    python -m benchmarks.mixed_collection [--distractors 200] [--top 5] [--workers N] [--out benchmarks/results/mixed_collection]
"""
from __future__ import annotations

import argparse
import json
import shutil
from collections import Counter
from pathlib import Path

import torch

from pygmatch import Pipeline, sfm
from pygmatch.data.images import list_images
from pygmatch.data.features import DEFAULT_MAX_KEYPOINTS
from pygmatch.evaluation.sfm import DEFAULT_MATCH_THRESHOLD
from pygmatch.files import write_text

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
SCENES = [DATA / "sfm" / "sacre_coeur", DATA / "pose" / "lund_door" / "images", DATA / "pose" / "reichstag" / "images"]
EXTRA = ["bsds500", "imagenet-sample", "sun-hays80", "urban100"]


def build_folder(folder: Path, scenes: list[Path], distractors: int) -> dict[str, str]:
    """Symbolic links ``SCENE--NAME`` in ``folder``; returns ``{link name: scene or 'distractor'}``."""
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    origin = {}
    for scene in scenes:
        label = scene.parent.name if scene.name == "images" else scene.name
        for f in list_images(scene):
            (folder / f"{label}--{f.name}").symlink_to(f.resolve())
            origin[f"{label}--{f.name}"] = label
    per = -(-distractors // len(EXTRA))
    left = distractors
    for name in EXTRA:
        files = list_images(DATA / "extra" / name)
        for f in files[:: max(1, len(files) // per)][: min(per, left)]:
            (folder / f"extra-{name}--{f.name}").symlink_to(f.resolve())
            origin[f"extra-{name}--{f.name}"] = "distractor"
            left -= 1
    return origin


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.mixed_collection", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--distractors", type=int, default=200)
    p.add_argument("--top", type=int, default=5)
    p.add_argument("--workers", type=int, help="a local Dask cluster of N worker processes (default: in-process)")
    p.add_argument("--max-keypoints", type=int, default=DEFAULT_MAX_KEYPOINTS)
    p.add_argument("--work", type=Path, default=Path("eval-out/mixed_collection"))
    p.add_argument("--out", type=Path, default=Path("benchmarks/results/mixed_collection"))
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    origin = build_folder(args.work / "images", SCENES, args.distractors)
    shutil.rmtree(args.work / "out", ignore_errors=True)
    pipe = Pipeline.load("default", max_keypoints=args.max_keypoints, match_threshold=DEFAULT_MATCH_THRESHOLD, threads=1)
    with sfm.executor(args.workers) as where:
        run = sfm.run_collection(args.work / "images", args.work / "out", pipe, "retrieval", top=args.top, executor=where)
    n = len(run["names"])
    models = [{"path": m["path"], "registered": m["registered"], "from": dict(Counter(origin[x] for x in m["registered_names"]))}
              for m in run["models"]]
    scenes = Counter(origin.values())
    t = run["timings_s"]
    lines = ["# A mixed folder: scenes and distractors", "",
             f"`python -m benchmarks.mixed_collection --distractors {args.distractors} --top {args.top}"
             + (f" --workers {args.workers}" if args.workers else "") + f"`: {n} images ("
             + ", ".join(f"{k} {v}" for k, v in sorted(scenes.items())) + f"), `default` at {args.max_keypoints} keypoints, "
             f"{run['executor']}.", "",
             f"Pairs matched: {run['pairs']} (retrieval, top {args.top}) against {n * (n - 1) // 2} for exhaustive matching "
             f"({100 * run['pairs'] / max(n * (n - 1) // 2, 1):.1f} %); verified {run['verified_pairs']}.", "",
             "| model | registered | images from |", "|---|---:|---|"]
    lines += [f"| `{m['path']}` | {m['registered']} | " + ", ".join(f"{k} {v}" for k, v in sorted(m["from"].items())) + " |" for m in models]
    distractors_registered = sum(m["from"].get("distractor", 0) for m in models)
    mixed = sum(len([k for k in m["from"] if k != "distractor"]) > 1 for m in models)
    lines += ["", f"Distractors registered: {distractors_registered}; models mixing two scenes: {mixed}.", "",
              "Seconds: " + ", ".join(f"{k[:-2]} {v:.1f}" for k, v in t.items()) + ".", ""]
    args.out.mkdir(parents=True, exist_ok=True)
    write_text(args.out / "report.md", "\n".join(lines))
    write_text(args.out / "metrics.json", json.dumps({"images": n, "scenes": dict(scenes), "pairs": run["pairs"],
                                                     "exhaustive_pairs": n * (n - 1) // 2, "models": models, "timings_s": t,
                                                     "distractors_registered": distractors_registered, "mixed_models": mixed,
                                                     "executor": run["executor"]}, indent=2))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
