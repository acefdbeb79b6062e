"""Retrieval pairs against exhaustive matching: per scene, ``pygmatch sfm --pairs exhaustive``
(the verified pairs: at least 15 inliers after COLMAP's verification), then the retrieval pairs
at each ``--top`` from the same store (VLAD over the stored descriptors): the share of the verified
pairs they contain (recall), how many pairs they are, and the images the reconstruction from only
those pairs registers against the one from every pair (the retrieval run reads every match from
the exhaustive run's store: nothing is matched again).

    python -m benchmarks.retrieval_recall [--scenes ../shared/data/sfm/sacre_coeur ../shared/data/pose/lund_door/images
        ../shared/data/pose/reichstag/images] [--top 5 10] [--out benchmarks/results/retrieval_recall]

Writes ``report.md`` and ``metrics.json`` under ``--out`` (the runs' folders under ``--work``).
"""
from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import torch

from pygmatch import Pipeline, sfm
from pygmatch.data.features import DEFAULT_MAX_KEYPOINTS
from pygmatch.evaluation.sfm import DEFAULT_MATCH_THRESHOLD
from pygmatch.files import write_text

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
SCENES = [DATA / "sfm" / "sacre_coeur", DATA / "pose" / "lund_door" / "images", DATA / "pose" / "reichstag" / "images"]


def scene_name(folder: Path) -> str:
    return folder.parent.name if folder.name == "images" else folder.name


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.retrieval_recall", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--scenes", nargs="+", type=Path, default=SCENES)
    p.add_argument("--top", nargs="+", type=int, default=[5, 10])
    p.add_argument("--max-keypoints", type=int, default=DEFAULT_MAX_KEYPOINTS)
    p.add_argument("--out", type=Path, default=Path("benchmarks/results/retrieval_recall"))
    p.add_argument("--work", type=Path, default=Path("eval-out/retrieval_recall"), help="the runs' stores, databases and models")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    pipe = Pipeline.load("default", max_keypoints=args.max_keypoints, match_threshold=DEFAULT_MATCH_THRESHOLD, threads=1)
    rows = []
    for folder in args.scenes:
        name = scene_name(folder)
        full = sfm.run_collection(folder, args.work / name / "exhaustive", pipe, "exhaustive", progress=False)
        verified = sfm.verified_pairs(args.work / name / "exhaustive" / "database.db")
        row = {"scene": name, "images": len(full["names"]), "pairs": full["pairs"], "verified": len(verified),
               "registered_exhaustive": full["models"][0]["registered"] if full["models"] else 0, "top": {}}
        for top in args.top:
            target = args.work / name / f"retrieval-{top}"
            shutil.rmtree(target, ignore_errors=True)
            target.mkdir(parents=True)
            for f in ("features.h5", "matches.h5", "store.json"):  # every retrieval pair is in the exhaustive store
                shutil.copy(args.work / name / "exhaustive" / f, target / f)
            run = sfm.run_collection(folder, target, pipe, "retrieval", top=top, progress=False)
            chosen = {tuple(sorted(pair)) for pair in sfm.read_pairs(target / "pairs.txt", run["names"])}
            row["top"][top] = {"pairs": len(chosen), "recall": len(verified & chosen) / max(len(verified), 1),
                               "precision": len(verified & chosen) / max(len(chosen), 1),
                               "missed": sorted(verified - chosen), "matched_again": run["pairs_matched"],
                               "registered": run["models"][0]["registered"] if run["models"] else 0}
        rows.append(row)
        print(json.dumps({k: v for k, v in row.items() if k != "top"}), {t: (round(v["recall"], 3), v["pairs"], v["registered"])
                                                                           for t, v in row["top"].items()})
    totals = {top: sum(len(set(map(tuple, r["top"][top]["missed"]))) for r in rows) for top in args.top}
    verified_total = sum(r["verified"] for r in rows)
    lines = ["# Retrieval pairs against exhaustive matching", "",
             f"`python -m benchmarks.retrieval_recall`: `default` at {args.max_keypoints} keypoints, threshold {DEFAULT_MATCH_THRESHOLD}; "
             "verified = at least 15 inliers after COLMAP's verification of the exhaustive run; retrieval = VLAD (64 words, "
             "`pygmatch/weights/vlad_sift_64.npz`) over the stored descriptors, each image with its top N, every pair once.", "",
             "| scene | images | all pairs | verified | " + " | ".join(f"top-{t}: pairs, recall, verified among them, registered" for t in args.top)
             + " | registered from all pairs |",
             "|---|---:|---:|---:|" + "---:|" * len(args.top) + "---:|"]
    for r in rows:
        lines.append(f"| {r['scene']} | {r['images']} | {r['pairs']} | {r['verified']} | "
                     + " | ".join(f"{r['top'][t]['pairs']}, {100 * r['top'][t]['recall']:.1f} %, {100 * r['top'][t]['precision']:.0f} %, "
                                   f"{r['top'][t]['registered']}" for t in args.top)
                     + f" | {r['registered_exhaustive']} |")
    lines += ["", "All scenes: " + ", ".join(f"top-{t} recall {100 * (1 - totals[t] / max(verified_total, 1)):.1f} % "
                                            f"({verified_total - totals[t]} of {verified_total} verified pairs)" for t in args.top) + ".",
              "", "Recall counts the verified pairs a pairing contains; where every pair of a scene is verified, a top-N pairing of n images "
              "(at most n·N pairs, fewer where two images choose each other) cannot contain them all, so recall is then the share of "
              "all pairs chosen. Registered: images in the largest model.", ""]
    args.out.mkdir(parents=True, exist_ok=True)
    write_text(args.out / "report.md", "\n".join(lines))
    write_text(args.out / "metrics.json", json.dumps({"max_keypoints": args.max_keypoints, "scenes": rows}, indent=2))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
