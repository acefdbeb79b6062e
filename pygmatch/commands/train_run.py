"""``python -m train.run --bank BANK --graph knn --k 8``: train pygmatch's graph network (the
candidate graph network, ``pygmatch.nn.candidate_graph``) on homography pairs, from feature banks
(``python -m train.bank``) or made on the fly from image folders. Every flag is a field of the
run's config (``pygmatch.training.config``: data, model, optim, run), with its default, parser and
help from there; ``--config`` reads a run's ``config.yaml``."""
from __future__ import annotations

import argparse
import sys
from dataclasses import MISSING, fields
from pathlib import Path

import yaml

from pygmatch.commands.flags import ArgumentParser, add_graph_args, command_name, flag_type, run_cli
from pygmatch.errors import PygmatchError
from pygmatch.training.config import GRAPH_FLAGS, RunSpec, TrainConfig
from pygmatch.values import as_flag_text


def add_section(p: argparse.ArgumentParser, name: str, section: type) -> None:
    """One flag per field of a config section: ``--field-name`` with the field's default, parser,
    choices and help."""
    group = p.add_argument_group(name)
    for f in fields(section):
        if f.name == "graph":  # the graph flags (add_graph_args) set it
            continue
        default = f.default_factory() if f.default is MISSING else f.default
        kw = {"default": default, "help": (f.metadata.get("help") or "") + (" (default: %(default)s)" if default is not None else "")}
        if isinstance(default, bool):
            kw["action"] = argparse.BooleanOptionalAction
        else:
            if f.metadata.get("parse"):
                kw["type"] = flag_type(f.metadata["parse"])
            if f.metadata.get("choices"):
                kw["choices"] = list(f.metadata["choices"])
            if "list[" in str(f.type):
                kw["nargs"] = "+"
        if isinstance(default, tuple):
            kw["default"] = as_flag_text(f.name, default)
        group.add_argument("--" + f.name.replace("_", "-"), **kw)


def run_parser(spec: type[RunSpec], checkout: str, description: str) -> argparse.ArgumentParser:
    """``--config`` and one flag per field of each section of the run config ``spec``."""
    p = ArgumentParser(prog=command_name(checkout), description=description)
    p.add_argument("--config", type=Path, help="YAML of a run's config (its config.yaml) or of flag values; flags given here override it")
    for name, section in spec.SECTIONS.items():
        add_section(p, name, section)
    return p


def parser() -> argparse.ArgumentParser:
    p = run_parser(TrainConfig, "python -m train.run", __doc__)
    add_graph_args(p, k=GRAPH_FLAGS["k"])  # over the candidates' positions in each image
    return p


def config_file_values(p: argparse.ArgumentParser, path: Path, spec: type[RunSpec] = TrainConfig) -> dict:
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
    if spec.is_nested(values):
        try:
            values = spec.from_dict(values).to_flags()
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


def resolve(argv=None, spec: type[RunSpec] = TrainConfig, p: argparse.ArgumentParser | None = None) -> RunSpec:
    """Flags (of the parser ``p``, default ``parser()``) over the --config file over the defaults,
    as the run's config of class ``spec``."""
    p = p or parser()
    first, _ = p.parse_known_args(argv)
    if first.config is not None:
        p.set_defaults(**config_file_values(p, first.config, spec))
    flags = vars(p.parse_args(argv))
    flags.pop("config")
    if flags["resume"] == "last" and flags["out"] is None:  # runs/<graph>-<time> would name a new, empty folder
        raise PygmatchError("--resume last: name the run to continue with --out RUN (or --config RUN/config.yaml)")
    if flags["resume"] and flags["init"]:
        if first.init is not None:  # given on this command line, not read from --config
            raise PygmatchError("--resume and --init exclude each other")
        flags["init"] = None  # the saved run's starting weights: resuming continues from its checkpoint instead
    return spec.from_flags(flags).with_out()


def main(argv=None) -> int:
    cfg = resolve(argv)
    from pygmatch.training.run import train  # noqa: PLC0415 (Lightning is slow to import; flags first)

    out = train(cfg)
    best = out / "best.ckpt"
    print(f"\nrun folder: {out}\n  checkpoints: {best if best.exists() else '(no validation yet)'}, {out / 'last.ckpt'}"
          f"\n  config: {out / 'config.yaml'}; curves: {out / 'curves.png'}; logs: {out / 'csv'}/version_*/metrics.csv,"
          f" tensorboard --logdir {out / 'tb'}"
          f"\ncompare with the baseline:\n  python -m eval.coco --methods nn-ratio,{out} --out {out / 'eval-coco'}")
    return 0


def cli() -> None:
    """The ``pygmatch-train`` console script: ``main`` with one-line errors and exit statuses."""
    run_cli(main, sys.argv[1:])


if __name__ == "__main__":
    cli()
