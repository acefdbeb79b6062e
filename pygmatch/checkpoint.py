"""The graph network's files: the model file (``pygmatch.weights``' format: format, version,
config, state_dict; what ships and what ``train.export`` writes) and the Lightning ``.ckpt`` files
of ``train.run`` (a run folder's ``best.ckpt`` / ``last.ckpt``), read back as one
``(CandidateGraphConfig, state_dict)`` with one-line errors."""
from __future__ import annotations

import os
import pickle
import re
import zipfile
from dataclasses import asdict
from pathlib import Path

import torch

from .errors import PygmatchError
from .files import make_parent_folder, short_reason, writable_file
from .nn.candidate_graph import NODE_FEATURES, NODE_FEATURES_BEFORE_VIEWS, CandidateGraphConfig, CandidateGraphNet
from .weights import WEIGHTS_DIR, config_from_dict

FORMAT, VERSION = "pygmatch-candidate-graph", 2  # 2: graph as recorded parameters, attention per scale
OLDER = (1,)
WEIGHTS = WEIGHTS_DIR / "candidate_graph.pt"
INFERENCE_OPTIONS = ("threshold", "min_keep", "pad_from", "resolution")
RUN_FILES = ("best.ckpt", "last.ckpt")  # a run folder's checkpoints, the one to load first; either says a run is there


def resolve_checkpoint(name: str | os.PathLike) -> Path:
    """``"default"`` → the shipped model file; a run folder → its ``best.ckpt`` (else ``last.ckpt``);
    a file as it is."""
    if str(name) == "default":
        if not WEIGHTS.is_file():
            raise PygmatchError(f"{WEIGHTS}: the shipped graph network's weights are missing (reinstall pygmatch)")
        return WEIGHTS
    path = Path(name)
    if path.is_dir():
        for candidate in RUN_FILES:
            if (path / candidate).is_file():
                return path / candidate
        raise PygmatchError(f"{path}: no best.ckpt or last.ckpt in this folder (a run that has not saved yet?)")
    if not path.is_file():
        raise PygmatchError(f"{path}: no such model file, checkpoint or run folder")
    return path


def read_checkpoint(path: str | os.PathLike) -> dict:
    """The raw file contents, or a one-line error for a missing, truncated or foreign file."""
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


def upgrade_version1(ckpt: dict) -> dict:
    """A version-1 model file (the graph as a name and ``k``; one attention module per image, not a
    list per scale) in version 2's layout: the same network."""
    config = dict(ckpt["config"])
    k = config.pop("k", 8)
    config["graph"] = {"name": config["graph"], **({"k": k} if config["graph"] in ("knn", "descriptor-knn") else {})}
    state = {re.sub(r"\.att([01])\.", r".att\1.0.", name): value for name, value in ckpt["state_dict"].items()}
    return {**ckpt, "version": VERSION, "config": config, "state_dict": state}


def with_view_features(state: dict) -> dict:
    """The weights of a network that knew ``NODE_FEATURES_BEFORE_VIEWS`` as one of ``NODE_FEATURES``:
    the view tilts' inputs get zero weights (mean 0, standard deviation 1), so that it computes
    exactly what it did, whatever the tilts."""
    old, new = len(NODE_FEATURES_BEFORE_VIEWS), len(NODE_FEATURES)
    added = new - old
    weight = state["encode.0.weight"]
    return {**state, "mean": torch.cat([state["mean"], state["mean"].new_zeros(added)]),
            "std": torch.cat([state["std"], state["std"].new_ones(added)]),
            "encode.0.weight": torch.cat([weight[:, :old], weight.new_zeros(weight.size(0), added), weight[:, old:]], 1)}


def training_checkpoint(ckpt: dict) -> tuple[str, dict, dict] | None:
    """``(kind, model config, model state_dict)`` of a Lightning checkpoint of the one training loop:
    kind ``"matcher"`` (``train.run``; checkpoints from before kinds were recorded are this) or
    ``"refiner"`` (``train.refiner``); None for anything else (a model file, say)."""
    hp = ckpt.get("hyper_parameters")
    if not isinstance(hp, dict) or not isinstance(hp.get("model"), dict) or "state_dict" not in ckpt:
        return None
    return hp.get("kind", "matcher"), hp["model"], {k[len("model."):]: v for k, v in ckpt["state_dict"].items() if k.startswith("model.")}


def model_state(ckpt: dict, path, overrides: dict | None = None) -> tuple[CandidateGraphConfig, dict]:
    """(config with the inference ``overrides``, state_dict) of a model file or a ``train.run``
    checkpoint."""
    if ckpt.get("format") == FORMAT:
        if ckpt.get("version") not in (VERSION, *OLDER):
            raise PygmatchError(f"{path}: graph network version {ckpt.get('version')!r}; this pygmatch reads version {VERSION}")
        if ckpt["version"] == 1:
            ckpt = upgrade_version1(ckpt)
        features = ckpt.get("node_features")
        if features not in (list(NODE_FEATURES), list(NODE_FEATURES_BEFORE_VIEWS)):
            raise PygmatchError(f"{path}: a graph network of other node features; this pygmatch computes {len(NODE_FEATURES)}")
        config, state = ckpt["config"], ckpt["state_dict"]
        if features == list(NODE_FEATURES_BEFORE_VIEWS):
            state = with_view_features(state)
    elif (run := training_checkpoint(ckpt)) is not None:
        kind, config, state = run
        if kind == "refiner":
            raise PygmatchError(f"{path}: a train.refiner checkpoint, not a graph network (use it as a refiner: METHOD+{path})")
        if "mean" in state and len(state["mean"]) == len(NODE_FEATURES_BEFORE_VIEWS):  # a run from before view synthesis
            state = with_view_features(state)
    else:
        raise PygmatchError(f"{path}: not a pygmatch graph network (a model file or a train.run checkpoint)")
    return config_from_dict(CandidateGraphConfig, config, str(path), overrides, INFERENCE_OPTIONS), state


def load_weights(model: CandidateGraphNet, state: dict, path) -> None:
    """Load ``state`` into ``model``; a mismatch names what differs instead of a wall of keys."""
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    shapes = [f"{k} {tuple(state[k].shape)} vs {tuple(own[k].shape)}" for k in own if k in state and state[k].shape != own[k].shape]
    if missing or unexpected or shapes:
        parts = ([f"shape mismatch in {len(shapes)} tensors, e.g. {shapes[0]}"] if shapes else []) + \
                ([f"{len(missing)} missing, e.g. {missing[0]}"] if missing else []) + \
                ([f"{len(unexpected)} unexpected, e.g. {unexpected[0]}"] if unexpected else [])
        raise PygmatchError(f"{path}: weights do not fit this architecture ({'; '.join(parts)})")
    model.load_state_dict(state)


def load_model(name: str | os.PathLike = "default", **overrides) -> CandidateGraphNet:
    """The network of the shipped file (``"default"``), a model file, a ``.ckpt`` or a run folder;
    ``overrides``: inference options (``threshold``, ``min_keep``, ``pad_from``)."""
    path = resolve_checkpoint(name)
    cfg, state = model_state(read_checkpoint(path), path, overrides)
    model = CandidateGraphNet(cfg)
    load_weights(model, state, path)
    return model.eval()


def is_model_file(path: str | os.PathLike) -> bool:
    """Whether ``path`` is something ``load_model`` reads: a run folder, a ``.ckpt`` or a model file."""
    path = Path(path)
    return (path.is_dir() and any((path / f).is_file() for f in RUN_FILES)) or (path.is_file() and path.suffix in (".pt", ".ckpt"))


def save_model(model: CandidateGraphNet, path: str | os.PathLike, **extra) -> Path:
    """The model file (config + weights; ``extra``: e.g. the training record), written atomically."""
    return write_model_file(path, {"format": FORMAT, "version": VERSION, "config": asdict(model.cfg), "state_dict": model.state_dict(),
                                   "node_features": list(NODE_FEATURES), **extra})


def write_model_file(path: str | os.PathLike, contents: dict) -> Path:
    """``torch.save`` of ``contents`` to ``path`` through a temporary file: a crash, a full disk or
    a Ctrl-C never leaves a half-written model file; a failure is one line."""
    path = Path(path)
    writable_file(path, example="model.pt")  # a folder in the way, a read-only folder: one line, nothing half-written
    make_parent_folder(path)
    tmp = path.with_name(path.name + ".tmp")
    try:
        torch.save(contents, tmp)
        os.replace(tmp, path)
    except (OSError, RuntimeError) as e:  # torch.save reports a failed open / write as RuntimeError
        reason = e.strerror if isinstance(e, OSError) and e.strerror else short_reason(e)
        raise PygmatchError(f"{path}: could not write the model file ({reason})") from None
    finally:  # also on Ctrl-C; after the rename there is nothing left to remove
        tmp.unlink(missing_ok=True)
    return path


__all__ = ["FORMAT", "VERSION", "WEIGHTS", "is_model_file", "load_model", "load_weights", "model_state", "read_checkpoint",
           "resolve_checkpoint", "save_model", "training_checkpoint", "write_model_file"]
