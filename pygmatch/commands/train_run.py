"""``python -m train.run --graph knn --k 16``: train a pygmatch matcher on homography pairs."""
from __future__ import annotations

import argparse
import sys
from dataclasses import MISSING, fields
from pathlib import Path

import yaml

from pygmatch.errors import PygmatchError
from pygmatch.commands.flags import add_graph_args, command_name, flag_type, run_cli
from pygmatch.nn.config import PRESETS
from pygmatch.training.config import (DEFAULT_STEPS, DataConfig, ModelConfig, OptimConfig, RunConfig, TrainConfig, as_flag_text,
                                      is_nested)


def _flag(group, name: str, section: type, help: str | None = None, **kw) -> None:
    """``--name`` with the default, parser and choices of the config field it sets."""
    f = next(f for f in fields(section) if f.name == name.lstrip("-").replace("-", "_"))
    default = f.default_factory() if f.default is MISSING else f.default
    if isinstance(default, bool):
        kw.setdefault("action", argparse.BooleanOptionalAction)
    else:
        if f.metadata.get("parse"):
            kw.setdefault("type", flag_type(f.metadata["parse"]))
        if f.metadata.get("choices"):
            kw.setdefault("choices", list(f.metadata["choices"]))
    if isinstance(default, tuple) and f.name == "augment":
        default = ",".join(default)
    group.add_argument(name, default=default, help=help, **kw)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=command_name("python -m train.run"), description=__doc__)
    p.add_argument("--config", type=Path, help="YAML of a run's config (its config.yaml) or of flag values; flags given here override it")
    d = p.add_argument_group("data")
    _flag(d, "--data", DataConfig, "folder(s) of training images (default: the embedded pygmatch/datasets/coco-mini)", nargs="+")
    _flag(d, "--bank", DataConfig, "train from a feature bank (python -m train.bank) instead of extracting keypoints on the fly")
    _flag(d, "--augment", DataConfig, "bank augmentations, comma-separated from swap, similarity, subset ('none': off); see README")
    _flag(d, "--gt-match-px", DataConfig, "training ground truth: mutual nearest reprojections closer than this are matches")
    _flag(d, "--gt-unmatched-px", DataConfig, "... keypoints whose nearest reprojection is farther than this go to the dustbin (between: ignored)")
    _flag(d, "--val-data", DataConfig, "folder of validation images (default: the embedded images)")
    _flag(d, "--val-images", DataConfig, "use only the first N validation images")
    _flag(d, "--pairs-per-image", DataConfig, "homographies per image and epoch")
    _flag(d, "--features", DataConfig)
    _flag(d, "--max-keypoints", DataConfig)
    _flag(d, "--size", DataConfig)
    _flag(d, "--difficulty", DataConfig)
    add_graph_args(p)
    m = p.add_argument_group("model")
    _flag(m, "--preset", ModelConfig, "; ".join(f"{k}: {v}" for k, v in PRESETS.items()))
    _flag(m, "--dim", ModelConfig, "override the preset's width")
    _flag(m, "--layers", ModelConfig, "override the preset's depth")
    _flag(m, "--heads", ModelConfig, "override the preset's heads")
    _flag(m, "--conv", ModelConfig)
    _flag(m, "--assignment", ModelConfig, "dual-softmax is ~2x faster than sinkhorn on CPU")
    _flag(m, "--positional", ModelConfig)
    _flag(m, "--sinkhorn-iters", ModelConfig)
    _flag(m, "--descriptor-prior", ModelConfig, "start from nearest-neighbour matching of the input descriptors (see README)")
    _flag(m, "--deep-supervision", ModelConfig, "loss at every layer; trains the early-exit / pruning heads")
    _flag(m, "--ortho-weight", ModelConfig, "multi-scale: orthogonality loss between branches")
    _flag(m, "--graph-update", ModelConfig, "per-layer: rebuild the self edges as descriptor kNN (--k) from each layer's features")
    _flag(m, "--value-update", ModelConfig, "every | frozen-first-N | every-N: where attention values come from")
    _flag(m, "--dense-warmup-layers", ModelConfig, "skip complete self-attention edge sets in the first N layers")
    o = p.add_argument_group("optimisation")
    _flag(o, "--batch-size", OptimConfig)
    _flag(o, "--lr", OptimConfig)
    _flag(o, "--epochs", OptimConfig)
    _flag(o, "--max-steps", OptimConfig, f"default: {DEFAULT_STEPS} when --epochs is not given")
    _flag(o, "--warmup-steps", OptimConfig)
    _flag(o, "--grad-clip", OptimConfig, "0 disables")
    _flag(o, "--precision", OptimConfig)
    _flag(o, "--seed", OptimConfig)
    r = p.add_argument_group("run")
    _flag(r, "--accelerator", RunConfig)
    _flag(r, "--devices", RunConfig)
    _flag(r, "--num-nodes", RunConfig)
    _flag(r, "--workers", RunConfig, "data-loading processes (default: 2 on the fly, 0 from a bank)")
    _flag(r, "--threads", RunConfig, "torch threads of the training process (default: 1 on the fly, where SIFT takes the other core; 2 from a bank)")
    _flag(r, "--out", RunConfig, "run folder (default: runs/<graph>-<time>)")
    _flag(r, "--resume", RunConfig, "'last' (the run folder's last.ckpt) or a checkpoint path")
    _flag(r, "--init", RunConfig, "start from the weights of this checkpoint")
    _flag(r, "--val-every", RunConfig, "validate every N steps")
    _flag(r, "--log-every", RunConfig)
    _flag(r, "--ckpt-every-steps", RunConfig, "write last.ckpt every N steps (0: only by time)")
    _flag(r, "--ckpt-minutes", RunConfig, "... and at least every N minutes")
    _flag(r, "--overwrite", RunConfig, "replace the run already in --out (default: refuse)", action="store_true")
    _flag(r, "--early-stop", RunConfig, "stop after N validations without a better AUC@3 (0: off)")
    r.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bar (for logs)")
    return p


def config_file_values(p: argparse.ArgumentParser, path: Path) -> dict:
    """The flag values of a YAML file (a run's nested config.yaml, or flat flag values as the first
    layout saved them), checked by the same parsers and choices as the flags."""
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
    if is_nested(values):
        try:
            values = TrainConfig.from_dict(values).to_flags()
        except PygmatchError as e:
            raise PygmatchError(f"{path}: {e}") from None
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
                value = action.type(as_flag_text(key, value))
            elif action.choices is not None:
                value = str(value)  # e.g. precision: 32 in YAML is the choice "32"
            if action.choices is not None and value not in action.choices:
                raise argparse.ArgumentTypeError(f"{value!r} is not one of {', '.join(map(str, action.choices))}")
        except (argparse.ArgumentTypeError, ValueError, TypeError) as e:
            raise PygmatchError(f"{path}: {key}: {e}") from None
        checked[key] = value
    return checked


def resolve(argv=None) -> TrainConfig:
    """Flags over the --config file over the defaults, as the run's ``TrainConfig``."""
    p = parser()
    first, _ = p.parse_known_args(argv)
    if first.config is not None:
        p.set_defaults(**config_file_values(p, first.config))
    flags = vars(p.parse_args(argv))
    flags.pop("config")
    if flags["resume"] and flags["init"]:
        if first.init is not None:  # given on this command line, not read from --config
            raise PygmatchError("--resume and --init exclude each other")
        flags["init"] = None  # the saved run's starting weights: resuming continues from its checkpoint instead
    return TrainConfig.from_flags(flags).with_out()


def main(argv=None) -> int:
    cfg = resolve(argv)
    from pygmatch.training.run import train  # noqa: PLC0415 (Lightning is slow to import; flags first)

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
