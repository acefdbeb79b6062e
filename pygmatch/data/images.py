"""Reading image folders: grayscale, resized to cover the target size, centre-cropped."""
from __future__ import annotations

import os
import warnings
from pathlib import Path

import cv2
import numpy as np

from ..errors import PygmatchError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm")
DEFAULT_SIZE = (640, 480)
MIN_SIDE = 32  # below this an image carries no usable keypoints, whatever the upscaling
EMBEDDED_IMAGES = Path(__file__).resolve().parents[1] / "datasets" / "coco-mini"  # package data: pygmatch/datasets/coco-mini


class CorruptImage(Exception):
    """An image that could not be decoded or is too small; callers skip and count it."""


def list_images(folder: str | os.PathLike) -> list[Path]:
    """Sorted image files directly inside ``folder``.

    Only names are read (``os.scandir``), nothing is decoded, so a 118k-image COCO
    ``train2017/`` lists in well under a second.
    """
    folder = Path(folder)
    if not folder.exists():
        raise PygmatchError(f"{folder}: no such folder")
    if not folder.is_dir():
        raise PygmatchError(f"{folder}: not a folder (expected a folder of images)")
    with os.scandir(folder) as it:
        files = sorted(
            Path(e.path) for e in it if e.is_file() and e.name.lower().endswith(IMAGE_SUFFIXES)
        )
    if not files:
        raise PygmatchError(f"{folder}: no images ({', '.join(IMAGE_SUFFIXES)}) in this folder")
    return files


def resize_crop(image: np.ndarray, size: tuple[int, int] = DEFAULT_SIZE) -> np.ndarray:
    """Resize (up or down) so the image covers ``size = (w, h)``, then crop the centre."""
    w, h = size
    ih, iw = image.shape[:2]
    scale = max(w / iw, h / ih)
    new = (max(w, round(iw * scale)), max(h, round(ih * scale)))
    interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    image = cv2.resize(image, new, interpolation=interp)
    y0, x0 = (new[1] - h) // 2, (new[0] - w) // 2
    return np.ascontiguousarray(image[y0 : y0 + h, x0 : x0 + w])


def read_gray(path: str | os.PathLike, size: tuple[int, int] | None = DEFAULT_SIZE) -> np.ndarray:
    """A grayscale uint8 image, resized/cropped to ``size`` (``None`` keeps the original size).

    Raises ``CorruptImage`` for an unreadable file or one smaller than ``MIN_SIDE`` pixels.
    """
    data = np.fromfile(str(path), dtype=np.uint8) if Path(path).is_file() else None
    if data is None:
        raise PygmatchError(f"{path}: no such image file")
    image = cv2.imdecode(data, cv2.IMREAD_GRAYSCALE) if data.size else None
    if image is None:
        raise CorruptImage(f"{path}: not a readable image")
    if min(image.shape[:2]) < MIN_SIDE:
        raise CorruptImage(f"{path}: image is {image.shape[1]}x{image.shape[0]}, smaller than {MIN_SIDE} px")
    return resize_crop(image, size) if size is not None else image


def as_gray(image: np.ndarray | str | os.PathLike, size: tuple[int, int] | None = None) -> np.ndarray:
    """Accept a path or an array (gray or BGR, uint8) and return a grayscale uint8 array."""
    if isinstance(image, (str, os.PathLike)):
        try:
            return read_gray(image, size)
        except CorruptImage as e:
            raise PygmatchError(str(e)) from None
    image = np.asarray(image)
    if image.ndim == 3 and image.shape[2] in (3, 4):
        image = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY if image.shape[2] == 3 else cv2.COLOR_BGRA2GRAY)
    if image.ndim != 2:
        raise PygmatchError(f"expected an H×W or H×W×3 image, got shape {image.shape}")
    if image.dtype != np.uint8:
        raise PygmatchError(f"expected a uint8 image, got {image.dtype}")
    return resize_crop(image, size) if size is not None else image


def warn_skip(message: str) -> None:
    warnings.warn(f"skipping {message}", stacklevel=2)
