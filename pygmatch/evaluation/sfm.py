"""Structure from motion as an evaluation: ``run_sfm`` runs each method (a pipeline name, or
``colmap``: COLMAP's own SIFT pipeline) through ``pygmatch.sfm`` (pairs → matches → keypoint
adjustment → database → verification → mapping) on one folder of photographs and writes
``report.md``, ``metrics.json`` and ``sfm.png``; work already done (a method's model) is skipped.
With the true cameras of the photographs (a COLMAP model), each model's cameras are measured
against them (``pygmatch.sfm.accuracy``): what a reconstruction gets right, beyond its
reprojection error.
"""
from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

from tqdm import tqdm

from ..data.features import DEFAULT_CONTRAST_THRESHOLD, DEFAULT_MAX_KEYPOINTS
from ..data.scenes import read_colmap_model
from ..errors import PygmatchError
from ..files import make_folder, save_figure, writable_folder, write_text
from ..pipeline import Pipeline, is_learned
from ..sfm import (COLMAP_MAX_IMAGE_SIZE, colmap_features, database_metrics, exhaustive_pairs, list_collection, mapping_options,
                   match_collection, pycolmap_module, read_pairs, reconstruction_metrics)
from ..sfm.accuracy import camera_errors, reconstruction_cameras, scene_cameras
from ..sfm.colmap import camera_mode_of
from ..sfm.run import adjusted_database, fmt, verify_and_map
from ..sfm.store import Store, pipeline_config

COLMAP = "colmap"  # the method name of COLMAP's own pipeline
# Keypoints per image: the pipelines' default (4096, ``pygmatch.data.features``). At the matchers' 1024,
# nn-ratio registered 2 of the 10 sacre_coeur images (35 matches per pair; COLMAP's first pair needs
# 100 inliers); at 4096 every method registers all.
# Match probability threshold of the graph network for SfM. Its own (0.5) keeps the matches within
# 1 px for a homography fit; COLMAP's verification removes wrong matches itself and registration
# needs many: on the 252 five-image subsets of sacre_coeur the network registered all five in 165 at
# 0.1 against 108 at 0.2 (docs/sfm.md).
DEFAULT_MATCH_THRESHOLD = 0.1


def method_folder(out, method: str) -> Path:
    """The folder of a method's database and reconstruction: its name with path separators replaced."""
    return Path(out) / "".join(c if c.isalnum() or c in "+-_.@" else "_" for c in method)


def run_method(method: str, folder, names: list[str], pairs: list[tuple[str, str]], out, exhaustive: bool, pipeline=None,
               threads: int = 1, camera_mode: str = "per-image", progress: bool = True, mapping: dict | None = None,
               truth: dict | None = None) -> dict:
    """One method end to end into ``method_folder(out, method)`` (``database.db``, ``sparse/N/``;
    for a ``Pipeline`` also its store, ``features.h5`` and ``matches.h5``): ``colmap``, or a
    pipeline through the steps of ``pygmatch sfm`` (``pygmatch.sfm.run``). Returns its metrics,
    timings in seconds and ``ms_per_pair`` of matching; with ``truth`` (true cameras by name,
    ``pygmatch.sfm.accuracy``), ``cameras``: the largest model's ``camera_errors`` (None when it
    has fewer than 3 of them)."""
    folder, target = Path(folder), method_folder(out, method)
    database = target / "database.db"
    timings, extra = {}, {}
    if method == COLMAP:
        timings.update(colmap_features(database, folder, names, None if exhaustive else pairs, threads, camera_mode))
        timings["adjust_s"] = 0.0
        extra["refined"] = False
    else:
        matched = match_collection(pipeline, folder, names, pairs, Store(target, pipeline_config(pipeline)), progress=progress)
        timings.update({k: matched.timings[k] for k in ("extract_s", "match_s")})
        extra, made = adjusted_database(matched, database, folder, names, camera_mode)
        timings.update(made)
    models, mapped = verify_and_map(database, folder, target / "sparse", threads, progress, mapping)
    timings.update(mapped)
    timings["total_s"] = sum(timings.values())
    metrics = reconstruction_metrics(models[0][1] if models else None, len(names))
    metrics.update(database_metrics(database))
    metrics.update(extra)
    metrics["ms_per_pair"] = 1000 * timings["match_s"] / max(len(pairs), 1)
    metrics["ms_per_image"] = 1000 * timings["extract_s"] / max(len(names), 1)
    metrics["timings_s"] = timings
    if models:
        metrics["model"] = str(models[0][0].relative_to(Path(out)))
    if truth is not None:
        estimated = reconstruction_cameras(models[0][1]) if models else {}
        metrics["cameras"] = camera_errors(estimated, truth) if len(set(estimated) & set(truth)) >= 3 else None
    return metrics


OUTPUTS = ("report.md", "metrics.json", "sfm.png")


def prepare_output(out, methods: list[str], overwrite: bool = False) -> Path:
    """Check ``out`` before any work: a folder that already holds files is an error unless
    ``overwrite``, which removes the method folders and the report files this run writes (and
    nothing else)."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise PygmatchError(f"{out}: exists and is not a folder")
    if out.is_dir() and any(out.iterdir()):
        if not overwrite:
            raise PygmatchError(f"{out}: already exists and is not empty; choose another folder or overwrite it (--overwrite)")
        for m in methods:
            shutil.rmtree(method_folder(out, m), ignore_errors=True)
        for name in OUTPUTS:
            (out / name).unlink(missing_ok=True)
    writable_folder(out)
    return make_folder(out)


def check_methods(methods: list[str]) -> list[str]:
    """Method names: non-empty, each once."""
    methods = [m.strip() for m in methods if m.strip()]
    if not methods:
        raise PygmatchError("no methods given")
    seen = set()
    for m in methods:
        if m in seen:
            raise PygmatchError(f"method {m!r} is given twice")
        seen.add(m)
        if m != COLMAP and method_folder(".", m).name in (Path(o).stem for o in OUTPUTS):
            raise PygmatchError(f"method name {m!r} clashes with an output file")
    return methods


def run_sfm(folder, out, methods: list[str], pairs=None, *, features: str | None = None, max_keypoints: int = DEFAULT_MAX_KEYPOINTS,
            contrast_threshold: float = DEFAULT_CONTRAST_THRESHOLD, selection: str | None = None,
            match_threshold: float | None = DEFAULT_MATCH_THRESHOLD, threads: int = 1, camera_mode: str = "per-image", overwrite: bool = False,
            progress: bool = True, mapping: dict | None = None, load_pipeline=None, truth=None, views: str = "plain") -> dict:
    """Every method on the images of ``folder`` (``pairs``: None for all pairs, or a pairs file),
    into ``out``: per method a database and the reconstructions, and ``report.md``,
    ``metrics.json``, ``sfm.png`` for all. ``mapping``: overrides of COLMAP's mapping options for
    every method (``mapping_options``). ``load_pipeline(name)``: how a method name becomes a
    ``Pipeline`` (default ``Pipeline.load(name, features=..., max_keypoints=..., contrast_threshold=..., selection=...,
    match_threshold=..., threads=...)``; ``features`` None: each graph network's own keypoints, SIFT for the other matchers; ``match_threshold`` None:
    each learned matcher's own). ``truth``: a COLMAP model folder (text
    or binary) of the photographs' true cameras, to measure each model's cameras against.
    ``views="auto"``: the pygmatch pipelines synthesise views where a pair's plain match fails
    (``pygmatch sfm --views auto``). Bad input is a ``PygmatchError`` before any work. Returns the
    metrics (what ``metrics.json`` holds)."""
    pycolmap = pycolmap_module()
    methods = check_methods(list(methods))
    if threads < 1:
        raise PygmatchError(f"threads must be >= 1, got {threads}")
    camera_mode_of(pycolmap, camera_mode)
    mapping_options(mapping, threads)
    folder = Path(folder)
    names = list_collection(folder)
    pair_list = exhaustive_pairs(names) if pairs is None else read_pairs(pairs, names)
    true_cameras = None if truth is None else scene_cameras(read_colmap_model(truth))
    if true_cameras is not None and len(set(true_cameras) & set(names)) < 3:
        raise PygmatchError(f"{truth}: the true cameras name {len(set(true_cameras) & set(names))} of the {len(names)} images of {folder}; "
                            "at least 3 are needed to measure a model against them")
    if load_pipeline is None:
        def load_pipeline(name):
            return Pipeline.load(name, features=features, max_keypoints=max_keypoints, contrast_threshold=contrast_threshold,
                                 selection=selection, threads=threads, views=views,
                                 **({"match_threshold": match_threshold} if is_learned(name) else {}))
    pipelines = {m: (None if m == COLMAP else load_pipeline(m)) for m in methods}  # a bad name fails before any work
    out = prepare_output(out, methods, overwrite)
    results = {}
    for m in methods:
        if progress:
            tqdm.write(f"{m}:")
        results[m] = run_method(m, folder, names, pair_list, out, pairs is None, pipelines[m], threads, camera_mode, progress, mapping,
                                true_cameras)
    summary = {"images": str(folder), "names": names, "pairs": len(pair_list), "pairs_source": "exhaustive" if pairs is None else str(pairs),
               "features": {m: p.extractor.features for m, p in pipelines.items() if p is not None},
               "selection": {m: p.extractor.selection for m, p in pipelines.items() if p is not None},
               "max_keypoints": max_keypoints, "contrast_threshold": contrast_threshold, "match_threshold": match_threshold, "views": views,
               "threads": threads, "camera_mode": camera_mode,
               "pycolmap": pycolmap.__version__, "colmap_max_image_size": COLMAP_MAX_IMAGE_SIZE, "mapping_options": dict(mapping or {}),
               "truth": None if truth is None else str(truth), "methods": results}
    write_text(out / "metrics.json", json.dumps(summary, indent=2, default=float))
    write_text(out / "report.md", report(summary))
    plot(summary, out / "sfm.png")
    return summary


def table(summary: dict) -> str:
    """The markdown table of every method's reconstruction and timings."""
    head = ("| method | registered | 3D points | track length | reproj. error (px) | verified pairs | matches/pair | "
            "extract ms/image | match ms/pair | adjust s | verify s | map s | total s |")
    lines = [head, "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for m, r in summary["methods"].items():
        t = r["timings_s"]
        lines.append(f"| {m} | {r['registered']} / {r['given']} | {r['points3D']} | {fmt(r['track_length'])} | {fmt(r['reprojection_error'], 3)} | "
                     f"{r['verified_pairs']} / {summary['pairs']} | {r['matches_per_pair']:.0f} | {r['ms_per_image']:.0f} | "
                     f"{r['ms_per_pair']:.1f} | {t['adjust_s']:.2f} | {t['verify_s']:.1f} | {t['map_s']:.1f} | {t['total_s']:.1f} |")
    return "\n".join(lines)


def report(summary: dict) -> str:
    """``report.md``: the data, the settings and the table."""
    lines = [
        "# Structure from motion", "",
        f"Images: `{summary['images']}`, {len(summary['names'])} images, {summary['pairs']} pairs ({summary['pairs_source']}). "
        f"pycolmap {summary['pycolmap']}, {summary['threads']} thread(s), cameras {summary['camera_mode']}. "
        f"pygmatch methods: up to {summary['max_keypoints']} "
        f"{'/'.join(sorted(set(summary.get('features', {}).values()))) or 'sift'} keypoints per image (longer side at most 1024 px, "
        f"SIFT's contrast threshold "
        f"{summary['contrast_threshold']:g}; {'/'.join(sorted(set(summary.get('selection', {}).values()))) or 'strongest'}), "
        f"learned matchers' match threshold {summary['match_threshold'] if summary['match_threshold'] is not None else 'their own'}; "
        f"`colmap`: COLMAP's SIFT at {summary['colmap_max_image_size']} px and its matcher (ratio test, cross-check).", "",
        table(summary), "",
        "Registered: images in the largest model. Track length: mean observations per 3D point. Reprojection error: mean over all "
        "observations after bundle adjustment. Verified pairs: pairs with at least 15 inliers of COLMAP's geometric verification. "
        "Matches/pair: raw matches written to the database (before verification). Match ms/pair: matching (with refinement) of one "
        "pair; for `colmap`, its SIFT matcher. Adjust: combining the refined positions into one per keypoint.", "",
    ]
    adjusted = {m: r["adjustment"] for m, r in summary["methods"].items() if "adjustment" in r}
    if adjusted:
        lines += ["## Keypoint adjustment", "", "| method | keypoints moved | median shift (px) | matches used | matches dropped |",
                  "|---|---:|---:|---:|---:|"]
        lines += [f"| {m} | {a['moved']} | {a['median_shift_px']:.2f} | {a['matches_used']} | {a['matches_dropped']} |" for m, a in adjusted.items()]
        lines.append("")
    measured = {m: r.get("cameras") for m, r in summary["methods"].items() if "cameras" in r}
    if measured:
        lines += ["## Cameras against the true ones", "",
                  f"True cameras: `{summary['truth']}`. Each model's camera centres aligned to the true ones by the best similarity "
                  "(scale, rotation, translation; least squares), then per camera the centre error in the true model's units and the "
                  "rotation error; scene size: the median distance of the true centres to their centroid.", "",
                  "| method | cameras | centre RMSE | centre median | centre max | rotation median (°) | rotation max (°) | scene size |",
                  "|---|---:|---:|---:|---:|---:|---:|---:|"]
        for m, c in measured.items():
            lines.append(f"| {m} | fewer than 3 registered |  |  |  |  |  |  |" if c is None else
                         f"| {m} | {c['aligned']} | {c['centre_rmse']:.4g} | {c['centre_median']:.4g} | {c['centre_max']:.4g} | "
                         f"{c['rotation_median_deg']:.3f} | {c['rotation_max_deg']:.3f} | {c['scene_size']:.4g} |")
        lines.append("")
    missing = {m: sorted(set(summary["names"]) - set(r["registered_names"])) for m, r in summary["methods"].items()}
    missing = {m: v for m, v in missing.items() if v}
    if missing:
        lines += ["## Images not registered", ""] + [f"- {m}: {', '.join(v)}" for m, v in missing.items()] + [""]
    lines += ["Each method's database and models (COLMAP binary, readable by the COLMAP GUI) are in its folder: "
              "`METHOD/database.db`, `METHOD/sparse/N/`.", ""]
    return "\n".join(lines)


def plot(summary: dict, path) -> Path:
    """Registered images, mean track length and mean reprojection error per method, side by side."""
    import matplotlib  # noqa: PLC0415

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    methods = list(summary["methods"])
    rows = [("registered images", "registered"), ("mean track length", "track_length"), ("mean reprojection error (px)", "reprojection_error")]
    fig, axes = plt.subplots(1, 3, figsize=(min(3 + 1.8 * len(methods), 15), 3.8))
    colours = ["tab:gray" if m == COLMAP else "tab:blue" for m in methods]
    for ax, (title, key) in zip(axes, rows):
        values = [summary["methods"][m][key] for m in methods]
        ax.bar(range(len(methods)), [0 if v is None or (isinstance(v, float) and math.isnan(v)) else v for v in values], color=colours)
        ax.set_xticks(range(len(methods)), methods, rotation=20, ha="right", fontsize=8)
        ax.set_title(title, fontsize=10)
        for k, v in enumerate(values):
            ax.annotate(fmt(v, 0 if key == "registered" else (3 if key == "reprojection_error" else 2)), (k, 0 if v != v else v),
                        ha="center", va="bottom", fontsize=8)
        if key == "registered":
            ax.axhline(len(summary["names"]), color="k", lw=0.8, ls="--")
    fig.suptitle(f"{Path(summary['images']).name}: {len(summary['names'])} images, {summary['pairs']} pairs", fontsize=10)
    fig.tight_layout()
    return save_figure(fig, path, dpi=110)
