"""``LearnedRefiner``: the learned sub-pixel refiner (``refiner``, shipped as ``weights/refiner.pt``):
the normalised cross-correlation's last step replaced by a small network trained on bank pairs
(``python -m train.refiner``, through the same Lightning loop as the graph network), on the same
patches."""
from __future__ import annotations

import os
from pathlib import Path
from dataclasses import asdict, dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..checkpoint import read_checkpoint, resolve_checkpoint, training_checkpoint, write_model_file
from ..errors import PygmatchError
from ..values import Section, positive_int, setting
from ..weights import WEIGHTS_DIR, config_from_dict, read_model_file
from .patches import PatchStage, normalized_cross_correlation


FORMAT, VERSION = "pygmatch-refiner", 1
WEIGHTS = WEIGHTS_DIR / "refiner.pt"


@dataclass
class RefinerConfig(Section):
    half: int = setting(7, positive_int, help="template half-size (px), as the correlation refiner's")
    search: int = setting(3, positive_int, help="± pixels searched")
    channels: int = setting(8, positive_int, help="of the patch features")
    layers: int = setting(2, positive_int, help="3x3 convolutions of the patch features")
    hidden: int = setting(32, positive_int, help="channels of the shift scorer")
    iterations: int = setting(1, positive_int, help="inference: refinement passes stored with the weights")

    def __post_init__(self):
        try:
            super().__post_init__()
        except PygmatchError as e:
            raise PygmatchError(f"refiner: {e}") from None
        if 2 * self.layers >= 2 * self.half + 1:
            raise PygmatchError(f"refiner: {self.layers} unpadded 3x3 layers leave nothing of a {2 * self.half + 1}-pixel template")

    def architecture(self) -> dict:
        """The fields that shape the weights (a checkpoint resumes only into the same)."""
        return {k: v for k, v in asdict(self).items() if k != "iterations"}


def standardize(patches: torch.Tensor) -> torch.Tensor:
    """Each patch to zero mean and unit deviation: brightness and contrast changes drop out."""
    std, mean = torch.std_mean(patches.reshape(len(patches), -1), 1)
    return (patches - mean[:, None, None]) / std.clamp_min(1.0)[:, None, None]  # gray levels 0-255: below 1 is flat


class LearnedRefiner(nn.Module, PatchStage):
    """Step 4 of the module's docstring learned: both patches pass a small shared CNN, the template's
    features are correlated with the window's at every integer shift, a small CNN scores every shift
    from that map and the plain NCC map, and the offset is the soft arg-max of the scores. Trained on bank pairs, whose true offsets
    are exact (``python -m train.refiner``).

    ``forward``: templates (K, t, t), windows (K, w, w) gray levels → offsets (K, 2) in pixels,
    (x, y), from ``points1`` to the refined position."""

    def __init__(self, cfg: RefinerConfig | None = None):
        super().__init__()
        self.cfg = cfg = cfg or RefinerConfig()
        convs: list[nn.Module] = []
        for i in range(cfg.layers):
            convs += [nn.Conv2d(1 if i == 0 else cfg.channels, cfg.channels, 3), nn.GELU()]
        # unpadded ("valid") convolutions: each layer trims a pixel per side, so the template's
        # features cover its centre with context from the whole patch, and the correlation costs
        # (t − 2·layers)² taps instead of t² (the refiner runs on every match of a pair)
        self.features = nn.Sequential(*convs[:-1])  # linear last layer: correlations may be negative
        # scores of every shift from the learned and the NCC map around it; a soft arg-max of
        # them is the offset (translation-equivariant, and sub-pixel by weighting neighbours)
        self.score = nn.Sequential(nn.Conv2d(2, cfg.hidden, 3, padding=1), nn.GELU(), nn.Conv2d(cfg.hidden, 1, 3, padding=1))
        shifts = torch.arange(-cfg.search, cfg.search + 1, dtype=torch.float32)
        self.register_buffer("shifts", torch.stack(torch.meshgrid(shifts, shifts, indexing="xy"), -1).reshape(-1, 2), persistent=False)

    def forward(self, templates: torch.Tensor, windows: torch.Tensor) -> torch.Tensor:
        k = len(templates)
        if k == 0:
            return templates.new_zeros(0, 2)
        ft = self.features(standardize(templates)[:, None])  # (K, C, t', t'), t' = t − 2·layers
        fw = self.features(standardize(windows)[:, None])  # (K, C, w', w'), w' − t' + 1 = S
        c, t, w = ft.shape[1], ft.shape[-1], fw.shape[-1]
        # each channel correlated on its own, then summed: the same sums as one convolution grouped by
        # patch, which runs several times slower on the CPU (oneDNN is fast with one input channel per group)
        per_channel = F.conv2d(fw.reshape(1, k * c, w, w), ft.reshape(k * c, 1, t, t), groups=k * c)[0]
        learned = per_channel.view(k, c, w - t + 1, w - t + 1).sum(1) / (c * t * t)  # (K, S, S)
        ncc = normalized_cross_correlation(templates, windows)
        scores = self.score(torch.stack([learned, ncc], 1)).reshape(k, -1)
        return scores.softmax(1) @ self.shifts

    @property
    def half(self) -> int:
        return self.cfg.half

    @property
    def search(self) -> int:
        return self.cfg.search

    @property
    def iterations(self) -> int:
        return self.cfg.iterations

    @torch.no_grad()
    def offsets(self, templates: torch.Tensor, windows: torch.Tensor, chunk: int = 256) -> np.ndarray:
        if len(templates) == 0:
            return np.zeros((0, 2))
        device = self.shifts.device  # patches are cut on the CPU; the network may sit on a GPU
        # chunks of 256 keep each layer's activations in the CPU's cache (thousands at once ran slower)
        # a soft arg-max stays within the search range: no offset needs checking
        return torch.cat([self(a.to(device).float(), b.to(device).float()).cpu()
                          for a, b in zip(templates.split(chunk), windows.split(chunk))]).double().numpy()


    def save(self, path: str | os.PathLike, **extra) -> Path:
        """The model file (config + weights; ``extra``: e.g. the training record), written atomically."""
        return write_model_file(path, {"format": FORMAT, "version": VERSION, "config": asdict(self.cfg), "state_dict": self.state_dict(),
                                       **extra})

    @classmethod
    def load(cls, path: str | os.PathLike = "default", **overrides) -> "LearnedRefiner":
        """``"default"`` (the shipped weights), a file written by ``save`` / ``train.export``, or a
        ``train.refiner`` run (its folder: ``best.ckpt``, else ``last.ckpt``; or a ``.ckpt``);
        ``overrides``: inference options (``iterations``)."""
        config, state = refiner_state(path)
        model = cls(config_from_dict(RefinerConfig, config, "refiner", overrides, ("iterations",)))
        model.load_state_dict(state)
        return model.eval()


def refiner_state(path: str | os.PathLike) -> tuple[dict, dict]:
    """(config dict, state_dict) of a refiner model file or of a ``train.refiner`` run / checkpoint."""
    if str(path) != "default" and (Path(path).is_dir() or Path(path).suffix == ".ckpt"):
        source = resolve_checkpoint(path)
        run = training_checkpoint(read_checkpoint(source))
        if run is None or run[0] != "refiner":
            raise PygmatchError(f"{source}: not a train.refiner checkpoint (a graph network's run? load it as a matcher)")
        return run[1], run[2]
    _, ckpt = read_model_file(path, WEIGHTS, FORMAT, VERSION, "refiner")
    return ckpt["config"], ckpt["state_dict"]
