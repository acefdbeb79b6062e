"""``python -m eval.sfm``: structure from motion on a folder of photographs with pycolmap, each
pygmatch method beside COLMAP's own SIFT pipeline (installed: ``pygmatch-sfm``).

Per pygmatch method: keypoints extracted once per image, every pair (or the pairs of --pairs)
matched, refined positions combined into one per keypoint, a COLMAP database written, COLMAP's
geometric verification and incremental mapping. ``colmap``: COLMAP's SIFT and exhaustive matching
on the same images, then the same verification and mapping. Needs the optional dependency
pycolmap (pip install -e ".[sfm]")."""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from pygmatch.commands.flags import (FEATURES_HELP, ArgumentParser, add_selection_arg, contrast_threshold, positive_int,
                                     probability_threshold, run_cli)
from pygmatch.data.features import DEFAULT_CONTRAST_THRESHOLD, DEFAULT_MAX_KEYPOINTS, FEATURES, VIEWS
from pygmatch.evaluation.sfm import COLMAP, DEFAULT_MATCH_THRESHOLD, run_sfm, table
from pygmatch.sfm import CAMERA_MODES

__all__ = ["cli", "main", "parser"]

DEFAULT_METHODS = f"default,{COLMAP}"


def parser() -> argparse.ArgumentParser:
    p = ArgumentParser(prog="python -m eval.sfm", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--images", type=Path, required=True, help="folder of photographs of one scene (at least two)")
    p.add_argument("--out", type=Path, default=Path("eval-out/sfm"),
                   help="folder for report.md, metrics.json, sfm.png and each method's database and models (default eval-out/sfm)")
    p.add_argument("--methods", default=DEFAULT_METHODS,
                   help=f"comma-separated: pipeline names as in eval.coco (default, candidate-graph, nn-ratio, nn-ratio+ncc, ...) and "
                        f"'{COLMAP}' (COLMAP's SIFT + exhaustive matching); default {DEFAULT_METHODS}")
    p.add_argument("--truth", type=Path, default=None,
                   help="folder of the photographs' true cameras as a COLMAP model, text or binary (e.g. SCENE/gt): each model's "
                        "camera-centre and rotation errors after similarity alignment")
    p.add_argument("--pairs", default="exhaustive", help="'exhaustive' (every pair, the default) or a text file of 'name0 name1' lines")
    p.add_argument("--features", choices=FEATURES, default=None, help=f"pygmatch methods: {FEATURES_HELP}")
    p.add_argument("--max-keypoints", type=positive_int, default=DEFAULT_MAX_KEYPOINTS,
                   help=f"pygmatch methods: keypoints per image (default {DEFAULT_MAX_KEYPOINTS})")
    p.add_argument("--contrast-threshold", type=contrast_threshold, default=DEFAULT_CONTRAST_THRESHOLD,
                   help=f"pygmatch methods: SIFT's contrast threshold, OpenCV's units (default {DEFAULT_CONTRAST_THRESHOLD}, COLMAP's)")
    add_selection_arg(p)
    p.add_argument("--match-threshold", type=probability_threshold, default=DEFAULT_MATCH_THRESHOLD,
                   help=f"the graph network: match probability threshold in [0, 1) (default {DEFAULT_MATCH_THRESHOLD}: "
                        f"COLMAP's verification removes wrong matches, registration needs many)")
    p.add_argument("--camera-mode", choices=CAMERA_MODES, default="per-image",
                   help="one camera per image (default), one shared camera, or COLMAP's guess from the EXIF data")
    p.add_argument("--views", choices=VIEWS, default="plain",
                   help="auto: the pygmatch methods match simulated oblique views where a pair's plain match fails, as pygmatch sfm "
                        "--views auto (default plain)")
    p.add_argument("--threads", type=positive_int, default=1, help="threads of torch and of every COLMAP stage (default 1)")
    p.add_argument("--overwrite", action="store_true", help="replace the outputs of an earlier run in --out")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    return p


def main(argv=None) -> int:
    args = parser().parse_args(argv)
    start = time.perf_counter()
    methods = [m.strip() for m in args.methods.split(",")]
    pairs = None if args.pairs == "exhaustive" else Path(args.pairs)
    summary = run_sfm(args.images, args.out, methods, pairs, features=args.features, max_keypoints=args.max_keypoints,
                      contrast_threshold=args.contrast_threshold, selection=args.selection, match_threshold=args.match_threshold,
                      threads=args.threads, camera_mode=args.camera_mode, overwrite=args.overwrite, progress=not args.no_progress,
                      truth=args.truth, views=args.views)
    print(f"{args.images}: {len(summary['names'])} images, {summary['pairs']} pairs ({summary['pairs_source']})")
    print(table(summary))
    print(f"total {time.perf_counter() - start:.1f} s; report in {args.out}/report.md")
    return 0


def cli() -> None:
    """The ``pygmatch-sfm`` console script: ``main`` with one-line errors and exit statuses."""
    run_cli(main, sys.argv[1:])


if __name__ == "__main__":
    cli()
