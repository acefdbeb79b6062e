"""The datasets of a run from its ``TrainConfig``: training pairs (on the fly or from a feature
bank) and the fixed validation pairs."""
from __future__ import annotations

from ..data.bank import FeatureBank
from ..data.dataset import BankPairs, HomographyPairs
from ..data.images import EMBEDDED_IMAGES
from .config import TrainConfig


def make_datasets(cfg: TrainConfig) -> tuple[HomographyPairs | BankPairs, HomographyPairs]:
    """(training pairs, validation pairs), both with the configured graph transforms."""
    d, seed = cfg.data, cfg.optim.seed
    intra, cross = cfg.graph.transforms()
    common = dict(graph=intra, cross=cross, features=d.features, max_keypoints=d.max_keypoints, size=tuple(d.size), difficulty=d.difficulty)
    gt = dict(match_px=d.gt_match_px, unmatched_px=d.gt_unmatched_px)
    if d.bank:
        bank = FeatureBank(d.bank)
        bank.check_compatible(d.features, d.max_keypoints, tuple(d.size))
        train = BankPairs(bank, graph=intra, cross=cross, max_keypoints=d.max_keypoints, augment=tuple(d.augment), seed=seed, **gt)
    else:
        train = HomographyPairs(d.data or EMBEDDED_IMAGES, seed=seed, pairs_per_image=d.pairs_per_image, **common, **gt)
    # Validation keeps eval.coco's ground truth (3 / 5 px), so its recall means what eval.coco's does.
    val = HomographyPairs(d.val_data or EMBEDDED_IMAGES, seed=seed + 12345, fixed=True, cache=True, max_images=d.val_images, **common)
    return train, val
