"""``pygmatch match A B --out matches.png``: match two images with a pipeline, draw and save the
matches (and, with ``--json``, every position and score). The first command to try.
``pygmatch graph IMAGE --graph knn --k 8 --out graph.png``: draw a keypoint graph on an image.

The other commands: ``python -m eval.coco`` / ``pygmatch-eval`` (synthetic pairs),
``python -m eval.hpatches`` / ``pygmatch-hpatches`` (real sequences), ``python -m train.run`` /
``pygmatch-train`` (the graph network), ``python -m eval.attention`` / ``pygmatch-attention``."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from pygmatch.commands.flags import ArgumentParser, add_graph_args, positive_int, probability_threshold, run_cli
from pygmatch.data.features import FEATURES

METHOD_HELP = ("pipeline MATCHER[+REFINER] (default: default = candidate-graph+refiner at threshold 0.2, the shipped best); matchers "
               "nn, nn-ratio, candidate-graph or a model file; refiners refiner, ncc or a refiner file, e.g. nn-ratio+refiner")


def parser() -> argparse.ArgumentParser:
    p = ArgumentParser(prog="pygmatch", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    m = commands.add_parser("match", help="match two images; draw and save the matches",
                            description="Match two images, draw the matches (green: RANSAC inliers with --homography) and save them.")
    m.add_argument("image0", type=Path)
    m.add_argument("image1", type=Path)
    m.add_argument("--method", default="default", help=METHOD_HELP)
    m.add_argument("--out", type=Path, default=Path("matches.png"), help="the drawing (default: matches.png)")
    m.add_argument("--json", type=Path, help="also write keypoints, matches, scores, matched positions (and the homography) as JSON")
    m.add_argument("--overwrite", action="store_true", help="replace an existing --out / --json (never one of the inputs)")
    m.add_argument("--homography", action="store_true", help="estimate the homography (RANSAC, --ransac-px) and colour its inliers")
    m.add_argument("--ransac-px", type=float, default=3.0, help="RANSAC threshold in original pixels (default 3)")
    m.add_argument("--max-keypoints", type=positive_int, default=1024)
    m.add_argument("--resize", type=positive_int, default=1024, help="longer image side keypoints are found at (default 1024)")
    m.add_argument("--match-threshold", type=probability_threshold, help="learned matchers: probability threshold in [0, 1)")
    m.add_argument("--threads", type=positive_int, default=1, help="torch threads of the learned stages (default 1)")
    g = commands.add_parser("graph", help="draw the keypoints and the edges of a graph on an image",
                            description="Draw the keypoints of an image and the edges of one of pygmatch's graphs.")
    g.add_argument("image", type=Path)
    g.add_argument("--features", choices=FEATURES, default="sift")
    g.add_argument("--max-keypoints", type=positive_int, default=512)
    g.add_argument("--out", type=Path, default=Path("graph.png"))
    g.add_argument("--overwrite", action="store_true", help="replace an existing --out (never the image)")
    add_graph_args(g)
    return p


def main(argv=None) -> int:
    args = parser().parse_args(argv)
    return match(args) if args.command == "match" else graph(args)


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
    from pygmatch.data.geometry import warp_points  # noqa: PLC0415
    from pygmatch.errors import PygmatchError  # noqa: PLC0415
    from pygmatch.files import check_outputs, write_text, writable_file  # noqa: PLC0415
    from pygmatch.viz import draw_matches  # noqa: PLC0415

    writable_file(args.out, "--out", image=True, example="matches.png")  # before the work, not after
    if args.json is not None:
        writable_file(args.json, "--json", example="matches.json")
    model_files = [Path(p) for p in args.method.split("+") if Path(p).is_file()]  # e.g. --method run.pt: an input too
    check_outputs({"--out": args.out, "--json": args.json}, [args.image0, args.image1, *model_files], args.overwrite)
    if not args.ransac_px > 0:
        raise PygmatchError(f"--ransac-px must be > 0, got {args.ransac_px}")
    pipe = Pipeline.load(args.method, max_keypoints=args.max_keypoints, resize=args.resize, threads=args.threads,
                         match_threshold=args.match_threshold)
    res = pipe.match(args.image0, args.image1)
    H = res.homography(args.ransac_px) if args.homography else None
    inliers = None
    if H is not None:
        inliers = np.linalg.norm(warp_points(res.points0, H) - res.points1, axis=1) < args.ransac_px
    # drawn at the size the keypoints were found at: a 4000-pixel photograph's lines would be invisible
    f0, f1 = res.features0, res.features1
    n = len(res.matches)
    title = f"{args.method}: {n} matches" + (f", {int(inliers.sum())} RANSAC inliers" if inliers is not None else "")
    draw_matches(f0.image, f1.image, warp_points(res.points0, f0.S), warp_points(res.points1, f1.S), np.stack([np.arange(n)] * 2, 1),
                 inliers, args.out, title=title)
    if args.json is not None:
        record = {"method": args.method, "image0": str(args.image0), "image1": str(args.image1),
                  "keypoints0": res.keypoints0.round(3).tolist(), "keypoints1": res.keypoints1.round(3).tolist(),
                  "matches": res.matches.tolist(), "scores": res.scores.round(5).tolist(),
                  "points0": res.points0.round(3).tolist(), "points1": res.points1.round(3).tolist()}
        if args.homography:
            record["homography"] = None if H is None else H.tolist()
            record["inliers"] = None if inliers is None else inliers.tolist()
        write_text(args.json, json.dumps(record) + "\n")
    print(f"{len(res.keypoints0)} and {len(res.keypoints1)} keypoints, {n} matches ({args.method}); drawing in {args.out}"
          + (f", JSON in {args.json}" if args.json is not None else ""))
    if args.homography:
        print("homography: " + ("none (fewer than 4 matches or a degenerate fit)" if H is None else
                                f"{int(inliers.sum())} inliers at {args.ransac_px:g} px\n" + np.array2string(H, precision=6)))
    return 0


def cli() -> None:
    """The ``pygmatch`` console script."""
    run_cli(main, sys.argv[1:])


if __name__ == "__main__":
    cli()
