"""A photo collection: the image names (every one readable), a ``Pipeline``'s features of every
image (``extract_collection``) and matches of given pairs (``match_collection``), kept in a
``Store`` (work it holds is skipped) and run by an executor (in this process, or Dask's workers)."""
from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
from tqdm import tqdm

from ..data.images import CorruptImage, list_images, read_gray
from ..errors import PygmatchError
from .distributed import InProcess


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


def _extract(pipeline, name: str, path) -> tuple:
    """A task (run wherever the executor runs it): ``(name, Features)`` of one image, with the
    keypoints of its simulated views when the pipeline synthesises views (the store keeps one set
    of keypoints per image, whichever pairs need them)."""
    f = pipeline.extract(path)
    return name, pipeline.with_views(f) if pipeline.views == "auto" else f


def full_size(f) -> int:
    """The number of keypoints in an image's full set (``Features``: plain, then synthetic)."""
    return len(f.keypoints) + (0 if f.synthetic is None else len(f.synthetic))


def _match(pipeline, pairs: list[tuple[str, str]], features: dict) -> list[tuple]:
    """A task: per pair ``(name0, name1, matches, scores, points1, keypoints of image 0)``, the
    matches indexing each image's full set of keypoints."""
    out = []
    for a, b in pairs:
        res = pipeline.match(features[a], features[b])
        matches = res.matches
        if res.features0.rows is not None:  # synthesised: keypoints chosen from the full sets
            matches = np.stack([res.features0.rows[matches[:, 0]], res.features1.rows[matches[:, 1]]], 1)
        out.append((a, b, matches, res.scores, res.points1, full_size(features[a])))
    return out


WRITE_SECONDS = 10.0  # results wait at most this long (or write_every of them) before they are stored: what a kill can lose


def extract_collection(pipeline, folder, names: list[str], store, executor=None, progress: bool = True, write_every: int = 16) -> dict:
    """Features of every image of ``names`` not in ``store`` (a ``Store``) yet, added to it in
    parts of ``write_every`` images (or what ``WRITE_SECONDS`` gave); returns the ``Features``
    computed now, by name."""
    executor = executor or InProcess()
    folder = Path(folder)
    todo = [n for n in names if not store.has_features(n)]
    done, buffer = {}, {}
    if not todo:
        return done
    shared, written = executor.share(pipeline, everywhere=True), time.monotonic()
    with tqdm(total=len(names), initial=len(names) - len(todo), desc="extracting", unit="image", disable=not progress) as bar:
        for name, f in executor.map(_extract, [(shared, n, folder / n) for n in todo]):
            buffer[name] = done[name] = f
            bar.update(1)
            if len(buffer) >= write_every or time.monotonic() - written >= WRITE_SECONDS:
                store.add_features(buffer)
                buffer, written = {}, time.monotonic()
        if buffer:
            store.add_features(buffer)
    return done


def match_collection(pipeline, folder, names: list[str], pairs: list[tuple[str, str]], store, executor=None, progress: bool = True,
                     pairs_per_task: int = 4, write_every: int = 32) -> MatchedCollection:
    """Extract every image once and match the given pairs with ``pipeline`` (a ``Pipeline``),
    skipping what ``store`` (a ``Store`` made for this pipeline) holds already and adding the rest
    to it (``write_every`` pairs per part, or what ``WRITE_SECONDS`` gave), the work spread by ``executor`` (``InProcess`` by
    default, or ``DaskExecutor``) in tasks of ``pairs_per_task`` pairs. Every result is read back
    from the store, so a resumed run returns what an uninterrupted one does."""
    executor = executor or InProcess()
    folder = Path(folder)
    index = {n: k for k, n in enumerate(names)}
    start = time.perf_counter()
    features = extract_collection(pipeline, folder, names, store, executor, progress)
    extracted, images_extracted = time.perf_counter(), len(features)
    todo = [(a, b) for a, b in pairs if store.stored_pair(a, b) is None]
    if todo:
        needed = sorted({n for pair in todo for n in pair})
        for n in needed:
            if n not in features:  # stored by an earlier run: its keypoints as they were, the image read again
                keypoints, synthetic = store.features_of(n)
                features[n] = replace(pipeline.extractor.with_keypoints(folder / n, keypoints), synthetic=synthetic)
        shared, handles = executor.share(pipeline, everywhere=True), {n: executor.share(features[n]) for n in needed}
        tasks = [(shared, chunk, {n: handles[n] for pair in chunk for n in pair}) for chunk in batches(todo, pairs_per_task)]
        buffer, written = [], time.monotonic()
        with tqdm(total=len(pairs), initial=len(pairs) - len(todo), desc="matching", unit="pair", disable=not progress) as bar:
            for results in executor.map(_match, tasks):
                buffer += results
                bar.update(len(results))
                if len(buffer) >= write_every or time.monotonic() - written >= WRITE_SECONDS:
                    store.add_matches(buffer)
                    buffer, written = [], time.monotonic()
            if buffer:
                store.add_matches(buffer)
    store.consolidate()
    matched = []
    for a, b in pairs:
        a, b = store.stored_pair(a, b)
        m, points1 = store.matches(a, b)
        matched.append(PairMatches(index[a], index[b], m, points1))
    end = time.perf_counter()
    return MatchedCollection([store.original_keypoints(n) for n in names], matched, pipeline.refiner is not None,
                             {"extract_s": extracted - start, "match_s": end - extracted, "pairs_matched": len(todo),
                              "images_extracted": images_extracted})


def batches(items: list, size: int) -> list[list]:
    """``items`` in consecutive lists of ``size`` (the last shorter)."""
    return [items[k:k + size] for k in range(0, len(items), size)]
