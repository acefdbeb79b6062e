"""The schema of a training run: dataclasses with defaults, saved as ``config.yaml`` beside every
checkpoint. ``train(TrainConfig(...))`` takes one directly; ``python -m train.run`` derives its
flags from the fields (their parsers, choices and help), so Python, flags and ``--config`` files
give the same one-line errors. The model section is the network's own config
(``CandidateGraphConfig``), the graph over the candidates included::

    cfg = TrainConfig(model=CandidateGraphConfig(graph={"name": "knn", "k": 8}), optim=OptimConfig(max_steps=50))

``RefinerTrainConfig`` is the same for the sub-pixel refiner (``python -m train.refiner``): its own
data and model sections, the same optimiser and run sections, the same training loop.
"""
from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import ClassVar

from ..errors import PygmatchError
from ..graphs.registry import DEFAULTS as GRAPH_FLAG_DEFAULTS
from ..graphs.registry import flags_from_params, graph_from_flags, graph_params
from ..nn.candidate_graph import CandidateGraphConfig
from ..refinement import RefinerConfig
from ..values import Section, non_negative_int, positive, positive_int, setting, size_type

positive_float = positive(float)
PRECISIONS = ("32", "16-mixed", "bf16-mixed")
ACCELERATORS = ("auto", "cpu", "gpu", "cuda", "mps")
GRAPH_FLAGS = {**GRAPH_FLAG_DEFAULTS, **flags_from_params(CandidateGraphConfig().graph)}  # defaults: the network's own graph


def difficulty_list(text: str) -> tuple[float, ...]:
    """``1,2,3`` → (1.0, 2.0, 3.0): difficulties, cycled pair by pair."""
    try:
        values = tuple(float(d) for d in str(text).split(",") if d.strip())
    except ValueError:
        values = ()
    if not values or min(values) < 0:
        raise ValueError(f"expected comma-separated difficulties >= 0, e.g. 1,2,3, got {text!r}")
    return values


@dataclass
class DataConfig(Section):
    bank: list[str] | None = setting(None, help="feature banks (python -m train.bank); BANK:1,2 takes its pairs of difficulties 1 "
                                                 "and 2 (default: pairs made on the fly from --data)")
    data: list[str] | None = setting(None, help="image folders to make pairs from on the fly (default: the embedded images)")
    val_pairs: int = setting(100, non_negative_int, help="each bank's last N pairs, held out to validate on")
    val_data: str | None = setting(None, help="validate on pairs of these images instead (default: the banks' held-out pairs, "
                                              "else the embedded images)")
    val_images: int | None = setting(None, positive_int, help="use only the first N validation images")
    pairs_per_image: int = setting(1, positive_int, help="on the fly: homographies per image and epoch")
    difficulty: tuple[float, ...] = setting((1.0, 2.0), difficulty_list, help="on the fly: difficulties, cycled pair by pair")
    max_keypoints: int = setting(1024, positive_int, help="on the fly: SIFT keypoints per image (a bank's pairs keep what it holds)")
    size: tuple[int, int] = setting((640, 480), size_type, help="training image size WxH")
    scenes: list[str] | None = setting(None, help="real scenes (SCENE/images/ and a COLMAP text model with points3D.txt) whose pairs "
                                                   "join the training pairs, labelled by the reconstruction (docs/training.md)")
    scene_pairs: int = setting(200, positive_int, help="--scenes: pairs per scene (images sharing >= 50 3-D points)")


@dataclass
class OptimConfig(Section):
    batch_size: int = setting(4, positive_int, help="pairs per step")
    lr: float = setting(2e-3, positive_float)
    epochs: int | None = setting(None, positive_int)
    max_steps: int | None = setting(None, positive_int, help="default: 100 when --epochs is not given")
    warmup_steps: int = setting(100, non_negative_int, help="linear warm-up, then cosine decay to 0 over the run")
    grad_clip: float = setting(1.0, positive(float))
    precision: str = setting("32", choices=PRECISIONS, help="bf16-mixed on a GPU")
    seed: int = setting(0, int)


@dataclass
class RunConfig(Section):
    accelerator: str = setting("auto", choices=ACCELERATORS)
    devices: int = setting(1, positive_int, help="processes (DDP when more than one)")
    num_nodes: int = setting(1, positive_int)
    workers: int | None = setting(None, non_negative_int, help="data processes (default: 1 on the fly, where SIFT runs; from banks: "
                                                               "1, building the graphs; the refiner: 2, cutting the patches)")
    threads: int = setting(1, positive_int, help="torch threads of the training process")
    out: str | None = setting(None, help="run folder (default: runs/<graph>-<time>)")
    resume: str | None = setting(None, help="'last' (the run folder's last.ckpt) or a checkpoint path")
    init: str | None = setting(None, help="start from the weights of this checkpoint or model file")
    val_every: int = setting(300, positive_int, help="validate every N steps at most, evenly spaced so that the last validation is at the end")
    log_every: int = setting(10, positive_int)
    ckpt_every_steps: int = setting(100, non_negative_int, help="write last.ckpt every N steps (0: only by time)")
    ckpt_minutes: float = setting(2.0, positive_float, help="... and at least every N minutes")
    overwrite: bool = setting(False, help="replace the run already in --out (default: refuse)")
    early_stop: int = setting(0, non_negative_int, help="stop after N validations without a better monitored metric (val/auc@3; "
                                                         "the refiner: val/within_0.5) (0: off)")
    progress: bool = setting(True, help="progress bar (--no-progress: a line per validation, for logs)")


DEFAULT_STEPS = 100


class RunSpec:
    """What the runs' configs share: sections by name (``SECTIONS``), as nested YAML
    (``to_dict`` / ``from_dict``) and as flat flag values (``to_flags`` / ``from_flags``)."""

    SECTIONS: ClassVar[dict[str, type]]
    WORKERS: ClassVar[int] = 1  # data processes when --workers is not given

    @property
    def max_steps(self) -> int | None:
        o = self.optim
        return o.max_steps if o.max_steps or o.epochs else DEFAULT_STEPS

    @property
    def workers(self) -> int:
        return self.run.workers if self.run.workers is not None else self.WORKERS

    def run_name(self) -> str:
        raise NotImplementedError

    def with_out(self):
        """The config with its run folder decided (``runs/<name>-<time>`` when none was given)."""
        if self.run.out is not None:
            return self
        return replace(self, run=replace(self.run, out=str(Path("runs") / f"{self.run_name()}-{time.strftime('%Y%m%d-%H%M%S')}")))

    def to_dict(self) -> dict:
        """Plain YAML values, nested by section (what ``config.yaml`` holds)."""
        def plain(v):
            return [plain(x) for x in v] if isinstance(v, (list, tuple)) else ({k: plain(x) for k, x in v.items()} if isinstance(v, dict) else v)
        return plain(asdict(self))

    def to_flags(self) -> dict:
        """One flat dict of flag values (dest names) that rebuilds this config."""
        return {k: v for name in self.SECTIONS for k, v in asdict(getattr(self, name)).items()}

    @classmethod
    def from_flags(cls, flags: Mapping):
        """From flat flag values, as the command parses them; missing keys take defaults."""
        owner = {f.name: name for name, section in cls.SECTIONS.items() for f in fields(section)}
        unknown = sorted(set(flags) - set(owner))
        if unknown:
            raise PygmatchError(f"unknown key(s) {', '.join(unknown)}")
        parts = {name: {} for name in cls.SECTIONS}
        for key, value in flags.items():
            parts[owner[key]][key] = value
        return cls(**{name: cls.SECTIONS[name](**values) for name, values in parts.items()})

    @classmethod
    def from_dict(cls, d: Mapping):
        """From a saved ``config.yaml`` (the nested layout of ``to_dict``)."""
        if not cls.is_nested(d):
            raise PygmatchError(f"expected the sections {', '.join(cls.SECTIONS)}")
        parts = {}
        for name, section in cls.SECTIONS.items():
            values = dict(d.get(name) or {})
            wrong = sorted(set(values) - {f.name for f in fields(section)})
            if wrong:
                raise PygmatchError(f"{name}: unknown key(s) {', '.join(wrong)}")
            parts[name] = section(**values)
        return cls(**parts)

    @classmethod
    def is_nested(cls, d: Mapping) -> bool:
        """The layout of ``to_dict`` (sections of mappings), not flat flag values."""
        return bool(d) and all(k in cls.SECTIONS for k in d) and all(isinstance(v, Mapping) or v is None for v in d.values())


@dataclass
class TrainConfig(RunSpec):
    """The graph network's run (``python -m train.run``)."""

    data: DataConfig = field(default_factory=DataConfig)
    model: CandidateGraphConfig = field(default_factory=CandidateGraphConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    run: RunConfig = field(default_factory=RunConfig)

    SECTIONS: ClassVar[dict[str, type]] = {"data": DataConfig, "model": CandidateGraphConfig, "optim": OptimConfig, "run": RunConfig}

    def run_name(self) -> str:
        return self.model.graph["name"]

    def to_flags(self) -> dict:
        flags = {k: v for k, v in super().to_flags().items() if k != "graph"}  # the graph's own flags stand for it
        return flags | GRAPH_FLAGS | flags_from_params(self.model.graph)

    @classmethod
    def from_flags(cls, flags: Mapping) -> "TrainConfig":
        flags = dict(flags)
        graph = graph_params(graph_from_flags(GRAPH_FLAGS | {k: flags.pop(k) for k in list(flags) if k in GRAPH_FLAGS}))
        cfg = super().from_flags(flags)
        return replace(cfg, model=replace(cfg.model, graph=graph))


@dataclass
class RefinerDataConfig(Section):
    bank: str | None = setting(None, help="feature bank (python -m train.bank) whose source folders are still there (required)")
    pairs: int | None = setting(None, positive_int, help="use the bank's first N pairs (default: all)")
    per_pair: int = setting(64, positive_int, help="candidates' patches cut per pair")
    val_pairs: int = setting(100, non_negative_int, help="the bank's last N pairs, held out to validate on")
    val_data: str | None = setting(None, help="validate on homography pairs of these images instead (never coco/val)")
    val_images: int = setting(100, positive_int, help="--val-data: images per difficulty (1 and 2)")


@dataclass
class RefinerOptimConfig(OptimConfig):
    batch_size: int = setting(512, positive_int, help="patches per step")
    epochs: int | None = setting(4, positive_int)
    warmup_steps: int = setting(200, non_negative_int, help="linear warm-up, then cosine decay to 0 over the run")


@dataclass
class RefinerTrainConfig(RunSpec):
    """The sub-pixel refiner's run (``python -m train.refiner``): the patches of a bank's mutual
    nearest-neighbour candidates with their true offsets."""

    data: RefinerDataConfig = field(default_factory=RefinerDataConfig)
    model: RefinerConfig = field(default_factory=RefinerConfig)
    optim: RefinerOptimConfig = field(default_factory=RefinerOptimConfig)
    run: RunConfig = field(default_factory=RunConfig)

    SECTIONS: ClassVar[dict[str, type]] = {"data": RefinerDataConfig, "model": RefinerConfig, "optim": RefinerOptimConfig, "run": RunConfig}
    WORKERS: ClassVar[int] = 2

    def run_name(self) -> str:
        return "refiner"
