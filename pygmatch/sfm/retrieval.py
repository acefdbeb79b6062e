"""Image retrieval for choosing pairs: a VLAD global descriptor (Jégou et al. 2010, with
Arandjelović & Zisserman's intra-normalisation, 2013) over the RootSIFT descriptors pygmatch
already extracts, its visual vocabulary (k-means centres) shipped in ``pygmatch/weights/``.
It runs on a CPU, offline, and reuses the keypoints matched afterwards: nothing else is computed
per image but one (K·128,) vector.

The shipped vocabulary ``vlad_sift_64.npz`` (64 words) was made by ``train_vocabulary`` from the
128 photographs of ``../shared/data/coco/train`` (training data; never an evaluation scene) with
SIFT extraction at 1024 keypoints per image at 1024 px, OpenCV's contrast threshold (0.04): see
``docs/sfm.md``."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import PygmatchError
from ..files import write_with

VOCABULARY = Path(__file__).resolve().parents[1] / "weights" / "vlad_sift_64.npz"


def load_vocabulary(path=VOCABULARY) -> np.ndarray:
    """The (K, D) float32 word centres of a vocabulary file (``train_vocabulary``)."""
    path = Path(path)
    try:
        with np.load(path) as f:
            centres = np.asarray(f["centres"], np.float32)
    except (OSError, KeyError, ValueError) as e:
        raise PygmatchError(f"{path}: not a vocabulary file ({getattr(e, 'strerror', None) or type(e).__name__})") from None
    if centres.ndim != 2 or len(centres) < 2:
        raise PygmatchError(f"{path}: the vocabulary's centres have shape {centres.shape}, expected (K, D) with K >= 2")
    return centres


def train_vocabulary(descriptors: list[np.ndarray], words: int = 64, seed: int = 0, iterations: int = 50) -> np.ndarray:
    """K-means (k-means++ start, ``iterations`` Lloyd steps, ``seed``) of the descriptors of many
    images stacked: the (``words``, D) float32 centres."""
    from scipy.cluster.vq import kmeans2  # noqa: PLC0415

    data = np.concatenate([np.asarray(d, np.float32) for d in descriptors]).astype(np.float64)
    if len(data) < words:
        raise PygmatchError(f"a vocabulary of {words} words needs at least as many descriptors, got {len(data)}")
    centres, _ = kmeans2(data, words, iter=iterations, minit="++", seed=seed)
    return centres.astype(np.float32)


def save_vocabulary(path, centres: np.ndarray, **about) -> Path:
    """A vocabulary file: the centres and, as strings, how they were made (``about``)."""
    return write_with(path, lambda p: np.savez(p, centres=np.asarray(centres, np.float32), **{k: str(v) for k, v in about.items()}),
                      "the vocabulary")


def vlad(descriptors: np.ndarray, centres: np.ndarray) -> np.ndarray:
    """One image's VLAD vector (K·D,) float32 of unit norm: per word, the sum of the residuals of
    the descriptors nearest to it, each word's sum L2-normalised (intra-normalisation), signed
    square root, then the whole vector L2-normalised. No descriptors: the zero vector."""
    d = np.asarray(descriptors, np.float32)
    k, dim = centres.shape
    out = np.zeros((k, dim), np.float64)
    if len(d):
        if d.shape[1] != dim:
            raise PygmatchError(f"the vocabulary's words are {dim}-dimensional, these descriptors {d.shape[1]}")
        distance = (d ** 2).sum(1)[:, None] - 2 * d @ centres.T + (centres ** 2).sum(1)[None]
        word = distance.argmin(1)
        np.add.at(out, word, d - centres[word])
        out /= np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)
        out = np.sign(out) * np.sqrt(np.abs(out))
        out /= max(np.linalg.norm(out), 1e-12)
    return out.reshape(-1).astype(np.float32)


def similarity(descriptors: list[np.ndarray], centres: np.ndarray | None = None) -> np.ndarray:
    """(n, n) cosine similarity of the images' VLAD vectors (``descriptors``: one (N, D) array of
    local descriptors per image; ``centres``: the shipped vocabulary when None)."""
    centres = load_vocabulary() if centres is None else centres
    v = np.stack([vlad(d, centres) for d in descriptors])
    return v @ v.T


def make_vocabulary(folder, out, words: int = 64, max_keypoints: int = 1024, seed: int = 0, progress: bool = True) -> Path:
    """Train a vocabulary on the images of ``folder`` (SIFT as the shipped vocabulary was made:
    ``max_keypoints`` per image at 1024 px, the strongest at OpenCV's contrast threshold) and save it to ``out`` with
    how it was made."""
    from tqdm import tqdm  # noqa: PLC0415

    from ..data.images import list_images  # noqa: PLC0415
    from ..data.features import BENCHMARK_CONTRAST_THRESHOLD  # noqa: PLC0415
    from ..pipeline import Extractor  # noqa: PLC0415

    files = list_images(folder)
    extractor = Extractor("sift", max_keypoints, contrast_threshold=BENCHMARK_CONTRAST_THRESHOLD, selection="strongest")
    descriptors = [extractor(p).keypoints.descriptors for p in tqdm(files, desc="extracting", unit="image", disable=not progress)]
    centres = train_vocabulary(descriptors, words, seed)
    return save_vocabulary(out, centres, images=f"{len(files)} images of {folder}", words=words, max_keypoints=max_keypoints,
                           seed=seed, descriptors=sum(len(d) for d in descriptors), made_by="pygmatch.sfm.retrieval.make_vocabulary")
