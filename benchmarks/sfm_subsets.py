"""Reconstructions of sub-collections of a scene with true cameras: more than one reading of
camera accuracy per scene, where the whole scene gives one.

    python -m benchmarks.sfm_subsets ../shared/data/pose/reichstag --size 7 \\
        --methods default,runs/cg-res0.pt+refiner --out benchmarks/results/sfm-subsets/reichstag

A scene folder holds ``images/`` and ``gt/`` (a COLMAP model of the true cameras, as
``eval.pose`` and ``eval.sfm --truth`` read). Its images, sorted by name, are cut into windows of
``--size`` consecutive images starting every ``--step``; each window is a folder of links
(``OUT/window-K/images``) reconstructed by ``eval.sfm``'s ``run_sfm`` with every method, the
cameras measured against the true ones. ``OUT/report.md``: the camera-centre RMSE (after the
best similarity) per window and method, the median over windows, and how many windows each method
has below the first's. The windows overlap: they are not independent samples, but a method that
wins one reconstruction by chance will not win them all.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
from pathlib import Path


def windows(names: list[str], size: int, step: int) -> list[list[str]]:
    """Consecutive runs of ``size`` names starting every ``step`` (the last ending at the end)."""
    if size < 3 or size > len(names):
        raise ValueError(f"--size must be between 3 and the scene's {len(names)} images, got {size}")
    starts = list(range(0, len(names) - size + 1, step))
    if starts[-1] != len(names) - size:
        starts.append(len(names) - size)
    return [names[s:s + size] for s in starts]


def link_images(scene: Path, names: list[str], folder: Path) -> Path:
    """``folder/images`` holding links to ``names`` of ``scene/images`` (made once)."""
    images = folder / "images"
    images.mkdir(parents=True, exist_ok=True)
    for name in names:
        link = images / name
        if not link.exists():
            os.symlink((scene / "images" / name).resolve(), link)
    return images


def report(rows: dict[str, dict[str, float]], methods: list[str], scene: Path, size: int) -> str:
    lines = [f"# Camera-centre RMSE on windows of {size} images of `{scene}`", "",
             "| window | first image | " + " | ".join(methods) + " |", "|---|---|" + "---:|" * len(methods)]
    def cell(v: float) -> str:
        return "–" if math.isnan(v) else f"{v:.4g}"  # no model, or too few cameras to align
    for window, row in rows.items():
        lines.append(f"| {window} | {row['first']} | " + " | ".join(cell(row[m]) for m in methods) + " |")
    medians = [statistics.median(v) if (v := [r[m] for r in rows.values() if not math.isnan(r[m])]) else math.nan for m in methods]
    lines.append("| median | | " + " | ".join(cell(v) for v in medians) + " |")
    lines += ["", f"Windows with a lower RMSE than `{methods[0]}` (– counts as higher): " +
              ", ".join(f"`{m}` {sum(r[m] < r[methods[0]] for r in rows.values())} of {len(rows)}" for m in methods[1:]), ""]
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.sfm_subsets", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("scene", type=Path, help="a scene folder: images/ and gt/ (COLMAP model of the true cameras)")
    p.add_argument("--size", type=int, default=7, help="images per window")
    p.add_argument("--step", type=int, default=1, help="a window starts every STEP images")
    p.add_argument("--methods", default="default,colmap", help="comma-separated, as eval.sfm takes them; the first is compared")
    p.add_argument("--out", type=Path, required=True)
    args = p.parse_args(argv)
    from pygmatch.errors import PygmatchError  # noqa: PLC0415 (after the flags: --help answers without torch)
    from pygmatch.evaluation.sfm import run_sfm  # noqa: PLC0415
    from pygmatch.sfm.collection import list_collection  # noqa: PLC0415

    methods = [m for m in args.methods.split(",") if m]
    try:
        if not (args.scene / "gt").is_dir():
            raise PygmatchError(f"{args.scene}: no gt/ folder of true cameras")
        chosen = windows(list_collection(args.scene / "images"), args.size, max(1, args.step))
        rows = {}
        for k, names in enumerate(chosen):
            folder = args.out / f"window-{k}"
            print(f"window {k + 1}/{len(chosen)}: {names[0]} ... {names[-1]}", flush=True)
            summary = run_sfm(link_images(args.scene, names, folder), folder, methods, truth=args.scene / "gt", overwrite=True,
                              progress=False)
            rows[f"window-{k}"] = {"first": names[0], **{m: summary["methods"][m].get("cameras", {}).get("centre_rmse", float("nan"))
                                                         for m in methods}}
    except (PygmatchError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    text = report(rows, methods, args.scene, args.size)
    (args.out / "report.md").write_text(text)
    (args.out / "rmse.json").write_text(json.dumps(rows, indent=2))
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
