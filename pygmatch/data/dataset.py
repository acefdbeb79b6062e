"""``HomographyPairs``: a PyG-ready dataset of image pairs made on the fly from a folder."""
from __future__ import annotations

import os
import warnings

import numpy as np
import torch

from ..errors import PygmatchError
from .features import extract
from .augment import AUGMENTATIONS, KeypointSubset
from .bank import FeatureBank
from .images import DEFAULT_SIZE, CorruptImage, list_images, none_readable, read_gray
from .pair_data import make_pair_data
from .pairs import make_pair, pair_rng
from .photometric import Photometric


class HomographyPairs(torch.utils.data.Dataset):
    """Every item: an image, a random homography + photometric change of it, keypoints extracted on
    both real images, the intra-image graphs (``graph``), the cross edges (``cross``) and the ground
    truth, as one ``PairData``. ``graph`` and ``cross`` are any transforms of ``pygmatch.graphs``
    (None: no intra-image edges, which the model reads as complete graphs, and complete cross
    edges). Swap the graph in one line::

        HomographyPairs(EMBEDDED_IMAGES, graph=KNNGraph(k=16))
        HomographyPairs(EMBEDDED_IMAGES, graph=MultiScaleGraph((8, 16, "all"), "disjoint"))

    Reproducible: item ``i`` depends only on (seed, epoch, i). ``fixed=True`` (validation) ignores
    the epoch, so every pass sees the same pairs. Only file names are listed up front; each item
    decodes its own image, so a 118k-image folder is ready at once and works with many workers.
    An unreadable image is skipped with a warning: the item falls through to the next image.
    """

    def __init__(self, root: str | os.PathLike, graph=None, cross=None, features: str = "sift",
                 max_keypoints: int = 1024, size: tuple[int, int] = DEFAULT_SIZE, difficulty: float = 1.0, seed: int = 0,
                 pairs_per_image: int = 1, fixed: bool = False, photometric: Photometric | None = Photometric(),
                 max_images: int | None = None, cache: bool = False, match_px: float = 3.0, unmatched_px: float = 5.0):
        roots = [root] if isinstance(root, (str, os.PathLike)) else list(root)
        self.files = [f for r in roots for f in list_images(r)][:max_images]
        self.match_px, self.unmatched_px = match_px, unmatched_px
        self.root, self.graph, self.cross = root, graph, cross
        self.features, self.max_keypoints, self.size = features, max_keypoints, size
        self.difficulty, self.seed, self.pairs_per_image, self.fixed = difficulty, seed, pairs_per_image, fixed
        self.photometric = photometric
        self.epoch = 0
        # A fixed set (validation) can keep its items: keypoints are extracted once, not every pass.
        self._cache = {} if cache and fixed else None

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def check_readable(self) -> None:
        """Stop in one line when no image can be read; decodes only up to the first good one."""
        first_error = none_readable(self.files, self.size)
        if first_error is None:
            return
        raise PygmatchError(f"{self.root}: none of the {len(self.files)} images could be read (e.g. {first_error}); nothing to train on")

    def __len__(self) -> int:
        return len(self.files) * self.pairs_per_image

    def __getitem__(self, index: int):
        if self._cache is not None and index in self._cache:
            return self._cache[index]
        image_index, repeat = divmod(index, self.pairs_per_image)
        for attempt in range(len(self.files)):
            k = (image_index + attempt) % len(self.files)
            try:
                image = read_gray(self.files[k], self.size)
                break
            except CorruptImage as e:
                warnings.warn(f"skipping {e}", stacklevel=2)
        else:
            raise PygmatchError(f"{self.root}: none of the {len(self.files)} images could be read")
        seed = self.seed if self.fixed else self.seed + 1_000_003 * self.epoch
        im0, im1, H = make_pair(image, pair_rng(seed, k, repeat), self.difficulty, self.photometric)
        kp0 = extract(im0, self.features, self.max_keypoints)
        kp1 = extract(im1, self.features, self.max_keypoints)
        pair = make_pair_data(kp0, kp1, self.size, self.graph, self.cross, H, match_px=self.match_px, unmatched_px=self.unmatched_px)
        pair.name = self.files[k].stem
        pair.skipped_images = torch.tensor([attempt])  # unreadable files passed over for this item
        if self._cache is not None:
            self._cache[index] = pair
        return pair

    def __repr__(self) -> str:
        return (f"HomographyPairs({self.root}, {len(self)} pairs, graph={self.graph!r}, cross={self.cross!r}, "
                f"features={self.features!r}, difficulty={self.difficulty})")


class BankPairs(torch.utils.data.Dataset):
    """Pairs of a feature bank (``pygmatch.data.bank``) as ``PairData``, with augmentations
    that keep the ground truth exact (``pygmatch.data.augment``): each epoch a pair may be
    swapped, its image-1 keypoints moved by a random similarity, and a different keypoint subset
    kept. Item ``i`` depends only on (seed, epoch, i). No image is decoded, nothing is extracted.
    """

    def __init__(self, bank, graph=None, cross=None, max_keypoints: int = 1024,
                 augment: tuple[str, ...] = ("swap", "similarity", "subset"),
                 seed: int = 0, match_px: float = 3.0, unmatched_px: float = 5.0):
        self.bank = bank if isinstance(bank, FeatureBank) else FeatureBank(bank)
        unknown = [a for a in augment if a not in AUGMENTATIONS]
        if unknown:
            raise PygmatchError(f"unknown augmentation(s) {', '.join(unknown)}; choose from {', '.join(AUGMENTATIONS)}")
        steps = [AUGMENTATIONS[a]() for a in ("swap", "similarity") if a in augment]
        # the subset always runs (at least the strongest max_keypoints), randomly only if asked
        steps.append(KeypointSubset(max_keypoints, p_random=0.5 if "subset" in augment else 0.0))
        self.augment = steps
        self.root, self.graph, self.cross, self.seed = self.bank.root, graph, cross, seed
        self.match_px, self.unmatched_px = match_px, unmatched_px
        self.size = tuple(self.bank.config.size)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.bank)

    def __getitem__(self, index: int):
        kp0, kp1, H, _ = self.bank.keypoints(index)
        rng = np.random.default_rng([self.seed, self.epoch, index])
        for step in self.augment:
            kp0, kp1, H = step(kp0, kp1, H, rng, self.size)
        pair = make_pair_data(kp0, kp1, self.size, self.graph, self.cross, H, match_px=self.match_px, unmatched_px=self.unmatched_px)
        pair.name = f"bank{index}"
        pair.skipped_images = torch.tensor([0])
        return pair

    def __repr__(self) -> str:
        return f"BankPairs({self.bank!r}, augment={self.augment}, graph={self.graph!r}, gt=({self.match_px}, {self.unmatched_px}) px)"
