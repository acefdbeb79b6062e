"""``python -m train.run --graph knn --k 16``: train a pygmatch matcher on homography pairs."""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import yaml

from pygmatch.cli import non_negative_float, non_negative_int, positive, positive_int, run_cli, size_type
from pygmatch.errors import PygmatchError
from pygmatch.features import FEATURES
from pygmatch.graphs.registry import add_graph_args
from pygmatch.nn.config import ASSIGNMENTS, CONVS, GRAPH_UPDATES, POSITIONAL, PRESETS

positive_float = positive(float)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m train.run", description=__doc__)
    p.add_argument("--config", type=Path, help="YAML of flag values (e.g. a run's config.yaml); flags given here override it")
    d = p.add_argument_group("data")
    d.add_argument("--data", nargs="+", help="folder(s) of training images (default: the embedded pygmatch/datasets/coco-mini)")
    d.add_argument("--bank", help="train from a feature bank (python -m train.bank) instead of extracting keypoints on the fly")
    d.add_argument("--augment", default="swap,similarity,subset",
                   help="bank augmentations, comma-separated from swap, similarity, subset ('none': off); see README")
    d.add_argument("--gt-match-px", type=positive_float, default=3.0,
                   help="training ground truth: mutual nearest reprojections closer than this are matches")
    d.add_argument("--gt-unmatched-px", type=positive_float, default=5.0,
                   help="... keypoints whose nearest reprojection is farther than this go to the dustbin (between: ignored)")
    d.add_argument("--val-data", help="folder of validation images (default: the embedded images)")
    d.add_argument("--val-images", type=positive_int, default=None, help="use only the first N validation images")
    d.add_argument("--pairs-per-image", type=positive_int, default=1, help="homographies per image and epoch")
    d.add_argument("--features", choices=FEATURES, default="sift")
    d.add_argument("--max-keypoints", type=positive_int, default=1024)
    d.add_argument("--size", type=size_type, default=(640, 480))
    d.add_argument("--difficulty", type=non_negative_float, default=1.0)
    add_graph_args(p)
    m = p.add_argument_group("model")
    m.add_argument("--preset", choices=list(PRESETS), default="cpu", help="; ".join(f"{k}: {v}" for k, v in PRESETS.items()))
    m.add_argument("--dim", type=positive_int, help="override the preset's width")
    m.add_argument("--layers", type=positive_int, help="override the preset's depth")
    m.add_argument("--heads", type=positive_int, help="override the preset's heads")
    m.add_argument("--conv", choices=CONVS, default="attention")
    m.add_argument("--assignment", choices=ASSIGNMENTS, default="dual-softmax", help="dual-softmax is ~2x faster than sinkhorn on CPU")
    m.add_argument("--positional", choices=POSITIONAL, default="rotary")
    m.add_argument("--sinkhorn-iters", type=positive_int, default=50)
    m.add_argument("--descriptor-prior", action=argparse.BooleanOptionalAction, default=True,
                   help="start from nearest-neighbour matching of the input descriptors (see README)")
    m.add_argument("--deep-supervision", action=argparse.BooleanOptionalAction, default=False,
                   help="loss at every layer; trains the early-exit / pruning heads")
    m.add_argument("--ortho-weight", type=non_negative_float, default=0.0, help="multi-scale: orthogonality loss between branches")
    m.add_argument("--graph-update", choices=GRAPH_UPDATES, default="static",
                   help="per-layer: rebuild the self edges as descriptor kNN (--k) from each layer's features")
    m.add_argument("--value-update", default="every", help="every | frozen-first-N | every-N: where attention values come from")
    m.add_argument("--dense-warmup-layers", type=non_negative_int, default=0, help="skip complete self-attention edge sets in the first N layers")
    o = p.add_argument_group("optimisation")
    o.add_argument("--batch-size", type=positive_int, default=4)
    o.add_argument("--lr", type=positive_float, default=3e-4)
    o.add_argument("--epochs", type=positive_int, default=None)
    o.add_argument("--max-steps", type=positive_int, default=None, help="default: 100 when --epochs is not given")
    o.add_argument("--warmup-steps", type=non_negative_int, default=100)
    o.add_argument("--grad-clip", type=non_negative_float, default=1.0, help="0 disables")
    o.add_argument("--precision", choices=["32", "16-mixed", "bf16-mixed"], default="32")
    o.add_argument("--seed", type=int, default=0)
    r = p.add_argument_group("run")
    r.add_argument("--accelerator", default="auto", choices=["auto", "cpu", "gpu", "cuda", "mps"])
    r.add_argument("--devices", type=positive_int, default=1)
    r.add_argument("--num-nodes", type=positive_int, default=1)
    r.add_argument("--workers", type=non_negative_int, default=None, help="data-loading processes (default: 2 on the fly, 0 from a bank)")
    r.add_argument("--threads", type=positive_int, default=None, help="torch threads of the training process "
                   "(default: 1 on the fly, where SIFT takes the other core; 2 from a bank)")
    r.add_argument("--out", default=None, help="run folder (default: runs/<graph>-<time>)")
    r.add_argument("--resume", help="'last' (the run folder's last.ckpt) or a checkpoint path")
    r.add_argument("--init", help="start from the weights of this checkpoint")
    r.add_argument("--val-every", type=positive_int, default=100, help="validate every N steps")
    r.add_argument("--log-every", type=positive_int, default=10)
    r.add_argument("--ckpt-every-steps", type=non_negative_int, default=100, help="write last.ckpt every N steps (0: only by time)")
    r.add_argument("--ckpt-minutes", type=positive_float, default=2.0, help="... and at least every N minutes")
    r.add_argument("--overwrite", action="store_true", help="replace the run already in --out (default: refuse)")
    r.add_argument("--early-stop", type=non_negative_int, default=0, help="stop after N validations without a better AUC@3 (0: off)")
    r.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bar (for logs)")
    return p


PAIR_FLAGS = ("size", "cells")  # typed as AxB; other lists as a,b,c


def _as_flag_text(key: str, value) -> str:
    """A YAML value as it would be typed on the command line."""
    if isinstance(value, (list, tuple)):
        return ("x" if key in PAIR_FLAGS else ",").join(str(v) for v in value)
    return str(value)


def config_file_values(p: argparse.ArgumentParser, path: Path) -> dict:
    """The flag values of a YAML file, checked by the same types and choices as the flags."""
    if not path.is_file():
        raise PygmatchError(f"{path}: no such config file")
    try:
        values = yaml.safe_load(path.read_text()) or {}
    except UnicodeDecodeError:
        raise PygmatchError(f"{path}: not a text (YAML) file") from None
    except yaml.YAMLError as e:
        raise PygmatchError(f"{path}: not valid YAML ({str(e).splitlines()[0]})") from None
    if not isinstance(values, dict):
        raise PygmatchError(f"{path}: expected a mapping of flag names to values")
    actions = {a.dest: a for a in p._actions}
    unknown = sorted(set(values) - set(actions))
    if unknown:
        raise PygmatchError(f"{path}: unknown key(s) {', '.join(unknown)}")
    for key in ("config", "resume", "overwrite"):  # decisions of this command, not of the saved run
        values.pop(key, None)
    checked = {}
    for key, value in values.items():
        action = actions[key]
        if value is None:
            checked[key] = None
            continue
        try:
            if action.nargs in ("+", "*"):
                items = value if isinstance(value, list) else [value]
                value = [action.type(str(v)) if action.type else v for v in items]
            elif isinstance(action, (argparse._StoreTrueAction, argparse._StoreFalseAction, argparse.BooleanOptionalAction)):
                if not isinstance(value, bool):
                    raise argparse.ArgumentTypeError(f"expected true or false, got {value!r}")
            elif action.type is not None:
                value = action.type(_as_flag_text(key, value))
            elif action.choices is not None:
                value = str(value)  # e.g. precision: 32 in YAML is the choice "32"
            if action.choices is not None and value not in action.choices:
                raise argparse.ArgumentTypeError(f"{value!r} is not one of {', '.join(map(str, action.choices))}")
        except (argparse.ArgumentTypeError, ValueError, TypeError) as e:
            raise PygmatchError(f"{path}: {key}: {e}") from None
        checked[key] = value
    return checked


def resolve(argv=None) -> dict:
    """Flags over the --config file over the defaults; the dict written to the run's config.yaml."""
    p = parser()
    first, _ = p.parse_known_args(argv)
    if first.config is not None:
        p.set_defaults(**config_file_values(p, first.config))
    cfg = vars(p.parse_args(argv))
    cfg.pop("config")
    if cfg["out"] is None:
        cfg["out"] = str(Path("runs") / f"{cfg['graph']}-{time.strftime('%Y%m%d-%H%M%S')}")
    if cfg["resume"] and cfg["init"]:
        if first.init is not None:  # given on this command line, not read from --config
            raise PygmatchError("--resume and --init exclude each other")
        cfg["init"] = None  # the saved run's starting weights: resuming continues from its checkpoint instead
    if cfg["gt_match_px"] > cfg["gt_unmatched_px"]:
        raise PygmatchError(f"--gt-match-px {cfg['gt_match_px']} must not exceed --gt-unmatched-px {cfg['gt_unmatched_px']}")
    if cfg["workers"] is None:
        cfg["workers"] = 0 if cfg["bank"] else 2
    if cfg["threads"] is None:
        cfg["threads"] = 2 if cfg["bank"] else 1
    if cfg["epochs"] is None and cfg["max_steps"] is None:
        cfg["max_steps"] = 100
    return cfg


def main(argv=None) -> int:
    cfg = resolve(argv)
    from pygmatch.training import train  # noqa: PLC0415 (Lightning is slow to import; flags first)

    out = train(cfg)
    best = out / "best.ckpt"
    print(f"\nrun folder: {out}\n  checkpoints: {best if best.exists() else '(no validation yet)'}, {out / 'last.ckpt'}"
          f"\n  config: {out / 'config.yaml'}; curves: {out / 'curves.png'}; logs: {out / 'csv'}/version_*/metrics.csv,"
          f" tensorboard --logdir {out / 'tb'}"
          f"\ncompare with the baseline:\n  python -m eval.coco --methods nn-ratio,{out}")
    return 0


def cli() -> None:
    """The ``pygmatch-train`` console script: ``main`` with one-line errors and exit statuses."""
    run_cli(main, sys.argv[1:])


if __name__ == "__main__":
    cli()
