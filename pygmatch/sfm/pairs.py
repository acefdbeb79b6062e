"""Which pairs of a collection to match, as lists of ``(name0, name1)`` and as hloc's pairs file
(one ``name0 name1`` line per pair): every pair (``exhaustive``), each image with the next N in
name order (``sequential``: capture order for videos and walk-throughs whose files are numbered),
each image with its N most similar by a global descriptor (``retrieval``, ``pygmatch.sfm.retrieval``),
or each image with the N images that share the most 3D points with it in an existing COLMAP model
(``covisibility``). A pair and its reverse are one pair; an image is never paired with itself."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import PygmatchError
from ..files import write_text

PAIRINGS = ("exhaustive", "sequential", "retrieval", "covisibility")
DEFAULT_TOP = 10  # pairs per image of retrieval, sequential and covisibility pairing (docs/collection.md: recall at top 5 and 10)


def exhaustive_pairs(names: list[str]) -> list[tuple[str, str]]:
    """Every pair of distinct images, each once, in name order."""
    return [(a, b) for i, a in enumerate(names) for b in names[i + 1:]]


def sequential_pairs(names: list[str], neighbours: int) -> list[tuple[str, str]]:
    """Each image with the ``neighbours`` images after it in name order (N·n − N(N+1)/2 pairs)."""
    if neighbours < 1:
        raise PygmatchError(f"sequential pairs: the number of neighbours must be >= 1, got {neighbours}")
    return [(a, names[j]) for i, a in enumerate(names) for j in range(i + 1, min(i + 1 + neighbours, len(names)))]


def top_pairs(names: list[str], similarity: np.ndarray, top: int) -> list[tuple[str, str]]:
    """Each image with its ``top`` most similar others (``similarity``: (n, n), larger is more
    similar; ties broken by name order), every pair once, as ``(earlier name, later name)`` sorted."""
    if top < 1:
        raise PygmatchError(f"the number of pairs per image must be >= 1, got {top}")
    similarity = np.array(similarity, np.float64)
    np.fill_diagonal(similarity, -np.inf)
    chosen = set()
    for i in range(len(names)):
        order = np.argsort(-similarity[i], kind="stable")[:min(top, len(names) - 1)]
        chosen.update((min(i, int(j)), max(i, int(j))) for j in order if np.isfinite(similarity[i, j]))
    return [(names[i], names[j]) for i, j in sorted(chosen)]


def covisibility_pairs(model, names: list[str], top: int) -> list[tuple[str, str]]:
    """Each image of a COLMAP model (a ``pycolmap.Reconstruction`` or its folder) with the ``top``
    images that observe the most of the same 3D points, as hloc's ``pairs_from_covisibility``;
    only images of ``names`` count (a model image not in the collection is ignored)."""
    from .colmap import pycolmap_module  # noqa: PLC0415

    pycolmap = pycolmap_module()
    if not hasattr(model, "images"):
        folder = Path(model)
        if not folder.is_dir():
            raise PygmatchError(f"{folder}: no such COLMAP model folder")
        try:
            model = pycolmap.Reconstruction(str(folder))
        except Exception as e:  # noqa: BLE001 - pycolmap raises its own types for a broken model
            raise PygmatchError(f"{folder}: not a readable COLMAP model ({str(e).splitlines()[0] if str(e) else type(e).__name__})") from None
    index = {n: k for k, n in enumerate(names)}
    counts = np.zeros((len(names), len(names)))
    for point in model.points3D.values():
        seen = {index[model.images[e.image_id].name] for e in point.track.elements if model.images[e.image_id].name in index}
        seen = sorted(seen)
        for a in seen:
            for b in seen:
                counts[a, b] += a != b
    if not counts.any():
        raise PygmatchError("covisibility pairs: the model shares no 3D point between two images of the collection")
    counts[counts == 0] = -np.inf  # never pair images that see nothing in common
    return top_pairs(names, counts, top)


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


def write_pairs(path, pairs: list[tuple[str, str]]) -> Path:
    """hloc's pairs file: one ``name0 name1`` line per pair."""
    return write_text(path, "".join(f"{a} {b}\n" for a, b in pairs))
