"""Images: reading folders and files (grayscale, resized to cover a target size, centre-cropped),
accepting arrays, downscaling for extraction and mapping positions back to the original pixels."""
from __future__ import annotations

import numbers
import os
import warnings
from pathlib import Path

import cv2
import numpy as np

from ..errors import PygmatchError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm")
DEFAULT_SIZE = (640, 480)
MIN_SIDE = 32  # below this an image carries no usable keypoints, whatever the upscaling
# Longer image side (px) keypoints are extracted at, as LightGlue's. The models train on 640×480
# images; OpenCV's SIFT on an 8000×6000 photograph took 65 s and 11.5 GB, at 1024 px ~0.2 s.
DEFAULT_RESIZE = 1024
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


# OpenCV turns a photograph upright by its EXIF orientation tag; COLMAP does not. Keypoints in the
# turned image's pixels written into a COLMAP database or compared with a COLMAP model's cameras
# would be in the wrong frame (a portrait phone photograph: width and height swapped), so every
# image is read as stored, as COLMAP reads it.
READ_FLAGS = cv2.IMREAD_GRAYSCALE | cv2.IMREAD_IGNORE_ORIENTATION


def read_gray(path: str | os.PathLike, size: tuple[int, int] | None = DEFAULT_SIZE) -> np.ndarray:
    """A grayscale uint8 image, resized/cropped to ``size`` (``None`` keeps the original size).
    The pixels as stored (``READ_FLAGS``): an EXIF orientation tag is not applied.

    Raises ``CorruptImage`` for an unreadable file or one smaller than ``MIN_SIDE`` pixels.
    """
    data = np.fromfile(str(path), dtype=np.uint8) if Path(path).is_file() else None
    if data is None:
        raise PygmatchError(f"{path}: no such image file")
    image = cv2.imdecode(data, READ_FLAGS) if data.size else None
    if image is None:
        raise CorruptImage(f"{path}: not a readable image")
    if min(image.shape[:2]) < MIN_SIDE:
        raise CorruptImage(f"{path}: image is {image.shape[1]}x{image.shape[0]}, smaller than {MIN_SIDE} px")
    return resize_crop(image, size) if size is not None else image


def _is_pil_image(image) -> bool:
    """A PIL (Pillow) image, recognised without importing PIL (it is not a dependency)."""
    return any(c.__module__.startswith("PIL.") and c.__name__ == "Image" for c in type(image).__mro__)


BIT_DEPTHS = (8, 10, 12, 14, 16)  # what cameras and scientific images store in integer pixels


def _as_uint8(image: np.ndarray) -> np.ndarray:
    """Pixel values as uint8: uint8 as is; any other integer type by its bit depth, the smallest
    of 8, 10, 12, 14 or 16 bits that holds its largest value (2^bits - 1 -> 255: 12-bit data
    0..4095 in a uint16 or int32 array is as bright as the same picture in 8 bits, 16-bit data is
    scaled 65535 -> 255, 0..255 stays as is); floats in [0, 1] scaled by 255, floats in [0, 255]
    rounded. Anything else (NaN, negative or larger values, other types) is a ``PygmatchError``."""
    if image.dtype == np.uint8:
        return image
    if image.dtype.kind not in "iuf":
        raise PygmatchError(f"image array: expected uint8, integer or float pixel values, got dtype {image.dtype}")
    if image.dtype.kind == "f" and not np.isfinite(image).all():
        raise PygmatchError("image array: holds NaN or infinite values")
    lo, hi = (image.min(), image.max()) if image.size else (0, 0)
    top = 255 if image.dtype.kind == "f" else 2 ** BIT_DEPTHS[-1] - 1
    if lo < 0 or hi > top:
        raise PygmatchError(f"image array: {image.dtype} values from {lo:g} to {hi:g}; expected 0..{top}"
                            + (" (or 0..1)" if image.dtype.kind == "f" else " (up to 16 bits)"))
    if image.dtype.kind == "f":
        if hi <= 1:
            image = image * 255.0
        return np.round(image).astype(np.uint8)
    bits = next(b for b in BIT_DEPTHS if hi < 2 ** b)
    if bits == 8:
        return image.astype(np.uint8)
    top = 2 ** bits - 1
    return ((image.astype(np.int64) * 255 + top // 2) // top).astype(np.uint8)


def none_readable(files, size: tuple[int, int] | None = DEFAULT_SIZE) -> str | None:
    """None when one of ``files`` can be read (decoding only up to the first that can), else the
    first file's error: what a command says when a whole folder is unreadable, before any work."""
    first_error = None
    for f in files:
        try:
            read_gray(f, size)
            return None
        except CorruptImage as e:
            first_error = first_error or str(e)
    return first_error or "no image files"


def as_gray(image, size: tuple[int, int] | None = None) -> np.ndarray:
    """A grayscale uint8 image from a path, a NumPy array or a PIL image.

    - a path: read as ``read_gray`` reads it (colour files are converted by OpenCV).
    - an array: H×W (gray), H×W×1, H×W×3 in **BGR** order or H×W×4 BGRA — OpenCV's order, what
      ``cv2.imread`` returns. An RGB array (from PIL, imageio, matplotlib) should be flipped
      first (``rgb[..., ::-1]``) or passed as a PIL image; read as BGR, its gray values differ
      slightly (red and blue weights swapped). Pixel values: uint8; other integers (uint16,
      int32, ...) scaled by their bit depth, the smallest of 8, 10, 12, 14, 16 bits that holds the
      largest value (12-bit data 0..4095 -> 0..255); floats in 0..1 (scaled by 255) or 0..255.
    - a PIL image: any mode, converted by PIL's own ``convert("L")`` (its RGB order is known).

    Arrays get the same checks as files: smaller than ``MIN_SIDE`` pixels on a side (0×0
    included), another shape, NaN or out-of-range values are a one-line ``PygmatchError``."""
    if isinstance(image, (str, os.PathLike)):
        try:
            return read_gray(image, size)
        except CorruptImage as e:
            raise PygmatchError(str(e)) from None
    if _is_pil_image(image):
        image = np.asarray(image.convert("L"))
    elif not isinstance(image, np.ndarray):
        given = type(image).__name__
        try:
            image = np.asarray(image)
        except (TypeError, ValueError):
            image = np.asarray(None)
        if image.dtype.kind not in "biuf" or image.ndim < 2:
            raise PygmatchError(f"expected an image path, a NumPy array or a PIL image, got {given}")
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[:, :, 0]
    if not (image.ndim == 2 or (image.ndim == 3 and image.shape[2] in (3, 4))):
        raise PygmatchError(f"image array: expected H×W, H×W×3 (BGR) or H×W×4 (BGRA), got shape {image.shape}")
    if min(image.shape[:2]) < MIN_SIDE:
        raise PygmatchError(f"image array: image is {image.shape[1]}x{image.shape[0]}, smaller than {MIN_SIDE} px")
    image = _as_uint8(image)
    if image.ndim == 3:
        image = cv2.cvtColor(np.ascontiguousarray(image), cv2.COLOR_BGR2GRAY if image.shape[2] == 3 else cv2.COLOR_BGRA2GRAY)
    return resize_crop(image, size) if size is not None else np.ascontiguousarray(image)


def downscale(image: np.ndarray, max_side: int | None) -> tuple[np.ndarray, np.ndarray]:
    """``(image, S)``: the image resized so that its longer side is at most ``max_side`` (never
    enlarged; ``None`` or 0 keeps it), and the 3×3 matrix taking original pixel coordinates to
    the new ones (OpenCV pixel centres: ``u = s·(x + 0.5) − 0.5``, per axis)."""
    h, w = image.shape[:2]
    if not max_side or max(h, w) <= max_side:
        return image, np.eye(3)
    s = max_side / max(h, w)
    nw, nh = max(1, round(w * s)), max(1, round(h * s))
    small = cv2.resize(image, (nw, nh), interpolation=cv2.INTER_AREA)
    sx, sy = nw / w, nh / h
    return small, np.array([[sx, 0, 0.5 * sx - 0.5], [0, sy, 0.5 * sy - 0.5], [0, 0, 1.0]])


def points_to_original(xy: np.ndarray, S: np.ndarray) -> np.ndarray:
    """Positions (K, 2) on an image resized by ``S`` (``downscale``) in the original image's
    pixels (float64)."""
    return (np.asarray(xy, np.float64) + 0.5) / np.array([float(S[0, 0]), float(S[1, 1])]) - 0.5


def check_resize(resize) -> int | None:
    """``resize`` (the longer image side keypoints are found at) checked: None or an integer >= ``MIN_SIDE``."""
    if resize is None or (isinstance(resize, numbers.Integral) and not isinstance(resize, bool) and resize >= MIN_SIDE):
        return None if resize is None else int(resize)
    raise PygmatchError(f"resize must be a number of pixels >= {MIN_SIDE} (the longer image side), or None for the original size, got {resize!r}")


def warn_skip(message: str) -> None:
    warnings.warn(f"skipping {message}", stacklevel=2)
