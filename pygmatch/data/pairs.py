"""Homography pair sets: made reproducibly from an image folder, saved to / loaded from one .npz."""
from __future__ import annotations

import os
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..files import make_parent_folder, writable_file
from ..errors import PygmatchError
from .geometry import sample_homography, warp_image
from .images import DEFAULT_SIZE, CorruptImage, list_images, read_gray, warn_skip
from .photometric import Photometric


def make_pair(
    image: np.ndarray, rng: np.random.Generator, difficulty: float = 1.0, photometric: Photometric | None = Photometric()
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(image0, image1, H_0to1): image 1 is image 0 warped by a random homography, then re-lit."""
    size = (image.shape[1], image.shape[0])
    H = sample_homography(size, rng, difficulty)
    warped = warp_image(image, H)
    if photometric is not None:
        warped = photometric(warped, rng, difficulty)
    return image, warped, H


def pair_rng(seed: int, index: int, repeat: int = 0) -> np.random.Generator:
    """The generator for one pair depends only on (seed, image index, repeat), not on the order of work."""
    return np.random.default_rng([seed, index, repeat])


@dataclass
class PairSet:
    """N pairs of equally sized grayscale images with the homography that maps 0 to 1."""

    image0: np.ndarray  # N×H×W uint8
    image1: np.ndarray  # N×H×W uint8
    H_0to1: np.ndarray  # N×3×3 float64
    names: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # images that could not be used, with why

    def __len__(self) -> int:
        return len(self.H_0to1)

    @property
    def size(self) -> tuple[int, int]:
        return (self.image0.shape[2], self.image0.shape[1])

    def save(self, path: str | os.PathLike) -> None:
        """Written to a temporary file next to ``path``, then renamed: never a half-written set,
        and no temporary file left behind when writing fails."""
        path = writable_file(path, example="pairs.npz")
        make_parent_folder(path)
        tmp = path.with_name(path.name + ".tmp.npz")
        try:
            np.savez_compressed(tmp, image0=self.image0, image1=self.image1, H_0to1=self.H_0to1, names=np.array(self.names, dtype=str))
            os.replace(tmp, path)
        except OSError as e:
            raise PygmatchError(f"{path}: could not write the pair set ({e.strerror or e})") from None
        finally:  # also on Ctrl-C; after the rename there is nothing left to remove
            tmp.unlink(missing_ok=True)

    @classmethod
    def load(cls, path: str | os.PathLike) -> "PairSet":
        path = Path(path)
        if not path.is_file():
            raise PygmatchError(f"{path}: no such pair file")
        try:
            with np.load(path, allow_pickle=False) as f:
                arrays = {k: f[k] for k in f.files}
        except (OSError, ValueError, zipfile.BadZipFile, EOFError) as e:
            raise PygmatchError(f"{path}: not a readable .npz file ({e})") from None
        missing = [k for k in ("image0", "image1", "H_0to1") if k not in arrays]
        if missing:
            raise PygmatchError(f"{path}: missing array(s) {', '.join(missing)} (have: {', '.join(arrays) or 'none'})")
        im0, im1, H = arrays["image0"], arrays["image1"], arrays["H_0to1"]
        if im0.ndim != 3 or im0.shape != im1.shape:
            raise PygmatchError(f"{path}: image0 {im0.shape} and image1 {im1.shape} must both be N×H×W with the same shape")
        if im0.dtype != np.uint8 or im1.dtype != np.uint8:
            raise PygmatchError(f"{path}: image0/image1 must be uint8, got {im0.dtype}/{im1.dtype}")
        if H.shape != (len(im0), 3, 3):
            raise PygmatchError(f"{path}: H_0to1 has shape {H.shape}, expected ({len(im0)}, 3, 3)")
        if not np.issubdtype(H.dtype, np.floating) or not np.all(np.isfinite(H)):
            raise PygmatchError(f"{path}: H_0to1 must be finite floats")
        names = [str(n) for n in arrays["names"]] if "names" in arrays else []
        if names and len(names) != len(im0):
            raise PygmatchError(f"{path}: names has {len(names)} entries for {len(im0)} pairs")
        bad = singular_homographies(H)
        if bad:
            k, why = bad[0]
            more = f" ({len(bad) - 1} more pair(s) too)" if len(bad) > 1 else ""
            raise PygmatchError(f"{path}: H_0to1[{k}]{f' (pair {names[k]!r})' if names else ''} is {why}: "
                                f"a homography must be invertible{more}")
        if min(im0.shape[1:]) < 16:
            raise PygmatchError(f"{path}: images are {im0.shape[2]}x{im0.shape[1]}, too small to match")
        return cls(im0, im1, H.astype(np.float64), names or [f"pair{i:04d}" for i in range(len(im0))])


def singular_homographies(H: np.ndarray) -> list[tuple[int, str]]:
    """``(index, why)`` of each 3×3 matrix in ``H`` (N×3×3) that is not an invertible homography:
    all zeros, or singular to float64 precision (the test of ``sequences.read_homography``)."""
    s = np.linalg.svd(np.asarray(H, np.float64), compute_uv=False)
    bad = []
    for k in np.nonzero((s[:, 0] == 0) | (s[:, -1] <= 1e-12 * s[:, 0]))[0]:
        bad.append((int(k), "all zeros" if s[k, 0] == 0 else f"singular (determinant {np.linalg.det(H[k]):.3g})"))
    return bad


def check_memory(needed: int, what: str) -> None:
    """Refuse up front, with the estimate, what would not fit in the memory available now (a pair
    set is held in memory; a huge count used to grow until the machine ran out)."""
    try:
        available = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):  # not every platform says
        return
    if needed > available:
        raise PygmatchError(f"{what} would need about {needed / 2**30:.1f} GiB of memory, but {available / 2**30:.1f} GiB is available")


def make_pairs(
    folder: str | os.PathLike,
    seed: int = 0,
    pairs_per_image: int = 1,
    difficulty: float = 1.0,
    size: tuple[int, int] = DEFAULT_SIZE,
    max_images: int | None = None,
    photometric: Photometric | None = Photometric(),
) -> PairSet:
    """The same (folder, seed, pairs_per_image, difficulty, size) always gives the same pairs.

    Unreadable images are skipped with a warning and listed in ``PairSet.skipped``.
    """
    if pairs_per_image < 1:
        raise PygmatchError(f"pairs per image must be >= 1, got {pairs_per_image}")
    files = list_images(folder)[:max_images]
    check_memory(len(files) * pairs_per_image * 2 * size[0] * size[1], f"{len(files)} images x {pairs_per_image} pairs of {size[0]}x{size[1]}")
    im0, im1, Hs, names, skipped = [], [], [], [], []
    for index, file in enumerate(files):
        try:
            image = read_gray(file, size)
        except CorruptImage as e:
            warn_skip(str(e))
            skipped.append(str(e))
            continue
        for repeat in range(pairs_per_image):
            a, b, H = make_pair(image, pair_rng(seed, index, repeat), difficulty, photometric)
            im0.append(a), im1.append(b), Hs.append(H)
            names.append(file.stem if pairs_per_image == 1 else f"{file.stem}_{repeat}")
    if not Hs:
        raise PygmatchError(f"{folder}: none of the {len(files)} images could be read")
    return PairSet(np.stack(im0), np.stack(im1), np.stack(Hs), names, skipped)
