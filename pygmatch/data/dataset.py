"""``HomographyPairs``: a PyG-ready dataset of image pairs made on the fly from a folder."""
from __future__ import annotations

import os
import warnings

import torch

from ..errors import PygmatchError
from ..features import extract
from ..graphs.cross import CompleteCross
from ..graphs.knn import KNNGraph
from .images import DEFAULT_SIZE, CorruptImage, list_images, read_gray
from .pair_data import make_pair_data
from .pairs import make_pair, pair_rng
from .photometric import Photometric


class HomographyPairs(torch.utils.data.Dataset):
    """Every item: an image, a random homography + photometric change of it, keypoints extracted on
    both real images, the intra-image graphs (``graph``), the cross edges (``cross``) and the ground
    truth, as one ``PairData``. Swap the graph in one line::

        HomographyPairs("datasets/coco-mini", graph=KNNGraph(k=16))
        HomographyPairs("datasets/coco-mini", graph=MultiScaleGraph((8, 16, "all"), "disjoint"))

    Reproducible: item ``i`` depends only on (seed, epoch, i). ``fixed=True`` (validation) ignores
    the epoch, so every pass sees the same pairs. Only file names are listed up front; each item
    decodes its own image, so a 118k-image folder is ready at once and works with many workers.
    An unreadable image is skipped with a warning: the item falls through to the next image.
    """

    def __init__(self, root: str | os.PathLike, graph=KNNGraph(16), cross=CompleteCross(), features: str = "sift",
                 max_keypoints: int = 1024, size: tuple[int, int] = DEFAULT_SIZE, difficulty: float = 1.0, seed: int = 0,
                 pairs_per_image: int = 1, fixed: bool = False, photometric: Photometric | None = Photometric(),
                 max_images: int | None = None, cache: bool = False):
        self.files = list_images(root)[:max_images]
        self.root, self.graph, self.cross = root, graph, cross
        self.features, self.max_keypoints, self.size = features, max_keypoints, size
        self.difficulty, self.seed, self.pairs_per_image, self.fixed = difficulty, seed, pairs_per_image, fixed
        self.photometric = photometric
        self.epoch = 0
        # A fixed set (validation) can keep its items: keypoints are extracted once, not every pass.
        self._cache = {} if cache and fixed else None

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

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
        pair = make_pair_data(kp0, kp1, self.size, self.graph, self.cross, H)
        pair.name = self.files[k].stem
        pair.skipped_images = torch.tensor([attempt])  # unreadable files passed over for this item
        if self._cache is not None:
            self._cache[index] = pair
        return pair

    def __repr__(self) -> str:
        return (f"HomographyPairs({self.root}, {len(self)} pairs, graph={self.graph!r}, cross={self.cross!r}, "
                f"features={self.features!r}, difficulty={self.difficulty})")
