"""``pygmatch match A B --out matches.png``: match two images with a pipeline, draw and save the
matches (and, with ``--json``, every position and score). The first command to try.
``pygmatch graph IMAGE --graph knn --k 8 --out graph.png``: draw a keypoint graph on an image.
``pygmatch sfm IMAGES --out DIR``: a folder of photographs to COLMAP models (pairs, a resumable
store of features and matches, optionally on Dask workers, pycolmap's mapping).

The other commands: ``python -m eval.coco`` / ``pygmatch-eval`` (synthetic pairs),
``python -m eval.hpatches`` / ``pygmatch-hpatches`` (real sequences), ``python -m train.run`` /
``pygmatch-train`` (the graph network), ``python -m eval.attention`` / ``pygmatch-attention``."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from pygmatch.commands.flags import (FEATURES_HELP, ArgumentParser, add_graph_args, add_selection_arg, contrast_threshold, positive_int,
                                     probability_threshold, run_cli)
from pygmatch.data.features import DEFAULT_CONTRAST_THRESHOLD, DEFAULT_MAX_KEYPOINTS, FEATURES, SYNTHESIS_MIN_INLIERS, VIEWS
from pygmatch.data.epipolar import rotation_angle
from pygmatch.data.homography import ESTIMATORS

GEOMETRIES = ("homography", "fundamental", "essential")
DEFAULT_RANSAC_PX = {"homography": 3.0, "fundamental": 1.0, "essential": 1.0}
METHOD_HELP = ("pipeline MATCHER[+REFINER] (default: default = candidate-graph+refiner at threshold 0.2, the shipped best); matchers "
               "nn, nn-ratio, candidate-graph or a model file; refiners refiner, ncc or a refiner file, e.g. nn-ratio+refiner")


def parser() -> argparse.ArgumentParser:
    p = ArgumentParser(prog="pygmatch", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    m = commands.add_parser("match", help="match two images; draw and save the matches",
                            description="Match two images, draw the matches (green: the RANSAC inliers of --geometry) and save them.")
    m.add_argument("image0", type=Path)
    m.add_argument("image1", type=Path)
    m.add_argument("--method", default="default", help=METHOD_HELP)
    m.add_argument("--out", type=Path, default=Path("matches.png"), help="the drawing (default: matches.png)")
    m.add_argument("--json", type=Path, help="also write keypoints, matches, scores, matched positions (and the --geometry model) as JSON")
    m.add_argument("--overwrite", action="store_true", help="replace an existing --out / --json (never one of the inputs)")
    geometry = m.add_mutually_exclusive_group()
    geometry.add_argument("--geometry", choices=GEOMETRIES,
                          help="estimate this model by RANSAC on the matched positions and draw its inliers in green: homography "
                               "(a plane, or a camera turning about its centre), fundamental (any two views of a rigid scene), "
                               "essential (the relative pose R, t; needs the cameras' intrinsics, see --intrinsics)")
    geometry.add_argument("--homography", dest="geometry", action="store_const", const="homography",
                          help="the same as --geometry homography")
    m.add_argument("--ransac-px", type=float, default=None,
                   help="RANSAC threshold in original pixels (default: 3 for the homography, 1 for fundamental and essential)")
    m.add_argument("--estimator", choices=ESTIMATORS, default="opencv",
                   help="RANSAC of --geometry: OpenCV's (default) or PoseLib's LO-RANSAC (pip install poselib)")
    m.add_argument("--intrinsics", nargs="+", metavar="K",
                   help="--geometry essential: each camera's 3x3 matrix K (original pixels, COLMAP's convention), one file for "
                        "both images or one per image (K0.txt K1.txt: 9 numbers each), or 'exif' (the EXIF 35 mm-equivalent "
                        "focal length: f = f35/36 x the longer side) or 'size' (f = 1.2 x the longer side, COLMAP's prior); "
                        "principal point at the centre. Default: exif where the image has it, else size")
    m.add_argument("--features", choices=FEATURES, default=None, help=FEATURES_HELP)
    m.add_argument("--max-keypoints", type=positive_int, default=DEFAULT_MAX_KEYPOINTS, help="per image (default %(default)s)")
    m.add_argument("--resize", type=positive_int, default=1024, help="longer image side keypoints are found at (default 1024)")
    m.add_argument("--contrast-threshold", type=contrast_threshold, default=DEFAULT_CONTRAST_THRESHOLD,
                   help="SIFT's contrast threshold, OpenCV's units (default %(default)s, COLMAP's; OpenCV's own is 0.04)")
    add_selection_arg(m)
    m.add_argument("--match-threshold", type=probability_threshold, help="learned matchers: probability threshold in [0, 1)")
    m.add_argument("--threads", type=positive_int, default=1, help="torch threads of the learned stages (default 1)")
    m.add_argument("--views", choices=VIEWS, default="plain",
                   help=f"auto: when the match has fewer than {SYNTHESIS_MIN_INLIERS} fundamental-matrix inliers, match ASIFT keypoints "
                        "(affine-simulated views: extreme viewpoints) instead, seconds more (default plain)")
    g = commands.add_parser("graph", help="draw the keypoints and the edges of a graph on an image",
                            description="Draw the keypoints of an image and the edges of one of pygmatch's graphs.")
    g.add_argument("image", type=Path)
    g.add_argument("--features", choices=FEATURES, default="sift")
    g.add_argument("--max-keypoints", type=positive_int, default=512)
    g.add_argument("--out", type=Path, default=Path("graph.png"))
    g.add_argument("--overwrite", action="store_true", help="replace an existing --out (never the image)")
    add_graph_args(g)
    add_sfm_parser(commands)
    return p


def add_sfm_parser(commands) -> None:
    from pygmatch.sfm.pairs import DEFAULT_TOP, PAIRINGS  # noqa: PLC0415

    s = commands.add_parser("sfm", help="a folder of photographs to COLMAP models (pairs, matching, pycolmap mapping)",
                            description="A folder of photographs to COLMAP models: the pairs worth matching, features and matches in a "
                                        "resumable store (features.h5, matches.h5 in hloc's layout; the same command continues a killed "
                                        "run), keypoint adjustment, a COLMAP database, pycolmap's verification and incremental mapping "
                                        "(one model per scene), report.md. Needs pycolmap, h5py (and Dask for --workers / --scheduler): "
                                        'pip install -e ".[sfm]".')
    s.add_argument("images", type=Path, help="folder of photographs (the image files directly inside it)")
    s.add_argument("--out", type=Path, required=True,
                   help="folder for pairs.txt, features.h5, matches.h5, database.db, sparse/N/, report.md, metrics.json; "
                        "an existing store there made the same way is continued")
    s.add_argument("--pairs", default="retrieval",
                   help=f"which pairs to match: {', '.join(PAIRINGS)} or a text file of 'name0 name1' lines (default retrieval)")
    s.add_argument("--top", type=positive_int, default=DEFAULT_TOP,
                   help=f"retrieval: most similar images per image; sequential: next images in name order; covisibility: "
                        f"images sharing most 3D points (default {DEFAULT_TOP})")
    s.add_argument("--model", type=Path, help="--pairs covisibility: an existing COLMAP model folder (cameras, images, points3D)")
    s.add_argument("--method", default="default", help=METHOD_HELP)
    s.add_argument("--features", choices=FEATURES, default=None, help=FEATURES_HELP)
    s.add_argument("--max-keypoints", type=positive_int, default=DEFAULT_MAX_KEYPOINTS, help="keypoints per image (default %(default)s)")
    s.add_argument("--contrast-threshold", type=contrast_threshold, default=DEFAULT_CONTRAST_THRESHOLD,
                   help="SIFT's contrast threshold, OpenCV's units (default %(default)s, COLMAP's; OpenCV's own is 0.04)")
    add_selection_arg(s)
    s.add_argument("--match-threshold", type=probability_threshold, default=None,
                   help="learned matchers: probability threshold in [0, 1) (default 0.1, as eval.sfm)")
    s.add_argument("--views", choices=VIEWS, default="plain",
                   help="auto: keypoints of simulated oblique views found for every image beforehand (seconds per image), "
                        "matched where a pair's plain match fails: extreme viewpoints (default plain)")
    where = s.add_mutually_exclusive_group()
    where.add_argument("--workers", type=positive_int, help="start a local Dask cluster of N worker processes (one thread each)")
    where.add_argument("--scheduler", help="send the work to an existing Dask cluster: its scheduler's address, tcp://HOST:PORT "
                                           "(workers need pygmatch and the photographs at the same path)")
    s.add_argument("--camera-mode", default="per-image", help="per-image (default), single or auto (COLMAP's guess from EXIF)")
    s.add_argument("--threads", type=positive_int, default=1, help="torch threads in this process and COLMAP's threads (default 1)")
    s.add_argument("--overwrite", action="store_true", help="start the store in --out again, discarding its features and matches "
                        "(needed when they were made with another pipeline or settings)")
    s.add_argument("--no-progress", action="store_true", help="no progress bars")


def main(argv=None) -> int:
    args = parser().parse_args(argv)
    return {"match": match, "graph": graph, "sfm": sfm}[args.command](args)


def sfm(args: argparse.Namespace) -> int:
    from pygmatch.evaluation.sfm import DEFAULT_MATCH_THRESHOLD  # noqa: PLC0415
    from pygmatch.pipeline import Pipeline, is_learned  # noqa: PLC0415
    from pygmatch.sfm.distributed import executor  # noqa: PLC0415
    from pygmatch.sfm.run import run_collection  # noqa: PLC0415

    threshold = args.match_threshold if args.match_threshold is not None else DEFAULT_MATCH_THRESHOLD
    pipe = Pipeline.load(args.method, features=args.features, max_keypoints=args.max_keypoints, contrast_threshold=args.contrast_threshold,
                         selection=args.selection, threads=args.threads, views=args.views,
                         **({"match_threshold": threshold} if is_learned(args.method) else {}))
    with executor(args.workers, args.scheduler) as where:
        summary = run_collection(args.images, args.out, pipe, args.pairs, top=args.top, model=args.model, executor=where,
                                 threads=args.threads, camera_mode=args.camera_mode, overwrite=args.overwrite, progress=not args.no_progress)
    models = summary["models"]
    print(f"{args.images}: {len(summary['names'])} images, {summary['pairs']} pairs ({summary['pairs_source']}; "
          f"{summary['pairs_matched']} matched now), {summary['verified_pairs']} verified; "
          f"{len(models)} model(s): " + (", ".join(f"{m['path']} {m['registered']} images" for m in models) or "none")
          + f"; {summary['timings_s']['total_s']:.1f} s; report in {args.out / 'report.md'}")
    return 0


def graph(args: argparse.Namespace) -> int:
    from pygmatch.data.features import extract  # noqa: PLC0415
    from pygmatch.data.images import as_gray  # noqa: PLC0415
    from pygmatch.files import check_outputs, writable_file  # noqa: PLC0415
    from pygmatch.graphs.base import keypoint_data  # noqa: PLC0415
    from pygmatch.graphs.registry import graph_from_flags  # noqa: PLC0415
    from pygmatch.viz import draw_graph  # noqa: PLC0415

    writable_file(args.out, "--out", image=True)  # before the work: a bad --out is one line, not a lost drawing
    check_outputs({"--out": args.out}, [args.image], args.overwrite)
    image = as_gray(args.image)
    intra = graph_from_flags(vars(args))
    data = intra(keypoint_data(extract(image, args.features, args.max_keypoints), (image.shape[1], image.shape[0])))
    draw_graph(image, data, args.out)
    print(f"{intra}: {data.num_nodes} keypoints, {data.edge_index.size(1)} edges -> {args.out}")
    return 0


def match(args: argparse.Namespace) -> int:
    # imported after parsing: --help answers without loading torch
    import numpy as np  # noqa: PLC0415

    from pygmatch import Pipeline  # noqa: PLC0415
    from pygmatch.data.epipolar import exif_focal_35mm, read_intrinsics  # noqa: PLC0415
    from pygmatch.data.geometry import warp_points  # noqa: PLC0415
    from pygmatch.data.homography import check_estimator  # noqa: PLC0415
    from pygmatch.errors import PygmatchError  # noqa: PLC0415
    from pygmatch.files import check_outputs, write_text, writable_file  # noqa: PLC0415
    from pygmatch.viz import draw_matches  # noqa: PLC0415

    writable_file(args.out, "--out", image=True, example="matches.png")  # before the work, not after
    if args.json is not None:
        writable_file(args.json, "--json", example="matches.json")
    model_files = [Path(p) for p in args.method.split("+") if Path(p).is_file()]  # e.g. --method run.pt: an input too
    check_outputs({"--out": args.out, "--json": args.json}, [args.image0, args.image1, *model_files], args.overwrite)
    ransac_px = DEFAULT_RANSAC_PX.get(args.geometry, 3.0) if args.ransac_px is None else args.ransac_px
    if not ransac_px > 0:
        raise PygmatchError(f"--ransac-px must be > 0, got {ransac_px}")
    if args.intrinsics is not None and args.geometry != "essential":
        raise PygmatchError("--intrinsics is for --geometry essential (the relative pose); the homography and the fundamental matrix need none")
    if args.intrinsics is not None and len(args.intrinsics) > 2:
        raise PygmatchError(f"--intrinsics: one K for both images or one per image, got {len(args.intrinsics)}")
    if args.geometry is not None:
        check_estimator(args.estimator, args.geometry)
    given_K = [None, None]
    if args.intrinsics is not None:  # files read before the work: a bad one is one line
        given_K = [k if k in ("exif", "size") else read_intrinsics(k) for k in args.intrinsics] * (3 - len(args.intrinsics))
        for path, given in zip((args.image0, args.image1), given_K):
            if isinstance(given, str) and given == "exif" and exif_focal_35mm(path) is None:
                raise PygmatchError(f"{path}: no EXIF 35 mm-equivalent focal length (FocalLengthIn35mmFilm); give --intrinsics K.txt "
                                    f"or --intrinsics size")
    pipe = Pipeline.load(args.method, features=args.features, max_keypoints=args.max_keypoints, resize=args.resize,
                         contrast_threshold=args.contrast_threshold, selection=args.selection, threads=args.threads,
                         match_threshold=args.match_threshold, views=args.views)
    res = pipe.match(args.image0, args.image1)
    model = inliers = None
    record = {}
    if args.geometry == "homography":
        model = res.homography(ransac_px, estimator=args.estimator)
        if model is not None:
            inliers = np.linalg.norm(warp_points(res.points0, model) - res.points1, axis=1) < ransac_px
        record = {"homography": None if model is None else model.tolist()}
    elif args.geometry == "fundamental":
        model = res.fundamental(ransac_px, args.estimator)
        if model is not None:
            model, inliers = model
        record = {"fundamental": None if model is None else model.tolist()}
    elif args.geometry == "essential":
        Ks, sources = [], []
        for path, features, given in zip((args.image0, args.image1), (res.features0, res.features1), given_K):
            K, source = camera_intrinsics(path, features.original_size, given)
            Ks.append(K)
            sources.append(source)
        pose = model = res.pose(Ks[0], Ks[1], ransac_px, args.estimator)
        if pose is not None:
            inliers = pose.inliers
        record = {"essential": None if pose is None else pose.E.tolist(), "R": None if pose is None else pose.R.tolist(),
                  "t": None if pose is None else pose.t.tolist(), "K0": Ks[0].tolist(), "K1": Ks[1].tolist(), "intrinsics": sources}
        for k, (K, source) in enumerate(zip(Ks, sources)):
            print(f"intrinsics of image {k}: {source}, f = {K[0, 0]:.1f} px, principal point ({K[0, 2]:.1f}, {K[1, 2]:.1f})")
    # drawn at the size the keypoints were found at: a 4000-pixel photograph's lines would be invisible
    f0, f1 = res.features0, res.features1
    n = len(res.matches)
    title = f"{args.method}: {n} matches" + (f", {int(inliers.sum())} {args.geometry} inliers" if inliers is not None else "")
    draw_matches(f0.image, f1.image, warp_points(res.points0, f0.S), warp_points(res.points1, f1.S), np.stack([np.arange(n)] * 2, 1),
                 inliers, args.out, title=title)
    if args.json is not None:
        out = {"method": args.method, "image0": str(args.image0), "image1": str(args.image1),
               "keypoints0": res.keypoints0.round(3).tolist(), "keypoints1": res.keypoints1.round(3).tolist(),
               "matches": res.matches.tolist(), "scores": res.scores.round(5).tolist(),
               "points0": res.points0.round(3).tolist(), "points1": res.points1.round(3).tolist()}
        if args.geometry is not None:
            out.update({"geometry": args.geometry, "estimator": args.estimator, "ransac_px": ransac_px, **record,
                        "inliers": None if inliers is None else inliers.tolist()})
        write_text(args.json, json.dumps(out) + "\n")
    print(f"{len(res.keypoints0)} and {len(res.keypoints1)} keypoints, {n} matches ({args.method}); drawing in {args.out}"
          + (f", JSON in {args.json}" if args.json is not None else ""))
    if args.geometry is not None:
        if model is None:
            least = {"homography": 4, "fundamental": 8, "essential": 5}[args.geometry]
            print(f"{args.geometry}: none (fewer than {least} matches or no model found)")
        elif args.geometry == "essential":
            print(f"relative pose (x1 = R x0 + t, |t| = 1): {int(inliers.sum())} inliers at {ransac_px:g} px, "
                  f"rotation {rotation_angle(model.R):.2f} deg\n"
                  f"R =\n{np.array2string(model.R, precision=6)}\nt = {np.array2string(model.t, precision=6)}")
        else:
            print(f"{args.geometry}: {int(inliers.sum())} inliers at {ransac_px:g} px\n" + np.array2string(model, precision=6))
    return 0


def camera_intrinsics(path: Path, size: tuple[int, int], given):
    """``(K, how it was found)`` of one image: a K read from a file, ``'exif'``, ``'size'``, or None:
    EXIF where the image has it, else the size guess."""
    import numpy as np  # noqa: PLC0415

    from pygmatch.data.epipolar import SIZE_FOCAL_FACTOR, exif_focal_35mm, intrinsics_from_exif, intrinsics_from_size  # noqa: PLC0415

    if isinstance(given, np.ndarray):
        return given, "from --intrinsics"
    if given in (None, "exif"):  # "exif" was checked before the work
        K = intrinsics_from_exif(path, size)
        if K is not None:
            return K, f"EXIF 35 mm-equivalent focal length {exif_focal_35mm(path):g} mm"
    return intrinsics_from_size(size), f"guessed from the image size ({SIZE_FOCAL_FACTOR:g} x the longer side)"


def cli() -> None:
    """The ``pygmatch`` console script."""
    run_cli(main, sys.argv[1:])


if __name__ == "__main__":
    cli()
