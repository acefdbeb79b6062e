"""``python -m eval.attention``: draw what the matcher's attention follows, layer by layer.

With ``--image1`` the two images are matched as they are (groups by final matching score); without
it, image 1 is image 0 warped by a random homography (``--seed``, ``--difficulty``) and the
easy / medium / hard groups come from the ground truth.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from pygmatch.evaluation.attention import (attention_span, candidate_attention_span, choose_candidates, choose_keypoints, draw_attention,
                                           draw_candidate_attention, group_keypoints, lookalikes, plot_span, record_attention)
from pygmatch.data.geometry import warp_points
from pygmatch.matching.candidate_graph import MIN_CANDIDATES, CandidateGraphMatching, candidate_graph, is_candidate_graph_file
from pygmatch.checkpoint import load_model
from pygmatch.files import writable_folder, write_text
from pygmatch.commands.flags import command_name, non_negative_float, positive_int, run_cli
from pygmatch.data import DEFAULT_SIZE, make_pair, pair_rng
from pygmatch.data.images import MIN_SIDE, as_gray
from pygmatch.data.images import downscale
from pygmatch.errors import PygmatchError
from pygmatch.data.features import extract
from pygmatch.matching.graph import GraphMatching
from pygmatch.threads import torch_threads
from pygmatch.data.ground_truth import ground_truth_matches


def parser():
    p = argparse.ArgumentParser(prog=command_name("python -m eval.attention"), description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--ckpt", default="default", help="checkpoint, run folder or 'default' (the shipped attention graph matcher); "
                   "'candidate-graph' or a train.candidate_graph file: the candidate graph network (one drawing per layer of "
                   "each chosen candidate's attention in image 0's and image 1's graph; --kind, --per-head and --compare do not apply)")
    p.add_argument("--compare", nargs="+", default=[], metavar="CKPT",
                   help="more checkpoints / run folders whose attention span on the same pair joins attention_span.png")
    p.add_argument("--image0", required=True, type=Path)
    p.add_argument("--image1", type=Path, help="second image (default: image 0 under a random homography)")
    p.add_argument("--layers", default="all", help="comma-separated layer indices, or 'all'")
    p.add_argument("--kind", default="self,cross", help="self, cross or both")
    p.add_argument("--per-head", action="store_true", help="one drawing per head besides the head average")
    p.add_argument("--points", type=positive_int, default=2, help="keypoints drawn per group")
    p.add_argument("--max-keypoints", type=positive_int, default=None, help="default: the model's")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--difficulty", type=non_negative_float, default=1.0)
    p.add_argument("--max-side", type=max_side_type, default=1024,
                   help="with --image1: downscale both images so the longer side is at most N px, as the pipeline's resize "
                        "(default 1024; 0 keeps the original size). Without it image 0 is resized to 640x480")
    p.add_argument("--threads", type=positive_int, default=1,
                   help="torch threads (default 1: on a CPU shared with another busy process more threads spin-wait and collapse)")
    p.add_argument("--out", type=Path, default=Path("attention-out"))
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


def record_pair(model, im0, im1, max_keypoints: int | None, names: tuple[str, str] = ("image 0", "image 1")):
    """The model's own keypoints (its features and count unless overridden) and graphs on the pair, and its attention.
    An image with fewer than 2 keypoints is a one-line error naming it (``names``): there is no attention to draw."""
    cfg = model.cfg
    n = max_keypoints or cfg.max_keypoints
    kp0, kp1 = extract(im0, cfg.features, n), extract(im1, cfg.features, n)
    check_keypoints((kp0, kp1), names, cfg.features)
    # the model's graphs, as the graph matching stage builds them (threads and resizing are handled by the caller)
    pair = GraphMatching(model, threads=None).prepare(kp0, kp1, (im0.shape[1], im0.shape[0]), (im1.shape[1], im1.shape[0]))
    return record_attention(model, pair), kp0, kp1


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
    if args.ckpt == "candidate-graph" or is_candidate_graph_file(args.ckpt):
        return run_candidate_graph(args)
    kinds = [k.strip() for k in args.kind.split(",")]
    if not set(kinds) <= {"self", "cross"}:
        raise PygmatchError(f"--kind: expected self and/or cross, got {args.kind!r}")
    model = load_model(args.ckpt)
    cfg = model.cfg
    layers = parse_layers(args.layers, cfg.layers)
    im0, im1, H, names = load_pair(args)
    rec, kp0, kp1 = record_pair(model, im0, im1, args.max_keypoints, names)
    gt = ground_truth_matches(kp0.xy, kp1.xy, H)[0] if H is not None else None
    groups = group_keypoints(rec, gt)
    looks = lookalikes(kp0.descriptors)
    chosen = choose_keypoints(groups, looks, args.points)
    written = []
    for layer in layers:
        for kind in kinds:
            heads = [None] + (list(range(cfg.heads)) if args.per_head else [])
            for head in heads:
                name = f"layer{layer}_{kind}" + ("" if head is None else f"_head{head}") + ".png"
                draw_attention(im0, im1, kp0.xy, kp1.xy, rec, layer, kind, chosen, head, args.out / name)
                written.append(name)
    span = attention_span(rec, kp0.xy, kp1.xy, H)
    spans = {run_label(args.ckpt): span}
    for other in args.compare:
        r, k0, k1 = record_pair(load_model(other), im0, im1, args.max_keypoints, names)
        spans[run_label(other)] = attention_span(r, k0.xy, k1.xy, H)
    plot_span(spans, args.out / "attention_span.png")
    counts = {g: int((groups == g).sum()) for g in ("easy", "medium", "hard")}
    summary = {"groups": counts, "chosen": chosen, "lookalikes_of_chosen": {g: [int(looks[i]) for i in v] for g, v in chosen.items()},
               "attention_span_px": spans, "ground_truth": H is not None}
    write_text(args.out / "attention.json", json.dumps(summary, indent=2))
    print(f"keypoints: {len(kp0)} / {len(kp1)}; groups {counts}; {len(written)} drawings, attention_span.png and attention.json in {args.out}")
    for label, sp in spans.items():
        print(f"span (px) of {label}: self " + ", ".join(f"{v:.0f}" for v in sp["self"]) + "; cross " + ", ".join(f"{v:.0f}" for v in sp["cross"])
              + f" (uniform attention: self {sp['uniform_self']:.0f}, cross {sp['uniform_cross']:.0f})")
    return 0


def run_candidate_graph(args) -> int:
    """``eval.attention`` for the candidate graph network: per layer, the attention of the chosen
    candidates (correct / wrong with a known homography, else kept / dropped) over their
    neighbours in image 0's graph and in image 1's, and the attention span per layer."""
    if args.compare or args.per_head:
        raise PygmatchError("--compare and --per-head apply to attention graph matchers, not to the candidate graph network")
    stage = CandidateGraphMatching.load("default" if args.ckpt == "candidate-graph" else args.ckpt)
    im0, im1, H, names = load_pair(args)
    kp0, kp1 = (extract(im, stage.cfg.features, args.max_keypoints or 1024) for im in (im0, im1))
    check_keypoints((kp0, kp1), names, stage.cfg.features)
    cand, data = candidate_graph(kp0, kp1, im0.shape[::-1], im1.shape[::-1], stage.cfg, stage.graph)
    if data is None:
        raise PygmatchError(f"{names[0]} and {names[1]}: {len(cand)} mutual nearest neighbours, fewer than {MIN_CANDIDATES}: "
                            "nothing for the network to judge")
    out, layers = stage.model.attention(data)
    chosen_layers = parse_layers(args.layers, len(layers))
    score = out.score.numpy()
    error = None if H is None else np.linalg.norm(warp_points(kp0.xy[cand[:, 0]], H) - kp1.xy[cand[:, 1]], axis=1)
    chosen = choose_candidates(score, error, stage.cfg.threshold, args.points)
    pos0, pos1 = data.pos0.numpy(), data.pos1.numpy()
    colours = "green correct / red wrong" if error is not None else "green kept / red dropped"
    for layer in chosen_layers:
        draw_candidate_attention(im0, im1, pos0, pos1, layers[layer], chosen, f"layer {layer}, mean of heads  {colours}",
                                 args.out / f"layer{layer}_candidates.png")
    span = candidate_attention_span(layers, pos0, pos1)
    summary = {"candidates": len(cand), "kept": int((score > stage.cfg.threshold).sum()), "chosen": chosen,
               "attention_span_px": {"image0": span["0"], "image1": span["1"]}, "ground_truth": H is not None}
    write_text(args.out / "attention.json", json.dumps(summary, indent=2))
    print(f"keypoints: {len(kp0)} / {len(kp1)}; {len(cand)} candidates; {len(chosen_layers)} drawings and attention.json in {args.out}")
    print("span (px) per layer: image 0 " + ", ".join(f"{v:.0f}" for v in span["0"]) + "; image 1 " + ", ".join(f"{v:.0f}" for v in span["1"]))
    return 0


def cli() -> None:
    """The ``pygmatch-attention`` console script: ``main`` with one-line errors and exit statuses."""
    run_cli(main, sys.argv[1:])


if __name__ == "__main__":
    cli()
