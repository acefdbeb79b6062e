"""Reading and writing the graph matcher's weights: pygmatch ``.pt`` files (``pygmatch.weights``'
format: format, version, config, state_dict) and the Lightning ``.ckpt`` files of ``train.run``."""
from __future__ import annotations

import numbers
import os
import pickle
import zipfile
from pathlib import Path

import numpy as np
import torch

from .errors import PygmatchError
from .files import make_parent_folder, short_reason, writable_file
from .nn.config import MatcherConfig
from .nn.model import GraphMatcher
from .weights import WEIGHTS_DIR

FORMAT, VERSION = "pygmatch-matcher", 1
LEGACY_FORMATS = {"pygmatch-matcher-v1": 1}  # files written before the version had its own key


def resolve_checkpoint(name: str | os.PathLike) -> Path:
    """``"default"`` or ``"graph"`` -> the shipped weights (``weights/graph.pt``); a run folder -> its
    ``best.ckpt`` (else ``last.ckpt``)."""
    if str(name) in ("default", "graph"):
        path = WEIGHTS_DIR / "graph.pt"
        if not path.is_file():
            raise PygmatchError(f"{path}: the shipped graph matcher weights are missing (reinstall pygmatch)")
        return path
    path = Path(name)
    if path.is_dir():
        for candidate in ("best.ckpt", "last.ckpt", "model.pt"):
            if (path / candidate).is_file():
                return path / candidate
        raise PygmatchError(f"{path}: no best.ckpt, last.ckpt or model.pt in this folder")
    if not path.is_file():
        raise PygmatchError(f"{path}: no such checkpoint file or run folder")
    return path


def read_checkpoint(path: str | os.PathLike) -> dict:
    """The raw checkpoint dict, or a one-line error for a missing, truncated or foreign file."""
    path = Path(path)
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise PygmatchError(f"{path}: no such checkpoint") from None
    except pickle.UnpicklingError as e:
        if "can still be loaded" in str(e):  # readable, but it would run code to load: not ours
            raise PygmatchError(f"{path}: not a pygmatch checkpoint (it holds objects other than tensors and plain values)") from None
        raise PygmatchError(f"{path}: not a readable checkpoint (truncated or corrupt: {short_reason(e)})") from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, ValueError, OSError) as e:
        raise PygmatchError(f"{path}: not a readable checkpoint (truncated or corrupt: {short_reason(e)})") from None
    if not isinstance(ckpt, dict):
        raise PygmatchError(f"{path}: not a pygmatch checkpoint")
    return ckpt


def model_state(ckpt: dict, path) -> tuple[MatcherConfig, dict]:
    """(config, model state_dict) from a pygmatch .pt or a Lightning .ckpt of pygmatch.training."""
    fmt = ckpt.get("format")
    if fmt == FORMAT or fmt in LEGACY_FORMATS:
        version = ckpt.get("version", LEGACY_FORMATS.get(fmt))
        if version != VERSION:
            raise PygmatchError(f"{path}: matcher version {version!r}; this pygmatch reads version {VERSION}")
        return MatcherConfig.from_dict(ckpt["config"]), ckpt["state_dict"]
    hp = ckpt.get("hyper_parameters", {})
    if "state_dict" in ckpt and "model" in hp:
        state = {k[len("model."):]: v for k, v in ckpt["state_dict"].items() if k.startswith("model.")}
        return MatcherConfig.from_dict(hp["model"]), state
    raise PygmatchError(f"{path}: not a pygmatch checkpoint (no model config inside)")


def load_model(name: str | os.PathLike = "default", **overrides) -> GraphMatcher:
    """A ``GraphMatcher`` with the checkpoint's weights; ``overrides`` change inference-only
    options (e.g. ``early_exit=True``, ``match_threshold=0.1``)."""
    path = resolve_checkpoint(name)
    cfg, state = model_state(read_checkpoint(path), path)
    for key, value in overrides.items():
        if key in cfg.architecture():
            raise PygmatchError(f"{key} is part of the architecture and cannot be overridden at load time")
        if not hasattr(cfg, key):
            raise PygmatchError(f"unknown model option {key!r}")
        setattr(cfg, key, value)
    check_inference_options(cfg)
    model = GraphMatcher(cfg)
    load_weights(model, state, path)
    return model.eval()


def _is_number(v) -> bool:
    return isinstance(v, numbers.Real) and not isinstance(v, bool) and v == v


def _is_int(v) -> bool:
    return isinstance(v, numbers.Integral) and not isinstance(v, bool)


# inference-only options: (test, what a valid value is)
INFERENCE_OPTIONS = {
    "match_threshold": (lambda v: _is_number(v) and 0 <= v < 1, "a probability in [0, 1)"),
    "prune_matchability": (lambda v: _is_number(v) and 0 <= v < 1, "a probability in [0, 1)"),
    "exit_confidence": (lambda v: _is_number(v) and 0 < v <= 1, "a probability in (0, 1]"),
    "exit_ratio": (lambda v: _is_number(v) and 0 < v <= 1, "a fraction in (0, 1]"),
    "early_exit": (lambda v: isinstance(v, (bool, np.bool_)), "True or False"),
    "pruning": (lambda v: isinstance(v, (bool, np.bool_)), "True or False"),
    "max_keypoints": (lambda v: _is_int(v) and v >= 1, "an integer >= 1"),
    "sinkhorn_iters": (lambda v: _is_int(v) and v >= 1, "an integer >= 1"),
}


def check_inference_options(cfg: MatcherConfig) -> None:
    """A one-line error for an inference option outside its range (e.g. ``match_threshold=5``,
    which would silently return no match at all)."""
    for key, (ok, what) in INFERENCE_OPTIONS.items():
        value = getattr(cfg, key)
        if not ok(value):
            raise PygmatchError(f"{key} must be {what}, got {value!r}")


def load_weights(model: GraphMatcher, state: dict, path, saved_cfg: MatcherConfig | None = None) -> None:
    """Load ``state`` into ``model``; a mismatch names what differs instead of a wall of keys."""
    if saved_cfg is not None:
        mine, theirs = model.cfg.architecture(), saved_cfg.architecture()
        diff = [f"{k}: checkpoint {theirs[k]!r} vs model {mine[k]!r}" for k in mine if mine[k] != theirs[k]]
        if diff:
            raise PygmatchError(f"{path}: a different architecture ({'; '.join(diff)})")
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    shapes = [f"{k} {tuple(state[k].shape)} vs {tuple(own[k].shape)}" for k in own if k in state and state[k].shape != own[k].shape]
    if missing or unexpected or shapes:
        parts = []
        if shapes:
            parts.append(f"shape mismatch in {len(shapes)} tensors, e.g. {shapes[0]}")
        if missing:
            parts.append(f"{len(missing)} missing, e.g. {missing[0]}")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected, e.g. {unexpected[0]}")
        raise PygmatchError(f"{path}: weights do not fit this architecture ({'; '.join(parts)})")
    model.load_state_dict(state)


def save_model(model: GraphMatcher, path: str | os.PathLike, extra: dict | None = None) -> Path:
    """A self-contained pygmatch checkpoint (config + weights), written atomically."""
    path = Path(path)
    writable_file(path, example="model.pt")  # a folder in the way, a read-only folder: one line, nothing half-written
    make_parent_folder(path)
    tmp = path.with_name(path.name + ".tmp")
    try:
        torch.save({"format": FORMAT, "version": VERSION, "config": model.cfg.to_dict(), "state_dict": model.state_dict(), **(extra or {})}, tmp)
        os.replace(tmp, path)
    except (OSError, RuntimeError) as e:  # torch.save reports a failed open / write as RuntimeError
        reason = e.strerror if isinstance(e, OSError) and e.strerror else short_reason(e)
        raise PygmatchError(f"{path}: could not write the checkpoint ({reason})") from None
    finally:  # also on Ctrl-C; after the rename there is nothing left to remove
        tmp.unlink(missing_ok=True)
    return path
