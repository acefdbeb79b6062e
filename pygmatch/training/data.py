"""The training and validation pairs of a run, as candidate graphs with their labels.

A pair (two images related by a known homography ``H``, their keypoints) becomes the network's
input graph (``pygmatch.matching.candidate_graph.candidate_graph``) with, per candidate, its
reprojection error under ``H`` in pixels (``error`` (K,), the loss's label) and the pair's ``H``
(1, 3, 3) and image size, from which validation measures homography accuracy. Pairs come from

- feature banks (``python -m train.bank``): SIFT once, graphs built once at the start
  (``BankGraphs``); ``BANK:1,2`` takes only the bank's pairs of difficulties 1 and 2; a bank built
  with ``--views`` gives each pair's graphs of the rounds of view synthesis;
- image folders, on the fly (``ImageGraphs``): a new homography per image and epoch, SIFT in the
  data-loading workers.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np
import torch
from torch_geometric.data import Data

from ..data.bank import FeatureBank, map_bank_pairs
from ..data.features import Keypoints, extract
from ..data.geometry import warp_points
from ..data.images import CorruptImage, list_images, none_readable, read_gray, warn_skip
from ..data.pairs import make_pair, pair_rng
from ..data.photometric import Photometric
from ..errors import PygmatchError
from ..graphs.registry import graph_from_params
from ..data.views import ViewKeypoints, round_sets
from ..matching.candidate_graph import candidate_graph, view_candidate_graph
from ..nn.candidate_graph import CandidateGraphConfig

MAX_TRIES = 8  # homographies drawn for one image before passing to the next (a blank image has no candidates)


def labelled_graph(kp0: Keypoints, kp1: Keypoints, H: np.ndarray, size: tuple[int, int], cfg: CandidateGraphConfig, graph=None,
                   difficulty: float = 0.0) -> Data | None:
    """The candidate graph of one pair with ``error`` (K,) px, ``H`` (1, 3, 3) and ``image_size``
    (1, 2); None with too few candidates."""
    cand, data = candidate_graph(kp0, kp1, size, size, cfg, graph)
    if data is None:
        return None
    return with_labels(data, reprojection_error(kp0, kp1, cand, H), H, size, difficulty)


def reprojection_error(kp0: Keypoints, kp1: Keypoints, cand: np.ndarray, H: np.ndarray) -> np.ndarray:
    """(K,) px: how far each candidate's image-1 keypoint is from where ``H`` takes its image-0
    keypoint (1e6 where ``H`` sends it to infinity)."""
    err = np.linalg.norm(warp_points(kp0.xy[cand[:, 0]], H) - kp1.xy[cand[:, 1]], axis=1)
    return np.nan_to_num(err, nan=1e6, posinf=1e6)


# A keypoint found on a view of tilt t is located up to t times less precisely across the tilt, and
# the refiner, through the motion the views imply, brings a view match within 3 px to sub-pixel
# (docs/views.md); most correct view candidates are 1-3 px off (2 of 3 on difficulty-4 pairs). A view
# candidate's label is its error in units of this many px: a match within 3 px, wrong beyond 9.
VIEW_LABEL_PX = 3.0


def labelled_view_graphs(vk0: ViewKeypoints, vk1: ViewKeypoints, H: np.ndarray, size: tuple[int, int], cfg: CandidateGraphConfig,
                         graph=None, difficulty: float = 0.0) -> list[Data]:
    """The candidate graphs of one pair of a bank with views, as ``labelled_graph``: one per round of
    view synthesis (``round_sets`` of each image's full set, ``view_candidate_graph``), what the
    network judges when ``Pipeline(views="auto")`` synthesises views; rounds with too few candidates
    are left out. ``error`` is in units of ``VIEW_LABEL_PX``."""
    graphs = []
    for a0, a1 in zip(round_sets(vk0), round_sets(vk1)):
        cand, data = view_candidate_graph(a0, a1, size, size, cfg, graph)
        if data is not None:
            graphs.append(with_labels(data, reprojection_error(a0.keypoints, a1.keypoints, cand, H) / VIEW_LABEL_PX, H, size, difficulty))
    return graphs


def with_labels(data: Data, error: np.ndarray, H: np.ndarray, size: tuple[int, int], difficulty: float) -> Data:
    """A candidate graph with what training and validation read of its pair: ``error`` (K,) px (the
    loss's label), ``H`` (1, 3, 3), ``image_size`` (1, 2) and ``difficulty`` (1,). Every training
    graph, of homography pairs or of real scenes, has these keys, so that they batch together."""
    data.error = torch.from_numpy(np.asarray(error, np.float32))
    data.H = torch.from_numpy(np.asarray(H, np.float64))[None]
    data.image_size = torch.tensor([size], dtype=torch.float32)
    data.difficulty = torch.tensor([difficulty], dtype=torch.float32)
    return data


@dataclass(frozen=True)
class BankSlice:
    """Pairs ``first`` … ``stop − 1`` of a bank, only those of ``difficulties`` when given."""

    root: str
    first: int
    stop: int
    difficulties: tuple[float, ...] | None = None


def parse_bank(spec: str) -> tuple[str, tuple[float, ...] | None]:
    """``BANK`` or ``BANK:1,2`` → (folder, difficulties or None)."""
    if Path(spec).exists() or ":" not in spec:
        return spec, None
    root, _, ds = spec.rpartition(":")
    try:
        return root, tuple(float(d) for d in ds.split(","))
    except ValueError:
        raise PygmatchError(f"--bank {spec}: expected BANK or BANK:D,D (difficulties, e.g. :1,2)") from None


def split_banks(specs: list[str], val_pairs: int, features: str, size) -> tuple[list[BankSlice], list[BankSlice]]:
    """Each bank's last ``val_pairs`` pairs held out: (training slices, validation slices). The
    pairs keep the keypoints their bank holds (``python -m train.bank --max-keypoints``)."""
    train, val = [], []
    for spec in specs:
        root, difficulties = parse_bank(spec)
        bank = FeatureBank(root)
        bank.check_compatible(features, None, tuple(size))
        if difficulties is not None and not set(difficulties) & set(bank.config.difficulties):
            raise PygmatchError(f"--bank {spec}: the bank holds difficulties {', '.join(map(str, bank.config.difficulties))}, "
                                f"none of {', '.join(map(str, difficulties))}")
        n_train = len(bank) - val_pairs
        if n_train < 1:
            raise PygmatchError(f"{root}: holds {len(bank)} pairs, not more than --val-pairs {val_pairs}")
        train.append(BankSlice(root, 0, n_train, difficulties))
        if val_pairs:
            val.append(BankSlice(root, n_train, len(bank), difficulties))
    return train, val


def _bank_pair_graph(bank: FeatureBank, pair: int, cfg: CandidateGraphConfig, part: BankSlice):
    if pair < part.first:  # map_bank_pairs maps the first N pairs; these are not wanted
        return None
    views = bank.config.views  # a bank with views: the graphs of the rounds of view synthesis
    side0, side1, H, difficulty = bank.view_keypoints(pair) if views else bank.keypoints(pair)
    if part.difficulties is not None and difficulty not in part.difficulties:
        return None
    size = tuple(bank.config.size)
    graphs = labelled_view_graphs(side0, side1, H, size, cfg, difficulty=difficulty) if views else \
        [g for g in [labelled_graph(side0, side1, H, size, cfg, difficulty=difficulty)] if g is not None]
    return graphs or None


class BankGraphs(torch.utils.data.Dataset):
    """The candidate graphs of bank slices, built once (``workers`` processes) and kept in memory."""

    def __init__(self, parts: list[BankSlice], cfg: CandidateGraphConfig, workers: int = 1, progress: bool = True):
        self.parts = parts
        self.graphs = []
        for part in parts:
            fn = partial(_bank_pair_graph, cfg=cfg, part=part)
            self.graphs += [g for _, graphs in map_bank_pairs(part.root, fn, part.stop, max(1, workers), f"graphs of {part.root}", progress)
                            for g in graphs]
        if parts and not self.graphs:
            raise PygmatchError(f"{', '.join(p.root for p in parts)}: no pair with enough candidates (at least 8 mutual nearest neighbours)")

    def set_epoch(self, epoch: int) -> None:  # the pairs are fixed; the loader shuffles them
        pass

    def __len__(self) -> int:
        return len(self.graphs)

    def __getitem__(self, index: int) -> Data:
        return self.graphs[index]

    def __repr__(self) -> str:
        pairs = sum(p.stop - p.first for p in self.parts)
        return f"{type(self).__name__}({len(self.graphs)} graphs of {pairs} bank pairs in {len(self.parts)} bank(s))"


class ImageGraphs(torch.utils.data.Dataset):
    """Homography pairs made on the fly from image folders: item ``i`` of epoch ``e`` is image
    ``i mod N`` warped by a homography drawn from (seed, e, i), at the difficulties in turn; SIFT
    on both, then the candidate graph. ``fixed``: the same pairs every epoch, built once (validation).
    An unreadable image is passed over with a warning; a folder of which none can be read is a
    one-line error (naming the flag ``what``) before any work."""

    def __init__(self, folders: list[str | os.PathLike], cfg: CandidateGraphConfig, seed: int = 0, pairs_per_image: int = 1,
                 difficulties: tuple[float, ...] = (1.0, 2.0), size: tuple[int, int] = (640, 480), max_keypoints: int = 1024,
                 max_images: int | None = None, fixed: bool = False, what: str = "--data"):
        self.folders = [str(f) for f in folders]
        self.files = [f for folder in folders for f in list_images(folder)][:max_images]
        if not self.files:
            raise PygmatchError(f"{what} {', '.join(self.folders)}: no images")
        first_error = none_readable(self.files, size)
        if first_error is not None:
            raise PygmatchError(f"{what} {', '.join(self.folders)}: none of the {len(self.files)} images could be read (e.g. {first_error})")
        self.cfg, self.seed, self.pairs_per_image = cfg, seed, pairs_per_image
        self.difficulties, self.size, self.max_keypoints = tuple(difficulties), tuple(size), max_keypoints
        self.graph = graph_from_params(cfg.graph)
        self.epoch = 0
        self.cache = [self.make(i) for i in range(len(self))] if fixed else None

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.files) * self.pairs_per_image

    def make(self, index: int) -> Data:
        difficulty = self.difficulties[index % len(self.difficulties)]
        for attempt in range(len(self.files)):
            path = self.files[(index + attempt) % len(self.files)]
            try:
                image = read_gray(path, self.size)
            except CorruptImage as e:
                warn_skip(str(e))
                continue
            for repeat in range(MAX_TRIES):
                im0, im1, H = make_pair(image, pair_rng(self.seed + 1000 * self.epoch, index, repeat), difficulty, Photometric())
                kp0, kp1 = extract(im0, self.cfg.features, self.max_keypoints), extract(im1, self.cfg.features, self.max_keypoints)
                data = labelled_graph(kp0, kp1, H, self.size, self.cfg, self.graph, difficulty)
                if data is not None:
                    return data
        raise PygmatchError(f"{', '.join(self.folders)}: no image gives a pair with enough candidates (at least 8 mutual nearest neighbours)")

    def __getitem__(self, index: int) -> Data:
        return self.cache[index] if self.cache is not None else self.make(index)

    def __repr__(self) -> str:
        return (f"{type(self).__name__}({', '.join(self.folders)}: {len(self.files)} images × {self.pairs_per_image}, "
                f"difficulties {','.join(map(str, self.difficulties))})")


def feature_stats(dataset, limit: int = 2000) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and standard deviation of the node features over (up to ``limit`` of) the dataset's
    graphs: the network's input normalisation, fixed at the start of training. A feature that does
    not vary (the view tilts of plain SIFT pairs) gets deviation 1: were it to vary where the
    network is used (candidates of simulated views), it would not be blown up."""
    x = torch.cat([dataset[i].x for i in range(min(len(dataset), limit))])
    std = x.std(0)
    return x.mean(0), torch.where(std > 1e-6, std, torch.ones_like(std))


class JoinedGraphs(torch.utils.data.ConcatDataset):
    """Several datasets of training graphs as one (homography pairs and real scenes' pairs); a new
    epoch reaches those that have epochs."""

    def set_epoch(self, epoch: int) -> None:
        for dataset in self.datasets:
            if hasattr(dataset, "set_epoch"):
                dataset.set_epoch(epoch)

    def __repr__(self) -> str:
        return " + ".join(map(repr, self.datasets))


def in_memory(dataset) -> bool:
    """Graphs built once and kept (no SIFT left for loader workers to run)."""
    if isinstance(dataset, JoinedGraphs):
        return all(in_memory(d) for d in dataset.datasets)
    return not isinstance(dataset, ImageGraphs)


__all__ = ["BankGraphs", "BankSlice", "ImageGraphs", "JoinedGraphs", "in_memory", "with_labels",
           "feature_stats", "labelled_graph", "labelled_view_graphs", "reprojection_error", "parse_bank", "split_banks"]
