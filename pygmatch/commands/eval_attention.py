"""``python -m eval.attention``: draw what the graph network's attention follows, layer by layer:
for a few chosen candidates, the neighbours each attends to in image 0's graph and in image 1's,
and the attention span per layer (``attention_span.png``, with ``--compare`` for other models).

With ``--image1`` the two images are matched as they are (the chosen candidates: the most
confident kept and dropped ones); without it, image 1 is image 0 warped by a random homography
(``--seed``, ``--difficulty``) and the chosen ones are the most confident correct and wrong ones.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from pygmatch.checkpoint import load_model
from pygmatch.commands.flags import ArgumentParser, command_name, non_negative_float, positive_int, run_cli
from pygmatch.data import DEFAULT_SIZE, make_pair, pair_rng
from pygmatch.data.features import extract
from pygmatch.data.geometry import warp_points
from pygmatch.data.images import MIN_SIDE, as_gray, downscale
from pygmatch.errors import PygmatchError
from pygmatch.evaluation.attention import attention_span, choose_candidates, draw_attention, plot_span
from pygmatch.files import check_outputs, writable_folder, write_text
from pygmatch.graphs.registry import graph_from_params
from pygmatch.matching.candidate_graph import MIN_CANDIDATES, candidate_graph
from pygmatch.threads import torch_threads


def parser():
    p = ArgumentParser(prog=command_name("python -m eval.attention"), description=__doc__,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--ckpt", default="default", help="the graph network: 'default' (the shipped one), a model file, a checkpoint or a "
                                                     "run folder of train.run")
    p.add_argument("--compare", nargs="+", default=[], metavar="CKPT",
                   help="more models whose attention span on the same pair joins attention_span.png")
    p.add_argument("--image0", required=True, type=Path)
    p.add_argument("--image1", type=Path, help="second image (default: image 0 under a random homography)")
    p.add_argument("--layers", default="all", help="comma-separated layer indices, or 'all'")
    p.add_argument("--points", type=positive_int, default=2, help="candidates drawn per group")
    p.add_argument("--max-keypoints", type=positive_int, default=1024)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--difficulty", type=non_negative_float, default=1.0)
    p.add_argument("--max-side", type=max_side_type, default=1024,
                   help="with --image1: downscale both images so the longer side is at most N px, as the pipeline's resize "
                        "(default 1024; 0 keeps the original size). Without it image 0 is resized to 640x480")
    p.add_argument("--threads", type=positive_int, default=1,
                   help="torch threads (default 1: on a CPU shared with another busy process more threads spin-wait and collapse)")
    p.add_argument("--out", type=Path, default=Path("attention-out"), help="folder for layerN.png, attention_span.png, attention.json")
    p.add_argument("--overwrite", action="store_true", help="replace an earlier output in --out (its drawings and attention.json)")
    return p


def max_side_type(text: str) -> int:
    try:
        v = int(text)
        if v != 0 and v < MIN_SIDE:
            raise ValueError
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of pixels >= {MIN_SIDE}, or 0 for the original size, got {text!r}") from None
    return v


def parse_layers(text: str, n_layers: int) -> list[int]:
    """``--layers``: ``all`` or comma-separated indices in 0..n_layers-1."""
    if text.strip() == "all":
        return list(range(n_layers))
    try:
        layers = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise PygmatchError(f"--layers: expected comma-separated layer indices (0..{n_layers - 1}) or 'all', got {text!r}") from None
    if not layers:
        raise PygmatchError(f"--layers: expected comma-separated layer indices (0..{n_layers - 1}) or 'all', got {text!r}")
    if any(not 0 <= k < n_layers for k in layers):
        raise PygmatchError(f"--layers: the model has layers 0..{n_layers - 1}, got {text}")
    return layers


def run_label(ckpt) -> str:
    path = Path(str(ckpt))
    return path.parent.name if path.suffix == ".ckpt" else path.stem if path.suffix == ".pt" else path.name


def record(model, im0, im1, kp0, kp1, names):
    """(candidates (K, 2), the network's output, every layer's attention)."""
    cand, data = candidate_graph(kp0, kp1, im0.shape[::-1], im1.shape[::-1], model.cfg, graph_from_params(model.cfg.graph))
    if data is None:
        raise PygmatchError(f"{names[0]} and {names[1]}: {len(cand)} mutual nearest neighbours, fewer than {MIN_CANDIDATES}: "
                            "nothing for the network to judge")
    return (cand, *model.attention(data))


def main(argv=None) -> int:
    args = parser().parse_args(argv)
    writable_folder(args.out, "--out")  # a bad --out is one line now, not a traceback after the work
    with torch_threads(args.threads):
        return run(args)


def load_pair(args):
    """``(image 0, image 1, the true homography or None, their names)``: the two images, or image 0 and
    its warp by a random homography (``--seed``, ``--difficulty``)."""
    if args.image1 is None:
        im0, im1, H = make_pair(as_gray(args.image0, DEFAULT_SIZE), pair_rng(args.seed, 0), args.difficulty)
        return im0, im1, H, (str(args.image0), f"{args.image0} warped (image 1)")
    im0, im1 = (downscale(as_gray(p), args.max_side)[0] for p in (args.image0, args.image1))
    return im0, im1, None, (str(args.image0), str(args.image1))


def check_keypoints(kps, names, features: str) -> None:
    for name, kp in zip(names, kps):
        if len(kp) < 2:
            raise PygmatchError(f"{name}: {len(kp)} {features.upper()} keypoint(s) found, at least 2 are needed to look at attention "
                                "(a blank or featureless image?)")


def run(args) -> int:
    model = load_model(args.ckpt)
    others = {other: load_model(other) for other in args.compare}  # a bad --compare is one line before anything is drawn
    chosen_layers = parse_layers(args.layers, model.cfg.layers)
    drawings = [args.out / f"layer{layer}.png" for layer in chosen_layers]
    check_outputs({"--out": [*drawings, args.out / "attention_span.png", args.out / "attention.json"]},
                  [args.image0, args.image1, args.ckpt, *args.compare], args.overwrite)
    im0, im1, H, names = load_pair(args)
    kp0, kp1 = (extract(im, model.cfg.features, args.max_keypoints) for im in (im0, im1))
    check_keypoints((kp0, kp1), names, model.cfg.features)
    cand, out, layers = record(model, im0, im1, kp0, kp1, names)
    score = out.score.numpy()
    error = None if H is None else np.linalg.norm(warp_points(kp0.xy[cand[:, 0]], H) - kp1.xy[cand[:, 1]], axis=1)
    chosen = choose_candidates(score, error, model.cfg.threshold, args.points)
    pos0, pos1 = kp0.xy[cand[:, 0]], kp1.xy[cand[:, 1]]
    colours = "green correct / red wrong" if error is not None else "green kept / red dropped"
    for layer, drawing in zip(chosen_layers, drawings):
        draw_attention(im0, im1, pos0, pos1, layers[layer], chosen, f"layer {layer}, mean of heads  {colours}", drawing)
    spans = {run_label(args.ckpt): attention_span(layers, pos0, pos1)}
    for other, other_model in others.items():
        other_cand, _, other_layers = record(other_model, im0, im1, kp0, kp1, names)
        spans[run_label(other)] = attention_span(other_layers, kp0.xy[other_cand[:, 0]], kp1.xy[other_cand[:, 1]])
    plot_span(spans, args.out / "attention_span.png")
    summary = {"candidates": len(cand), "kept": int((score > model.cfg.threshold).sum()), "chosen": chosen,
               "attention_span_px": spans, "ground_truth": H is not None}
    write_text(args.out / "attention.json", json.dumps(summary, indent=2))
    print(f"keypoints: {len(kp0)} / {len(kp1)}; {len(cand)} candidates; {len(chosen_layers)} drawings, attention_span.png and "
          f"attention.json in {args.out}")
    for label, span in spans.items():
        print(f"span (px) per layer of {label}: image 0 " + ", ".join(f"{v:.0f}" for v in span["0"]) + "; image 1 " +
              ", ".join(f"{v:.0f}" for v in span["1"]))
    return 0


def cli() -> None:
    """The ``pygmatch-attention`` console script: ``main`` with one-line errors and exit statuses."""
    run_cli(main, sys.argv[1:])


if __name__ == "__main__":
    cli()
