"""A folder of photographs to COLMAP models, each step's output a file the next one reads (as
hloc): ``pairs.txt`` (which pairs to match), ``features.h5`` / ``matches.h5`` (the store: work
already there is skipped), ``database.db`` (keypoints one position each after the keypoint
adjustment, raw matches, COLMAP's verification), ``sparse/N/`` (one model per scene found),
``report.md`` and ``metrics.json``. ``pygmatch sfm`` runs ``run_collection``; ``eval.sfm`` runs
``adjusted_database`` and ``verify_and_map`` per method.
"""
from __future__ import annotations

import json
import math
import shutil
import time
from pathlib import Path

from ..errors import PygmatchError
from ..files import write_text
from .adjustment import adjust_keypoints
from .collection import extract_collection, list_collection, match_collection
from .colmap import camera_mode_of, database_metrics, mapping_options, pycolmap_module, reconstruct_models, reconstruction_metrics, verify, \
    write_database
from .distributed import InProcess
from .pairs import DEFAULT_TOP, PAIRINGS, covisibility_pairs, exhaustive_pairs, read_pairs, sequential_pairs, top_pairs, write_pairs
from .retrieval import similarity
from .store import Store, pipeline_config

PAIRS_FILE, DATABASE, SPARSE, REPORT, METRICS = "pairs.txt", "database.db", "sparse", "report.md", "metrics.json"


def collection_pairs(how: str, names: list[str], store: Store | None = None, top: int = DEFAULT_TOP, model=None) -> list[tuple[str, str]]:
    """The pairs to match: ``exhaustive``, ``sequential`` (``top`` neighbours in name order),
    ``retrieval`` (``top`` most similar images by VLAD over the store's descriptors: the features
    must be extracted first), ``covisibility`` (``top`` per image from the COLMAP ``model``), or
    the path of a pairs file."""
    if how == "exhaustive":
        return exhaustive_pairs(names)
    if how == "sequential":
        return sequential_pairs(names, top)
    if how == "retrieval":
        return top_pairs(names, similarity([store.keypoints(n).descriptors for n in names]), top)
    if how == "covisibility":
        if model is None:
            raise PygmatchError("covisibility pairs need an existing COLMAP model (--model DIR)")
        return covisibility_pairs(model, names, top)
    return read_pairs(how, names)


def adjusted_database(matched, database, folder, names: list[str], camera_mode: str = "per-image") -> tuple[dict, dict]:
    """The keypoint adjustment (when the pipeline refines) and a new COLMAP database of a
    ``MatchedCollection``; ``(facts, seconds per step)``."""
    facts, timings = {"refined": matched.refined}, {}
    start = time.perf_counter()
    keypoints = matched.keypoints
    if matched.refined:
        adjustment = adjust_keypoints(matched.keypoints, matched.pairs)
        keypoints = adjustment.keypoints
        facts["adjustment"] = {"moved": adjustment.moved, "median_shift_px": adjustment.median_shift,
                               "matches_used": adjustment.matches_used, "matches_dropped": adjustment.matches_dropped}
    timings["adjust_s"] = time.perf_counter() - start
    start = time.perf_counter()
    write_database(database, folder, names, keypoints, matched.pairs, camera_mode)
    timings["database_s"] = time.perf_counter() - start
    return facts, timings


def verify_and_map(database, folder, sparse, threads: int = 1, progress: bool = True, mapping: dict | None = None) -> tuple[list, dict]:
    """COLMAP's geometric verification and incremental mapping of ``database`` into ``sparse``:
    ``(reconstruct_models' list, seconds per step)``."""
    start = time.perf_counter()
    verify(database, threads)
    verified = time.perf_counter()
    models = reconstruct_models(database, folder, sparse, threads, progress, mapping)
    return models, {"verify_s": verified - start, "map_s": time.perf_counter() - verified}


def run_collection(folder, out, pipeline, pairs: str = "retrieval", *, top: int = DEFAULT_TOP, model=None, executor=None,
                   threads: int = 1, camera_mode: str = "per-image", overwrite: bool = False, progress: bool = True,
                   mapping: dict | None = None) -> dict:
    """A folder of photographs into ``out`` (the module's docstring) with ``pipeline`` (a
    ``Pipeline``): features, pairs (``collection_pairs(pairs, ...)``), matches (in ``executor``:
    ``InProcess`` or a ``DaskExecutor``), keypoint adjustment, database, verification, mapping.
    A store in ``out`` made with another pipeline is refused unless ``overwrite``; with the same
    one, what it holds is reused and the database, models and report are made again. Bad input is
    a ``PygmatchError`` before any matching. Returns what ``metrics.json`` holds."""
    pycolmap = pycolmap_module()
    camera_mode_of(pycolmap, camera_mode)
    mapping_options(mapping, threads)
    if threads < 1:
        raise PygmatchError(f"threads must be >= 1, got {threads}")
    if top < 1:
        raise PygmatchError(f"the number of pairs per image must be >= 1, got {top}")
    executor = executor or InProcess()
    folder, out = Path(folder), Path(out)
    if out.exists() and not out.is_dir():
        raise PygmatchError(f"{out}: exists and is not a folder")
    if out.resolve() == folder.resolve():
        raise PygmatchError(f"{out}: is the folder of the photographs; choose another folder for the outputs")
    names = list_collection(folder)
    # every pairing but retrieval needs no features: made now, a bad pairs file or model is one line before any work
    early_pairs = None if pairs == "retrieval" else collection_pairs(pairs, names, None, top, model)
    ours = (out / "store.json").is_file()  # database, models and report of an earlier run, made again below
    foreign = [name for name in (DATABASE, SPARSE, REPORT, METRICS) if (out / name).exists()]
    if foreign and not ours and not overwrite:
        raise PygmatchError(f"{out}: holds {', '.join(foreign)} not made by pygmatch sfm; choose another folder, or pass --overwrite "
                            f"to replace them")
    start = time.perf_counter()
    store = Store(out, pipeline_config(pipeline), overwrite)
    images_extracted = len(extract_collection(pipeline, folder, names, store, executor, progress))
    extracted = time.perf_counter()
    pair_list = early_pairs if early_pairs is not None else collection_pairs(pairs, names, store, top, model)
    given = pairs not in PAIRINGS and (out / PAIRS_FILE).exists() and (out / PAIRS_FILE).samefile(pairs)
    if not given:  # never rewrite the pairs file given
        write_pairs(out / PAIRS_FILE, pair_list)
    paired = time.perf_counter()
    matched = match_collection(pipeline, folder, names, pair_list, store, executor, progress)
    for derived in (out / DATABASE, out / SPARSE):  # made again from the store, every run
        shutil.rmtree(derived) if derived.is_dir() else derived.unlink(missing_ok=True)
    facts, timings = adjusted_database(matched, out / DATABASE, folder, names, camera_mode)
    models, mapped = verify_and_map(out / DATABASE, folder, out / SPARSE, threads, progress, mapping)
    timings = {"extract_s": extracted - start, "pairs_s": paired - extracted, "match_s": matched.timings["match_s"], **timings, **mapped}
    timings["total_s"] = time.perf_counter() - start
    summary = {"images": str(folder), "names": names, "pipeline": pipeline.name, "store": store.config, "pairs_source": str(pairs),
               "top": top, "pairs": len(pair_list), "pairs_matched": matched.timings["pairs_matched"],
               "images_extracted": images_extracted, "executor": repr(executor), "threads": threads,
               "camera_mode": camera_mode, "pycolmap": pycolmap.__version__, "mapping_options": dict(mapping or {}),
               "models": [{"path": str(path.relative_to(out)), **reconstruction_metrics(rec, len(names))} for path, rec in models],
               "timings_s": timings, **facts}
    summary.update(database_metrics(out / DATABASE))
    summary["unregistered"] = sorted(set(names) - {n for m in summary["models"] for n in m["registered_names"]})
    write_text(out / METRICS, json.dumps(summary, indent=2, default=float))
    write_text(out / REPORT, report(summary))
    return summary


def fmt(v, digits=2) -> str:
    """A number for a report table: ``–`` for None or NaN."""
    return "–" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.{digits}f}"


def report(summary: dict) -> str:
    """``report.md`` of ``run_collection``: the data, the pairs, every model, the times."""
    t = summary["timings_s"]
    lines = ["# Structure from motion", "",
             f"Images: `{summary['images']}`, {len(summary['names'])} images. Pipeline `{summary['pipeline']}`; pairs: "
             f"{summary['pairs_source']}" + (f" (top {summary['top']})" if summary["pairs_source"] in ("retrieval", "sequential", "covisibility")
                                             else "") + f", {summary['pairs']} pairs ({summary['pairs_matched']} matched by this run, the "
             f"others read from the store); {summary['executor']}; pycolmap {summary['pycolmap']}.", "",
             f"Verified pairs (at least 15 inliers): {summary['verified_pairs']} of {summary['pairs']}; raw matches per pair "
             f"{summary['matches_per_pair']:.0f}.", "",
             "| model | registered | 3D points | track length | reproj. error (px) |", "|---|---:|---:|---:|---:|"]
    for m in summary["models"]:
        lines.append(f"| `{m['path']}` | {m['registered']} / {m['given']} | {m['points3D']} | {fmt(m['track_length'])} | "
                     f"{fmt(m['reprojection_error'], 3)} |")
    if not summary["models"]:
        lines.append("| (none) | 0 | 0 | – | – |")
    lines += ["", f"Not registered in any model ({len(summary['unregistered'])}): " + (", ".join(summary["unregistered"]) or "none") + ".", "",
              "Seconds: " + ", ".join(f"{k[:-2]} {v:.1f}" for k, v in t.items()) + ".", ""]
    if "adjustment" in summary:
        a = summary["adjustment"]
        lines += [f"Keypoint adjustment: {a['moved']} keypoints moved by a median {a['median_shift_px']:.2f} px; "
                  f"{a['matches_dropped']} of {a['matches_used'] + a['matches_dropped']} matches dropped as inconsistent.", ""]
    lines += [f"Files: `{PAIRS_FILE}` (the pairs), `features.h5` and `matches.h5` (hloc's layout), `{DATABASE}`, `{SPARSE}/N/` "
              "(COLMAP binary models, readable by the COLMAP GUI).", ""]
    return "\n".join(lines)
