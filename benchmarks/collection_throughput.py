"""Matching throughput of a collection, all in one run so that the ratios hold on a busy machine:
the first ``--pairs`` pairs of ``--images`` (every pair, name order) matched by ``default`` at
``--max-keypoints``, each image's features extracted once beforehand (not timed), by

- ``one pair at a time``: ``Pipeline.match`` per pair in this process (what ``eval.sfm`` did);
- ``store, in-process``: ``sfm.match_collection`` into a new store (HDF5 writes included);
- ``store, Dask N``: the same on a local Dask cluster of N worker processes (one thread each),
  for each N of ``--workers``; the cluster is started and warmed up before the clock starts.

Every way's matches are compared with the first's (they must be identical). Pairs per second and
milliseconds per pair; ``report.md`` and ``metrics.json`` under ``--out``.

    python -m benchmarks.collection_throughput [--images ../shared/data/sfm/sacre_coeur] [--pairs 45] [--workers 1 2]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from pygmatch import Pipeline, sfm
from pygmatch.evaluation.sfm import DEFAULT_MATCH_THRESHOLD
from pygmatch.files import write_text

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "sfm" / "sacre_coeur"


def stored_matches(store: sfm.Store, pairs) -> list[np.ndarray]:
    return [store.matches(*store.stored_pair(a, b))[0] for a, b in pairs]


def stage_times(pipe: Pipeline, features: dict, pairs) -> dict:
    """Mean milliseconds per pair of each stage of the graph network's matching and the refiner."""
    from pygmatch.matching.candidate_graph import candidate_graph, descriptor_candidates

    matcher = pipe.matcher
    total = {"descriptor candidates (mutual nearest neighbours)": 0.0, "candidate graphs (their edges, less the candidates)": 0.0,
             "network": 0.0, "refiner": 0.0}
    for a, b in pairs:
        f0, f1 = features[a], features[b]
        start = time.perf_counter()
        descriptor_candidates(f0.keypoints.descriptors, f1.keypoints.descriptors, matcher.cfg.candidates)
        cand_done = time.perf_counter()
        _, data = candidate_graph(f0.keypoints, f1.keypoints, f0.size, f1.size, matcher.cfg, matcher.graph)
        graph_done = time.perf_counter()
        if data is not None:
            with torch.no_grad():
                matcher.model(data)
        net_done = time.perf_counter()
        res = pipe.match(f0, f1)
        refine_start = time.perf_counter()
        pipe.refiner.refine(f0.image, f1.image, f0.keypoints.xy[res.matches[:, 0]].astype(np.float64),
                            f1.keypoints.xy[res.matches[:, 1]].astype(np.float64))
        end = time.perf_counter()
        for key, seconds in zip(total, (cand_done - start, graph_done - cand_done - (cand_done - start), net_done - graph_done,
                                        end - refine_start)):
            total[key] += seconds
    return {k: 1000 * v / len(pairs) for k, v in total.items()}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.collection_throughput", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--images", type=Path, default=DATA)
    p.add_argument("--pairs", type=int, default=45)
    p.add_argument("--max-keypoints", type=int, default=4096)
    p.add_argument("--workers", nargs="*", type=int, default=[1, 2])
    p.add_argument("--out", type=Path, default=Path("benchmarks/results/collection_throughput"))
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    pipe = Pipeline.load("default", max_keypoints=args.max_keypoints, match_threshold=DEFAULT_MATCH_THRESHOLD, threads=1)
    names = sfm.list_collection(args.images)
    pairs = sfm.exhaustive_pairs(names)[: args.pairs]
    work = Path(tempfile.mkdtemp(prefix="pygmatch-throughput-"))
    config = sfm.pipeline_config(pipe)
    features_store = sfm.Store(work / "features", config)
    sfm.extract_collection(pipe, args.images, names, features_store, progress=False)
    features_store.consolidate()
    features = {n: pipe.extractor.with_keypoints(args.images / n, features_store.keypoints(n)) for n in names}

    def fresh_store(label: str) -> sfm.Store:
        (work / label).mkdir()
        for f in ("features.h5", "store.json"):
            shutil.copy(work / "features" / f, work / label / f)
        return sfm.Store(work / label, config)

    rows = []
    start = time.perf_counter()
    reference = [pipe.match(features[a], features[b]).matches for a, b in pairs]
    rows.append({"way": "one pair at a time", "seconds": time.perf_counter() - start, "same_matches": True})

    store = fresh_store("in-process")
    start = time.perf_counter()
    sfm.match_collection(pipe, args.images, names, pairs, store, progress=False)
    rows.append({"way": "store, in-process", "seconds": time.perf_counter() - start,
                 "same_matches": all(np.array_equal(a, b) for a, b in zip(reference, stored_matches(store, pairs)))})

    for n in args.workers:
        with sfm.DaskExecutor(workers=n) as dask:
            sfm.match_collection(pipe, args.images, names, pairs[: 2 * n], fresh_store(f"warm-{n}"), dask, progress=False)  # imports, pipeline
            store = fresh_store(f"dask-{n}")
            start = time.perf_counter()
            sfm.match_collection(pipe, args.images, names, pairs, store, dask, progress=False)
            rows.append({"way": f"store, Dask {n} worker{'s' if n > 1 else ''}", "seconds": time.perf_counter() - start,
                         "same_matches": all(np.array_equal(a, b) for a, b in zip(reference, stored_matches(store, pairs)))})
    shutil.rmtree(work, ignore_errors=True)
    stages = stage_times(pipe, features, pairs)
    base = rows[0]["seconds"]
    for r in rows:
        r["pairs_per_s"], r["ms_per_pair"], r["speed_up"] = len(pairs) / r["seconds"], 1000 * r["seconds"] / len(pairs), base / r["seconds"]
    machine = f"{platform.machine()}, {os.cpu_count()} CPU cores, torch {torch.__version__}"
    lines = ["# Collection matching throughput", "",
             f"`python -m benchmarks.collection_throughput --images {args.images} --pairs {args.pairs} --max-keypoints {args.max_keypoints}"
             f" --workers {' '.join(map(str, args.workers))}`: {len(pairs)} pairs of {len(names)} images, `default` at threshold "
             f"{DEFAULT_MATCH_THRESHOLD}, features extracted beforehand; {machine}; one torch thread per process.", "",
             "| way | seconds | pairs/s | ms/pair | × one at a time | same matches |", "|---|---:|---:|---:|---:|---|"]
    lines += [f"| {r['way']} | {r['seconds']:.1f} | {r['pairs_per_s']:.2f} | {r['ms_per_pair']:.0f} | {r['speed_up']:.2f} | "
              f"{'yes' if r['same_matches'] else 'NO'} |" for r in rows]
    lines += ["", "Where one pair's time goes (mean ms per pair, one pair at a time, a separate pass over the same pairs): "
              + ", ".join(f"{k} {v:.0f}" for k, v in stages.items()) + ".", ""]
    args.out.mkdir(parents=True, exist_ok=True)
    write_text(args.out / "report.md", "\n".join(lines))
    write_text(args.out / "metrics.json", json.dumps({"images": str(args.images), "pairs": len(pairs), "max_keypoints": args.max_keypoints,
                                                     "machine": machine, "rows": rows, "stages_ms": stages}, indent=2))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
