"""The candidate graph matcher against nn, nn-ratio, the shipped verifier and the nn-oracle@1
ceiling, unrefined and followed by the shipped learned refiner, on held-out pairs:

- ``coco-d1`` / ``coco-d2``: homography pairs of ``../shared/data/coco/val`` (``make_pairs``, seed 0,
  ``--pairs-per-image`` per image, 640×480);
- ``real``: every pair (1, N) of the sequences under ``../shared/data/real-pairs``, downscaled to a
  longer side of 640 px as ``eval.hpatches`` reads them.

SIFT (1024 keypoints) is extracted once per pair and cached (``--cache``). Per method: P (< 3 px),
P@1, recall of the ground-truth matches, RANSAC AUC@1/3/5 (the corner error of ``pair_metrics``),
matches per pair, median matching ms per pair (the refiner's included), and the paired bootstrap 90 %
interval of the AUC@3 difference to the first ``--models`` model. Writes a markdown table and a json.

    python benchmarks/candidate_graph_eval.py --models cg=/work/runs/cg/model.pt [--sets coco-d1,coco-d2,real]
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pygmatch.data.features import Keypoints, extract  # noqa: E402
from pygmatch.data.ground_truth import ground_truth_matches  # noqa: E402
from pygmatch.data.images import downscale, read_gray  # noqa: E402
from pygmatch.data.pairs import make_pairs  # noqa: E402
from pygmatch.data.sequences import find_sequences, read_sequence, scale_homography  # noqa: E402
from pygmatch.evaluation.metrics import auc_difference, pair_metrics, summarize  # noqa: E402
from pygmatch.matching.candidate_graph import CandidateGraphMatching  # noqa: E402
from pygmatch.matching.nearest import NearestNeighbor  # noqa: E402
from pygmatch.matching.oracle import Oracle  # noqa: E402
from pygmatch.matching.refine import load_refiner  # noqa: E402
from pygmatch.matching.verifier import CandidateVerifier  # noqa: E402

DATA = ROOT.parent / "shared" / "data"
KP_FIELDS = ("xy", "scale", "ori", "score", "descriptors")


def _save_kp(d: dict, prefix: str, kp: Keypoints) -> None:
    for f in KP_FIELDS:
        d[f"{prefix}_{f}"] = getattr(kp, f)


def _load_kp(d, prefix: str) -> Keypoints:
    return Keypoints(*(d[f"{prefix}_{f}"] for f in KP_FIELDS))


def pair_set(name: str, cache: Path, pairs_per_image: int) -> list[dict]:
    """``[{"name", "image0", "image1", "H", "kp0", "kp1"}]`` of one evaluation set (keypoints cached)."""
    items = []
    if name.startswith("coco-d"):
        d = float(name[len("coco-d"):])
        ps = make_pairs(DATA / "coco" / "val", seed=0, pairs_per_image=pairs_per_image, difficulty=d)
        for k in range(len(ps)):
            items.append({"name": ps.names[k], "image0": ps.image0[k], "image1": ps.image1[k], "H": ps.H_0to1[k]})
    elif name == "real":
        for folder in find_sequences(DATA / "real-pairs"):
            for p in read_sequence(folder)[0]:
                im0, S0 = downscale(read_gray(p.image0, None), 640)
                im1, S1 = downscale(read_gray(p.image1, None), 640)
                items.append({"name": p.name, "image0": im0, "image1": im1, "H": scale_homography(p.H_0to1, S0, S1)})
    else:
        raise SystemExit(f"unknown set {name}")
    path = cache / f"{name}-{pairs_per_image}.npz"
    if path.is_file():
        with np.load(path) as f:
            for k, it in enumerate(items):
                it["kp0"], it["kp1"] = _load_kp(f, f"{k}_0"), _load_kp(f, f"{k}_1")
    else:
        store = {}
        for k, it in enumerate(items):
            it["kp0"], it["kp1"] = extract(it["image0"]), extract(it["image1"])
            _save_kp(store, f"{k}_0", it["kp0"])
            _save_kp(store, f"{k}_1", it["kp1"])
        cache.mkdir(parents=True, exist_ok=True)
        np.savez(path, **store)
    return items


def evaluate(items: list[dict], matchers: dict, refiner, variants: tuple[bool, ...] = (False, True)) -> dict:
    """{method: {"summary", "errors", "ms"}} for every matcher, unrefined (``False`` in ``variants``)
    and ``+refiner`` (``True``)."""
    out = {}
    for name, stage in matchers.items():
        for refine in variants:
            label = name + ("+refiner" if refine else "")
            per_pair, times = [], []
            for it in items:
                kp0, kp1, H = it["kp0"], it["kp1"], it["H"]
                size0 = (it["image0"].shape[1], it["image0"].shape[0])
                size1 = (it["image1"].shape[1], it["image1"].shape[0])
                gt0, _ = ground_truth_matches(kp0.xy, kp1.xy, H)
                t = time.perf_counter()
                if isinstance(stage, Oracle):
                    matches, scores = stage.match_truth(kp0, kp1, H)
                else:
                    matches, scores = stage.match(kp0, kp1, size0, size1)
                points1 = None
                if refine and len(matches):
                    points1 = refiner.refine(it["image0"], it["image1"], kp0.xy[matches[:, 0]].astype(np.float64),
                                             kp1.xy[matches[:, 1]].astype(np.float64))
                times.append(time.perf_counter() - t)
                per_pair.append(pair_metrics(matches, scores, kp0.xy, kp1.xy, gt0, H, size0, points1=points1))
            out[label] = {"summary": summarize(per_pair), "errors": [p["ransac_error"] for p in per_pair],
                          "ms": 1000 * float(np.median(times)), "correct1": float(np.mean([p["precision@1"] * p["matches"]
                                                                                           for p in per_pair if p["matches"]]))}
    return out


def table(results: dict, reference: str) -> str:
    lines = ["| method | P | P@1 | correct@1 / pair | R | AUC@1 | AUC@3 | AUC@5 | matches | ms/pair | AUC@3 − " + reference + " [90 % CI] |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for name, r in results.items():
        s = r["summary"]
        ref = reference + ("+refiner" if name.endswith("+refiner") and not reference.endswith("+refiner") else "")
        d = auc_difference(results[ref]["errors"], r["errors"]) if ref in results else (np.nan, np.nan, np.nan)
        d = (-d[0], -d[2], -d[1])  # reference − method → method − reference
        lines.append(f"| {name} | {s['precision']:.1f} | {s['precision@1']:.1f} | {r['correct1']:.0f} | {s['recall']:.1f} | {s['auc@1']:.1f} | "
                     f"{s['auc@3']:.1f} | {s['auc@5']:.1f} | {s['matches']:.0f} | {r['ms']:.0f} | {d[0]:+.1f} [{d[1]:+.1f}, {d[2]:+.1f}] |")
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--models", nargs="+", default=[],
                   help="NAME=FILE[:THRESHOLD[:PAD_FROM]] of candidate graph models (the first is the reference); THRESHOLD and "
                        "PAD_FROM override the model's")
    p.add_argument("--sets", default="coco-d1,coco-d2,real")
    p.add_argument("--pairs-per-image", type=int, default=4)
    p.add_argument("--baselines", default="nn,nn-ratio,verifier,nn-oracle@1")
    p.add_argument("--cache", type=Path, default=Path("/work/runs/eval-cache"))
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "candidate_graph_eval")
    p.add_argument("--reuse", type=Path, default=None, help="results.json of an earlier run on the same cache: its baselines are not rerun")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    import cv2  # noqa: PLC0415
    cv2.setNumThreads(1)
    base = {"nn": NearestNeighbor(None), "nn-ratio": NearestNeighbor(0.8), "verifier": CandidateVerifier.load("default"),
            "nn-oracle@1": Oracle(1.0, "nn")}
    matchers = {}
    for spec in args.models:
        name, _, path = spec.partition("=")
        path, _, options = path.partition(":")
        threshold, _, pad_from = options.partition(":")
        matchers[name] = CandidateGraphMatching.load(path, **({"threshold": float(threshold)} if threshold else {}),
                                                     **({"pad_from": int(pad_from)} if pad_from else {}))
    matchers.update({b: base[b] for b in args.baselines.split(",") if b})
    refiner = load_refiner("refiner")
    reference = next(iter(matchers))
    args.out.mkdir(parents=True, exist_ok=True)
    report = {}
    earlier = json.loads(args.reuse.read_text()) if args.reuse else {}
    for name in args.sets.split(","):
        items = pair_set(name, args.cache, args.pairs_per_image)
        old = earlier.get(name, {})
        todo = {m: st for m, st in matchers.items() if m not in old or m in dict(s.partition("=")[::2] for s in args.models)}
        new = evaluate(items, todo, refiner)
        results = {}
        for m in matchers:
            for label in (m, m + "+refiner"):
                results[label] = new[label] if label in new else old[label]
        report[name] = results
        text = f"### {name} ({len(items)} pairs)\n\n{table(results, reference)}\n"
        print(text, flush=True)
        (args.out / f"{name}.md").write_text(text)
    (args.out / "results.json").write_text(json.dumps({s: {m: {k: v for k, v in r.items()} for m, r in res.items()}
                                                       for s, res in report.items()}, indent=1, default=float))
    return 0


if __name__ == "__main__":
    sys.exit(main())
