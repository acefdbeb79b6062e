"""A photo collection's pairs and their matches: the image names (every one readable), which pairs
to match (every pair, or a list of name pairs), and a ``Pipeline``'s keypoints and matches of them."""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm import tqdm

from ..data.images import CorruptImage, list_images, read_gray
from ..errors import PygmatchError


def list_collection(folder) -> list[str]:
    """The sorted names of the images directly inside ``folder``, each checked to be readable;
    a missing or empty folder, an unreadable image or fewer than two images is one line."""
    files = list_images(folder)
    for path in files:
        try:
            read_gray(path, None)
        except CorruptImage as e:
            raise PygmatchError(str(e)) from None
    if len(files) < 2:
        raise PygmatchError(f"{folder}: only one image ({files[0].name}); structure from motion needs at least two")
    return [p.name for p in files]


def exhaustive_pairs(names: list[str]) -> list[tuple[str, str]]:
    """Every pair of distinct images, each once, in name order."""
    return [(a, b) for i, a in enumerate(names) for b in names[i + 1:]]


def read_pairs(path, names: list[str]) -> list[tuple[str, str]]:
    """The pairs of a text file of ``name0 name1`` lines (blank lines and ``#`` comments skipped),
    each pair once in the order given (a pair and its reverse are one pair). A missing file, a line
    that is not two names, a name that is not an image in the collection or an image paired with
    itself is one line naming the file and line."""
    path = Path(path)
    if not path.is_file():
        raise PygmatchError(f"{path}: no such pairs file")
    try:
        lines = path.read_text().splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise PygmatchError(f"{path}: cannot read the pairs file ({getattr(e, 'strerror', None) or e.__class__.__name__})") from None
    known, seen, pairs = set(names), set(), []
    for number, line in enumerate(lines, 1):
        words = line.split("#", 1)[0].split()
        if not words:
            continue
        if len(words) != 2:
            raise PygmatchError(f"{path}:{number}: expected two image names, got {line.strip()!r}")
        for word in words:
            if word not in known:
                raise PygmatchError(f"{path}:{number}: {word} is not an image of the collection")
        if words[0] == words[1]:
            raise PygmatchError(f"{path}:{number}: {words[0]} is paired with itself")
        key = tuple(sorted(words))
        if key not in seen:
            seen.add(key)
            pairs.append((words[0], words[1]))
    if not pairs:
        raise PygmatchError(f"{path}: no image pairs in this file")
    return pairs


@dataclass
class PairMatches:
    """The matches of images ``i`` and ``j`` (indices into the collection's names): ``matches``
    (K, 2) keypoint indices; ``points1`` (K, 2) image j's matched positions in original pixels,
    refined when the pipeline refines (otherwise image j's keypoints)."""

    i: int
    j: int
    matches: np.ndarray
    points1: np.ndarray


@dataclass
class MatchedCollection:
    """A pipeline's keypoints (one (N, 2) array per image, original pixels, as detected) and the
    matches of every pair; ``timings``: seconds per stage; ``refined``: whether a refiner ran."""

    keypoints: list[np.ndarray]
    pairs: list[PairMatches]
    refined: bool
    timings: dict = field(default_factory=dict)


def match_collection(pipeline, folder, names: list[str], pairs: list[tuple[str, str]], progress: bool = True) -> MatchedCollection:
    """Extract every image once and match the given pairs with ``pipeline`` (a ``Pipeline``)."""
    folder = Path(folder)
    index = {n: k for k, n in enumerate(names)}
    start = time.perf_counter()
    features = [pipeline.extract(folder / n) for n in tqdm(names, desc="extracting", unit="image", disable=not progress)]
    extracted = time.perf_counter()
    matched = []
    for a, b in tqdm(pairs, desc="matching", unit="pair", disable=not progress):
        i, j = index[a], index[b]
        res = pipeline.match(features[i], features[j])
        matched.append(PairMatches(i, j, res.matches, res.points1))
    end = time.perf_counter()
    return MatchedCollection([f.xy for f in features], matched, pipeline.refiner is not None,
                             {"extract_s": extracted - start, "match_s": end - extracted})
