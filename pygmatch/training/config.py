"""The schema of a training run: dataclasses with defaults, saved as ``config.yaml`` beside every
checkpoint. ``train(TrainConfig(...))`` takes one directly; ``python -m train.run`` maps its flags
onto it. Every field is checked by the same parser its flag uses, so Python, flags and ``--config``
files give the same one-line errors::

    cfg = TrainConfig(graph=GraphConfig(intra={"name": "knn", "k": 8}), optim=OptimConfig(max_steps=50))
"""
from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import MISSING, asdict, dataclass, field, fields, replace
from pathlib import Path

from ..values import non_negative_float, non_negative_int, positive, positive_int, size_type
from ..data.augment import AUGMENTATIONS
from ..data.features import DESCRIPTOR_DIM, FEATURES
from ..errors import PygmatchError
from ..graphs.registry import DEFAULTS as GRAPH_FLAG_DEFAULTS
from ..graphs.registry import cross_from_params, cross_params, flags_from_params, graphs_from_flags, graph_from_params, graph_params
from ..nn.config import ASSIGNMENTS, CONVS, GRAPH_UPDATES, POSITIONAL, PRESETS, MatcherConfig

positive_float = positive(float)
PRECISIONS = ("32", "16-mixed", "bf16-mixed")
ACCELERATORS = ("auto", "cpu", "gpu", "cuda", "mps")
PAIR_FIELDS = ("size", "cells")  # written AxB on the command line; other lists a,b,c


def augment_list(text: str) -> tuple[str, ...]:
    """``swap,similarity`` -> ("swap", "similarity"); ``none`` or nothing -> ()."""
    names = tuple(a.strip() for a in str(text).split(",") if a.strip() not in ("", "none"))
    unknown = [a for a in names if a not in AUGMENTATIONS]
    if unknown:
        raise ValueError(f"unknown augmentation(s) {', '.join(unknown)}; choose from {', '.join(AUGMENTATIONS)}")
    return names


def setting(default=None, parse=None, choices=None, factory=None):
    """A config field with the parser and choices of its command-line flag."""
    meta = {"parse": parse, "choices": choices}
    return field(default_factory=factory, metadata=meta) if factory else field(default=default, metadata=meta)


def as_flag_text(name: str, value) -> str:
    """A value as it would be typed on the command line."""
    if isinstance(value, (list, tuple)):
        return ("x" if name in PAIR_FIELDS else ",").join(str(v) for v in value)
    return str(value)


def check_value(f, value):
    """``value`` of field ``f`` checked (and normalised, e.g. a YAML list to a size tuple) by the
    parser of its flag; ``ValueError`` with the flag's message when it fails."""
    if value is None:
        if f.default is None:
            return None
        raise ValueError("must be given (null is not allowed)")
    if isinstance(f.default, bool):
        if not isinstance(value, bool):
            raise ValueError(f"expected true or false, got {value!r}")
        return value
    parse, choices = f.metadata.get("parse"), f.metadata.get("choices")
    if f.name == "data":  # one or more folders
        items = value if isinstance(value, (list, tuple)) else [value]
        return [str(v) for v in items]
    if parse is not None:
        value = parse(as_flag_text(f.name, value))
    elif choices is not None or isinstance(f.default, str):
        value = str(value)  # e.g. precision: 32 in YAML is the choice "32"
    if choices is not None and value not in choices:
        raise ValueError(f"{value!r} is not one of {', '.join(map(str, choices))}")
    return value


class Section:
    """Checks every field of a config section when it is made."""

    def __post_init__(self):
        for f in fields(self):
            try:
                object.__setattr__(self, f.name, check_value(f, getattr(self, f.name)))
            except (ValueError, TypeError) as e:
                raise PygmatchError(f"{f.name}: {e}") from None


@dataclass
class DataConfig(Section):
    data: list[str] | None = setting(None)  # training image folders; None: the embedded images
    bank: str | None = setting(None)  # a feature bank (python -m train.bank) instead of extracting on the fly
    augment: tuple[str, ...] = setting(("swap", "similarity", "subset"), augment_list)  # bank augmentations
    gt_match_px: float = setting(3.0, positive_float)  # training ground truth: matches closer than this ...
    gt_unmatched_px: float = setting(5.0, positive_float)  # ... dustbin beyond this (between: ignored)
    val_data: str | None = setting(None)  # None: the embedded images
    val_images: int | None = setting(None, positive_int)
    pairs_per_image: int = setting(1, positive_int)
    features: str = setting("sift", choices=FEATURES)
    max_keypoints: int = setting(1024, positive_int)
    size: tuple[int, int] = setting((640, 480), size_type)
    difficulty: float = setting(1.0, non_negative_float)

    def __post_init__(self):
        super().__post_init__()
        if self.gt_match_px > self.gt_unmatched_px:
            raise PygmatchError(f"gt_match_px {self.gt_match_px} must not exceed gt_unmatched_px {self.gt_unmatched_px}")


@dataclass
class GraphConfig:
    """The graph transforms as their own parameters (``pygmatch.graphs.registry``)."""

    intra: dict = field(default_factory=lambda: {"name": "knn", "k": 16})
    cross: dict = field(default_factory=lambda: {"name": "complete"})

    def __post_init__(self):  # recorded in their canonical form: built once, read back
        self.intra = graph_params(graph_from_params(self.intra))
        self.cross = cross_params(cross_from_params(self.cross))

    def transforms(self):
        return graph_from_params(self.intra), cross_from_params(self.cross)


@dataclass
class ModelConfig(Section):
    """The trainable architecture; with the data's features and the graph it makes the model's
    ``MatcherConfig`` (``TrainConfig.matcher_config``)."""

    preset: str = setting("cpu", choices=tuple(PRESETS))
    dim: int | None = setting(None, positive_int)  # None: the preset's
    layers: int | None = setting(None, positive_int)
    heads: int | None = setting(None, positive_int)
    conv: str = setting("attention", choices=CONVS)
    assignment: str = setting("dual-softmax", choices=ASSIGNMENTS)
    positional: str = setting("rotary", choices=POSITIONAL)
    sinkhorn_iters: int = setting(50, positive_int)
    descriptor_prior: bool = setting(True)
    deep_supervision: bool = setting(False)
    ortho_weight: float = setting(0.0, non_negative_float)  # loss: orthogonality between multi-scale branches
    graph_update: str = setting("static", choices=GRAPH_UPDATES)
    value_update: str = setting("every")
    dense_warmup_layers: int = setting(0, non_negative_int)


@dataclass
class OptimConfig(Section):
    batch_size: int = setting(4, positive_int)
    lr: float = setting(3e-4, positive_float)
    epochs: int | None = setting(None, positive_int)
    max_steps: int | None = setting(None, positive_int)  # None with no epochs: DEFAULT_STEPS
    warmup_steps: int = setting(100, non_negative_int)
    grad_clip: float = setting(1.0, non_negative_float)  # 0 disables
    precision: str = setting("32", choices=PRECISIONS)
    seed: int = setting(0, int)


@dataclass
class RunConfig(Section):
    accelerator: str = setting("auto", choices=ACCELERATORS)
    devices: int = setting(1, positive_int)
    num_nodes: int = setting(1, positive_int)
    workers: int | None = setting(None, non_negative_int)  # None: 2 on the fly, 0 from a bank
    threads: int | None = setting(None, positive_int)  # None: 1 on the fly (SIFT takes the other core), 2 from a bank
    out: str | None = setting(None)  # None: runs/<graph>-<time>
    resume: str | None = setting(None)  # "last" or a checkpoint path
    init: str | None = setting(None)  # start from these weights
    val_every: int = setting(100, positive_int)
    log_every: int = setting(10, positive_int)
    ckpt_every_steps: int = setting(100, non_negative_int)
    ckpt_minutes: float = setting(2.0, positive_float)
    overwrite: bool = setting(False)
    early_stop: int = setting(0, non_negative_int)
    progress: bool = setting(True)


SECTIONS = {"data": DataConfig, "model": ModelConfig, "optim": OptimConfig, "run": RunConfig}
DEFAULT_STEPS = 100


@dataclass
class TrainConfig:
    data: DataConfig = field(default_factory=DataConfig)
    graph: GraphConfig = field(default_factory=GraphConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    run: RunConfig = field(default_factory=RunConfig)

    def __post_init__(self):
        self.matcher_config()  # an impossible architecture (e.g. gat with rotary positions) stops here

    # derived facts: computed, never stored
    @property
    def max_steps(self) -> int | None:
        o = self.optim
        return o.max_steps if o.max_steps or o.epochs else DEFAULT_STEPS

    @property
    def workers(self) -> int:
        return self.run.workers if self.run.workers is not None else (0 if self.data.bank else 2)

    @property
    def threads(self) -> int:
        return self.run.threads if self.run.threads is not None else (2 if self.data.bank else 1)

    def with_out(self) -> "TrainConfig":
        """The config with its run folder decided (``runs/<graph>-<time>`` when none was given)."""
        if self.run.out is not None:
            return self
        out = str(Path("runs") / f"{self.graph.intra['name']}-{time.strftime('%Y%m%d-%H%M%S')}")
        return replace(self, run=replace(self.run, out=out))

    def matcher_config(self) -> MatcherConfig:
        """The model's config: the preset, explicit sizes over it, the data's features, the graph."""
        m = self.model
        sizes = dict(PRESETS[m.preset])
        sizes.update({k: getattr(m, k) for k in ("dim", "layers", "heads") if getattr(m, k) is not None})
        return MatcherConfig(descriptor_dim=DESCRIPTOR_DIM[self.data.features], conv=m.conv, assignment=m.assignment,
                             positional=m.positional, sinkhorn_iters=m.sinkhorn_iters, deep_supervision=m.deep_supervision,
                             descriptor_prior=m.descriptor_prior, graph=dict(self.graph.intra), cross=dict(self.graph.cross),
                             features=self.data.features, max_keypoints=self.data.max_keypoints, graph_update=m.graph_update,
                             value_update=m.value_update, dense_warmup_layers=m.dense_warmup_layers, **sizes)

    def to_dict(self) -> dict:
        """Plain YAML values, nested by section (what ``config.yaml`` holds)."""
        def plain(v):
            return [plain(x) for x in v] if isinstance(v, (list, tuple)) else ({k: plain(x) for k, x in v.items()} if isinstance(v, dict) else v)
        return plain(asdict(self))

    def to_flags(self) -> dict:
        """One flat dict of ``train.run`` flag values (dest names) that rebuilds this config."""
        flags = {k: v for name in SECTIONS for k, v in asdict(getattr(self, name)).items()}
        flags.update(graph_flags(self.graph))
        return flags

    @classmethod
    def from_flags(cls, flags: Mapping) -> "TrainConfig":
        """From flat flag values, as ``train.run`` parses them and as the first config layout saved
        them (``graph: complete`` with every graph flag beside it). Missing keys take defaults."""
        flags = dict(flags)
        owner = {f.name: name for name, section in SECTIONS.items() for f in fields(section)}
        unknown = sorted(set(flags) - set(owner) - set(GRAPH_FLAG_DEFAULTS))
        if unknown:
            raise PygmatchError(f"unknown key(s) {', '.join(unknown)}")
        parts = {name: {} for name in SECTIONS}
        for key, value in flags.items():
            if key in owner:
                parts[owner[key]][key] = value
        intra, cross = graphs_from_flags({k: v for k, v in flags.items() if k in GRAPH_FLAG_DEFAULTS})
        return cls(graph=GraphConfig(graph_params(intra), cross_params(cross)),
                   **{name: SECTIONS[name](**values) for name, values in parts.items()})

    @classmethod
    def from_dict(cls, d: Mapping) -> "TrainConfig":
        """From a saved ``config.yaml``: the nested layout of ``to_dict``, or the first, flat one."""
        if not is_nested(d):
            return cls.from_flags(d)
        unknown = sorted(set(d) - set(SECTIONS) - {"graph"})
        if unknown:
            raise PygmatchError(f"unknown section(s) {', '.join(unknown)}; expected {', '.join(['graph', *SECTIONS])}")
        parts = {}
        for name, section in SECTIONS.items():
            values = dict(d.get(name) or {})
            wrong = sorted(set(values) - {f.name for f in fields(section)})
            if wrong:
                raise PygmatchError(f"{name}: unknown key(s) {', '.join(wrong)}")
            parts[name] = section(**values)
        return cls(graph=GraphConfig(**(d.get("graph") or {})), **parts)


def is_nested(d: Mapping) -> bool:
    """The layout of ``TrainConfig.to_dict`` (sections of mappings), not the first, flat one."""
    return bool(d) and all(k in SECTIONS or k == "graph" for k in d) and all(isinstance(v, Mapping) or v is None for v in d.values())


def graph_flags(graph: GraphConfig) -> dict:
    """The graph flags that rebuild ``graph`` (others at their defaults)."""
    return {**GRAPH_FLAG_DEFAULTS, **flags_from_params(graph.intra, graph.cross)}


def field_default(section: type, name: str):
    f = next(f for f in fields(section) if f.name == name)
    return f.default_factory() if f.default is MISSING else f.default
