"""The shipped weights folder and the one model-file format: ``torch.save`` of a dict with
``format``, ``version``, ``config`` and ``state_dict`` (plain tensors and values only, so files are
read with ``weights_only=True``), read back with one-line errors. The graph network's and the
refiner's files are of this kind."""
from __future__ import annotations

import os
from dataclasses import fields
from pathlib import Path

from .errors import PygmatchError

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"  # the shipped model files (package data)


def read_model_file(path: str | os.PathLike, shipped: Path, fmt: str, version: int, what: str, older: tuple[int, ...] = ()) -> tuple[Path, dict]:
    """``(path, contents)`` of a file written with ``{"format": fmt, "version": version, ...}`` (or one
    of the ``older`` versions the caller upgrades); ``"default"`` names the ``shipped`` one. ``what``
    ("refiner") names it in errors."""
    path = shipped if str(path) == "default" else Path(path)
    if not path.is_file():
        raise PygmatchError(f"{path}: no such {what} file")
    import torch  # noqa: PLC0415 (imported on use: the commands' --help stays fast)

    try:
        contents = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 (any unreadable file is one line)
        raise PygmatchError(f"{path}: not a readable {what} file ({type(e).__name__})") from None
    if not isinstance(contents, dict) or contents.get("format") != fmt:
        raise PygmatchError(f"{path}: not a pygmatch {what} (no format {fmt!r})")
    if contents.get("version") != version and contents.get("version") not in older:
        raise PygmatchError(f"{path}: {what} version {contents.get('version')!r}; this pygmatch reads version {version}")
    return path, contents


def config_from_dict(cls, d: dict, what: str, overrides: dict | None = None, options: tuple[str, ...] = ()):
    """The dataclass ``cls`` from a file's config ``d`` with the inference ``overrides`` (only the
    ``options`` may be overridden), refusing keys it does not know."""
    overrides = overrides or {}
    unknown = set(overrides) - set(options)
    if unknown:
        raise PygmatchError(f"{what}: unknown inference options {sorted(unknown)} ({', '.join(options)})")
    unknown = set(d) - {f.name for f in fields(cls)}
    if unknown:
        raise PygmatchError(f"{what} config has unknown keys {sorted(unknown)} (from a newer pygmatch?)")
    return cls(**{**d, **overrides})


def shipped_methods() -> list[str]:
    """The methods ``eval.coco`` and ``eval.hpatches`` compare by default: the shipped pipeline
    (``default``) and the shipped matchers alone, as far as their files are installed, the
    baselines, and the ceilings: how far a perfect selection among nn's candidates can go
    (``nn-oracle@1``), and how far any matcher on these keypoints can (``oracle@1``)."""
    shipped = [name for name, files in (("default", ("candidate_graph.pt", "refiner.pt")), ("candidate-graph", ("candidate_graph.pt",)))
               if all((WEIGHTS_DIR / f).is_file() for f in files)]
    return shipped + ["nn", "nn-ratio", "nn-oracle@1", "oracle@1"]
