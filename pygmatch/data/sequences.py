"""Real photograph sequences with ground-truth homographies: HPatches and the Oxford affine set.

A sequence is a folder with a reference image 1, other images N and the homography from 1 to N,
in one of two layouts:

- HPatches: ``1.ppm`` … ``6.ppm`` and ``H_1_2`` … ``H_1_6``; a folder name starting ``i_`` is an
  illumination sequence, ``v_`` a viewpoint one;
- Oxford affine: ``img1.ppm`` (or ``.pgm``) … ``img6.ppm`` and ``H1to2p`` … ``H1to6p``.

Images may be any format OpenCV reads (``.ppm .pgm .png .jpg`` …); each H file is 3×3 numbers
in plain text mapping pixel (x, y) of image 1 to image N. Every sequence gives the pairs (1, N).
Images are read when a pair is evaluated, downscaled so that their longer side is at most
``max_side``, and the homography is adjusted to the downscaled pixels.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import PygmatchError
from .images import IMAGE_SUFFIXES, CorruptImage, downscale, list_images, read_gray

EMBEDDED_SEQUENCES = Path(__file__).resolve().parents[1] / "datasets" / "real-mini"  # package data: pygmatch/datasets/real-mini
DEFAULT_MAX_SIDE = 640  # the longer side of the training images (640x480)

_EXT = "|".join(re.escape(s[1:]) for s in IMAGE_SUFFIXES)
LAYOUTS = {
    # name: (image file pattern, homography file pattern, image name format, H name format)
    "HPatches": (re.compile(rf"^(\d+)\.({_EXT})$", re.I), re.compile(r"^H_1_(\d+)$"), "{}.{}", "H_1_{}"),
    "Oxford": (re.compile(rf"^img(\d+)\.({_EXT})$", re.I), re.compile(r"^H1to(\d+)p$"), "img{}.{}", "H1to{}p"),
}
KINDS = {"i_": "illumination", "v_": "viewpoint"}


class BadPair(Exception):
    """A pair that cannot be evaluated (missing / unreadable image, bad homography file): the
    evaluation counts it as a failure of every method, naming the file."""


def sequence_kind(name: str) -> str:
    """``illumination`` / ``viewpoint`` from the HPatches prefix ``i_`` / ``v_``, else ``other``."""
    return next((kind for prefix, kind in KINDS.items() if name.startswith(prefix)), "other")


def read_homography(path: str | os.PathLike) -> np.ndarray:
    """A 3×3 float64 homography from a text file of 9 numbers, normalised to ``H[2, 2] = 1`` when
    possible. Raises ``PygmatchError`` naming the file if it is unreadable, not 3×3 finite
    numbers, or singular."""
    path = Path(path)
    try:
        text = path.read_bytes().decode("utf-8", errors="replace")
    except OSError as e:
        raise PygmatchError(f"{path}: cannot read homography file ({e.strerror or e})") from None
    rows = [line.replace(",", " ").split() for line in text.splitlines() if line.strip()]
    if not rows:
        raise PygmatchError(f"{path}: empty homography file (expected 3 lines of 3 numbers)")
    lengths = [len(row) for row in rows]
    if lengths != [3, 3, 3]:
        got = f"{len(rows)}x{lengths[0]}" if len(set(lengths)) == 1 else f"ragged lines of {', '.join(map(str, lengths))} numbers"
        raise PygmatchError(f"{path}: not a homography (expected 3 lines of 3 numbers, got {got})")
    try:
        values = np.array([[float(v) for v in row] for row in rows], np.float64)
    except ValueError:
        raise PygmatchError(f"{path}: not a homography (expected 3 lines of 3 numbers)") from None
    if not np.all(np.isfinite(values)):
        raise PygmatchError(f"{path}: homography has non-finite values")
    s = np.linalg.svd(values, compute_uv=False)
    if s[0] == 0 or s[-1] <= 1e-12 * s[0]:
        raise PygmatchError(f"{path}: homography is singular (determinant {np.linalg.det(values):.3g})")
    return values / values[2, 2] if abs(values[2, 2]) > 1e-12 * s[0] else values


def scale_homography(H: np.ndarray, S0: np.ndarray, S1: np.ndarray) -> np.ndarray:
    """The homography between rescaled images: ``S1 · H · S0⁻¹`` (normalised to ``H[2, 2] = 1``)."""
    Hs = S1 @ H @ np.linalg.inv(S0)
    return Hs / Hs[2, 2] if abs(Hs[2, 2]) > 1e-12 else Hs


@dataclass
class SequencePair:
    """The pair (1, ``index``) of a sequence; ``problem`` says why it cannot be evaluated."""

    sequence: str
    kind: str
    index: int
    image0: Path
    image1: Path
    H_0to1: np.ndarray | None  # at the files' resolution
    problem: str | None = None

    @property
    def name(self) -> str:
        return f"{self.sequence}_1-{self.index}"


def _layout_files(folder: Path) -> dict[str, tuple[dict[int, list[str]], dict[int, str]]]:
    """Per layout with at least one file here: ({index: image names}, {index: H name})."""
    try:
        with os.scandir(folder) as it:
            names = sorted(e.name for e in it if e.is_file())
    except OSError as e:
        raise PygmatchError(f"{folder}: cannot list this folder ({e.strerror or e})") from None
    found = {}
    for layout, (image_re, h_re, _, _) in LAYOUTS.items():
        images, hs = {}, {}
        for name in names:
            if m := image_re.match(name):
                images.setdefault(int(m.group(1)), []).append(name)
            elif m := h_re.match(name):
                hs[int(m.group(1))] = name
        if images or hs:
            found[layout] = (images, hs)
    return found


def read_sequence(folder: str | os.PathLike, name: str | None = None) -> tuple[list[SequencePair], list[str]]:
    """The pairs (1, N) of one sequence folder and the problems that gave it no pair at all.

    A folder mixing both layouts, or holding two images for one index, is an error; a missing
    image or H file, or an H file that is not a 3×3 non-singular matrix, makes that pair (or,
    for the reference image, every pair) a ``problem`` pair, counted as a failure when evaluated."""
    folder = Path(folder)
    name = name or folder.resolve().name
    found = _layout_files(folder)
    if not found:
        raise PygmatchError(f"{folder}: not a sequence (no 1.ppm … + H_1_2 … (HPatches) or img1.ppm … + H1to2p … (Oxford))")
    if len(found) > 1:
        examples = [f"{min([f for fs in imgs.values() for f in fs] + list(hs.values()))} ({layout})" for layout, (imgs, hs) in found.items()]
        raise PygmatchError(f"{folder}: mixed layouts in one folder: {' and '.join(examples)}; keep one layout per sequence")
    layout, (images, hs) = next(iter(found.items()))
    _, _, image_fmt, h_fmt = LAYOUTS[layout]
    for index, files in images.items():
        if len(files) > 1:
            raise PygmatchError(f"{folder}: {len(files)} files for image {index} ({', '.join(files)}); keep one")
    exts = [files[0].rsplit(".", 1)[1] for files in images.values()]
    ext = max(set(exts), key=exts.count) if exts else "ppm"

    def image_path(index: int) -> Path:
        return folder / (images[index][0] if index in images else image_fmt.format(index, ext))

    others = sorted((set(images) | set(hs)) - {1})
    if not others:
        return [], [f"{folder}: only {image_path(1).name}, no other image or H file: no pair"]
    kind = sequence_kind(name)
    ref_problem = None if 1 in images else f"{image_path(1)}: no such image (the reference of every pair of {name})"
    pairs = []
    for index in others:
        problem, H = ref_problem, None
        if problem is None and index not in images:
            problem = f"{image_path(index)}: no such image"
        if problem is None and index not in hs:
            problem = f"{folder / h_fmt.format(index)}: no such homography file"
        if problem is None:
            try:
                H = read_homography(folder / hs[index])
            except PygmatchError as e:
                problem = str(e)
        pairs.append(SequencePair(name, kind, index, image_path(1), image_path(index), H, problem))
    return pairs, []


def _is_sequence(folder: Path) -> bool:
    """A sequence folder holds a homography file or a reference image 1: other numbered images
    alone (a COCO folder's ``000000005802.jpg``) are not a sequence."""
    return any(hs or 1 in images for images, hs in _layout_files(folder).values())


def holds_images(folder: Path) -> bool:
    """Whether ``folder`` holds image files directly (for a hint in an error; never raises)."""
    try:
        return bool(list_images(folder))
    except (PygmatchError, OSError):
        return False


def find_sequences(data: str | os.PathLike) -> list[Path]:
    """``data`` itself when it holds a sequence's files, else its sub-folders that do (sorted)."""
    data = Path(data)
    if not data.exists():
        raise PygmatchError(f"{data}: no such folder")
    if not data.is_dir():
        raise PygmatchError(f"{data}: not a folder (expected a folder of sequences, or one sequence)")
    if _is_sequence(data):
        return [data]
    try:
        with os.scandir(data) as it:
            subs = sorted(Path(e.path) for e in it if e.is_dir() and not e.name.startswith("."))
    except OSError as e:
        raise PygmatchError(f"{data}: cannot list this folder ({e.strerror or e})") from None
    sequences = [s for s in subs if _is_sequence(s)]
    if not sequences:
        plain = " (a folder of plain images: evaluate it with eval.coco)" if holds_images(data) else ""
        raise PygmatchError(
            f"{data}: no sequences: expected sub-folders (or this folder) holding 1.ppm … 6.ppm + H_1_2 … H_1_6 "
            f"(HPatches) or img1.ppm … img6.ppm + H1to2p … H1to6p (Oxford){plain}")
    return sequences


@dataclass
class SequencePairs:
    """Every pair (1, N) of the sequences under a folder, read lazily by ``load_pair`` (what
    ``pygmatch.evaluation.evaluate`` calls). Images of a pair may differ in size."""

    pairs: list[SequencePair]
    max_side: int | None = DEFAULT_MAX_SIDE
    skipped: list[str] = field(default_factory=list)  # sequences without any pair, with why
    _cache: dict = field(default_factory=dict, repr=False)

    def __len__(self) -> int:
        return len(self.pairs)

    @property
    def names(self) -> list[str]:
        return [p.name for p in self.pairs]

    @property
    def sequences(self) -> list[str]:
        return list(dict.fromkeys(p.sequence for p in self.pairs))

    def _image(self, path: Path) -> tuple[np.ndarray, np.ndarray]:
        # least recently used of 2: the reference of the current sequence stays while its pairs run
        if path in self._cache:
            self._cache[path] = self._cache.pop(path)
            return self._cache[path]
        try:
            image = downscale(read_gray(path, None), self.max_side)
        except (CorruptImage, PygmatchError) as e:
            raise BadPair(str(e)) from None
        if len(self._cache) >= 2:
            self._cache.pop(next(iter(self._cache)))
        self._cache[path] = image
        return image

    def load_pair(self, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(image0, image1, H_0to1)`` of pair ``k``, downscaled; ``BadPair`` if it cannot be read."""
        p = self.pairs[k]
        if p.problem is not None:
            raise BadPair(p.problem)
        im0, S0 = self._image(p.image0)
        im1, S1 = self._image(p.image1)
        return im0, im1, scale_homography(p.H_0to1, S0, S1)


def load_sequences(data: str | os.PathLike, max_side: int | None = DEFAULT_MAX_SIDE, max_sequences: int | None = None) -> SequencePairs:
    """The pairs of every sequence under ``data`` (or of ``data`` itself, if it is one sequence).

    Nothing is decoded here: a missing or unreadable image surfaces when its pair is loaded."""
    if max_side is not None and max_side < 0:
        raise PygmatchError(f"max side must be >= 0, got {max_side}")
    pairs, skipped = [], []
    for folder in find_sequences(data)[:max_sequences]:
        p, s = read_sequence(folder)
        pairs += p
        skipped += s
    if not pairs:
        raise PygmatchError(f"{data}: no pair in any sequence ({'; '.join(skipped)})")
    return SequencePairs(pairs, max_side or None, skipped)


__all__ = ["EMBEDDED_SEQUENCES", "DEFAULT_MAX_SIDE", "BadPair", "SequencePair", "SequencePairs",
           "find_sequences", "load_sequences", "read_homography", "read_sequence", "scale_homography", "sequence_kind"]
