"""What ``train.refiner`` computes per bank pair (the candidates' patches), kept on disk as it is
computed (in the run folder's ``patches/``), so that a run stopped by Ctrl-C (or a crash), or
resumed, reads them instead of computing every pair again.

A cache is a folder of one ``.npz`` file per pair (written whole or not at all) and ``key.json``:
what was computed, from which bank and with which settings. A cache made with another key is
emptied first; pairs are read from it only when the key is the same.
"""
from __future__ import annotations

import functools
import json
import os
import warnings
import zipfile
from pathlib import Path

import numpy as np

from ..data.bank import FeatureBank, map_bank_pairs
from ..errors import PygmatchError

KEY_FILE = "key.json"


def _pair_file(folder: Path, pair: int) -> Path:
    return folder / f"pair-{pair:08d}.npz"


def _read(path: Path):
    """``(found, value)``: the pair's stored result (a tuple of arrays, or None); not found when
    the file is missing or damaged."""
    try:
        with np.load(path) as z:
            if "none" in z.files:
                return True, None
            return True, tuple(z[f"arr_{i}"] for i in range(len(z.files)))
    except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile):
        return False, None


def _write(path: Path, value) -> None:
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp.npz")
    if value is None:
        np.savez(tmp, none=np.array(True))
    else:
        np.savez(tmp, *value)
    os.replace(tmp, path)


def _cached_call(bank: FeatureBank, pair: int, folder: str, fn):
    """``fn(bank, pair)`` (a tuple of arrays or None), read from the cache ``folder`` when there,
    else computed and stored (in a worker process)."""
    path = _pair_file(Path(folder), pair)
    found, value = _read(path)
    if not found:
        value = fn(bank, pair)
        _write(path, value)
    return value


class PairCache:
    """The cache folder ``folder`` of results described by ``key`` (a JSON-able dict)."""

    def __init__(self, folder: str | os.PathLike, key: dict):
        self.folder = Path(folder)
        self.key = json.loads(json.dumps(key))  # as it reads back from key.json

    def open(self) -> int:
        """Create the folder, or empty it when it holds results of another key; returns how many
        pairs it already holds."""
        if self.folder.exists() and not self.folder.is_dir():
            raise PygmatchError(f"{self.folder}: is a file; the features are cached in a folder of that name (move the file)")
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            key_path = self.folder / KEY_FILE
            try:
                old = json.loads(key_path.read_text())
            except (OSError, ValueError):
                old = None
            if old != self.key:
                stale = list(self.folder.glob("pair-*.npz"))
                if stale:
                    warnings.warn(f"{self.folder}: {len(stale)} cached pairs were made from another bank or with other settings; "
                                  "computing them again", stacklevel=2)
                for f in stale:
                    f.unlink()
                key_path.write_text(json.dumps(self.key, indent=2))
        except OSError as e:
            raise PygmatchError(f"{self.folder}: cannot keep the computed features there ({e.strerror or e})") from None
        return self.pairs()

    def pairs(self) -> int:
        """How many pairs the folder holds."""
        return cached_pairs(self.folder)

    def map(self, root, fn, pairs: int | None, workers: int, desc: str, progress: bool) -> list[tuple[int, object]]:
        """``map_bank_pairs`` of ``fn`` with every pair's result read from / written to the folder."""
        return map_bank_pairs(root, functools.partial(_cached_call, folder=str(self.folder), fn=fn), pairs, workers, desc, progress)


def cached_pairs(folder: str | os.PathLike, below: int | None = None) -> int:
    """How many pairs (of the first ``below``; default all) the cache ``folder`` holds (0 when
    there is none)."""
    folder = Path(folder)
    if not folder.is_dir():
        return 0
    numbers = [int(f.stem[5:]) for f in folder.glob("pair-*.npz") if f.stem[5:].isdigit()]
    return sum(1 for n in numbers if below is None or n < below)


def cached_map(root, fn, pairs: int | None, workers: int, desc: str, progress: bool, cache: PairCache | None):
    """``map_bank_pairs`` through ``cache`` (None: nothing kept)."""
    if cache is None:
        return map_bank_pairs(root, fn, pairs, workers, desc, progress)
    cache.open()
    return cache.map(root, fn, pairs, workers, desc, progress)


__all__ = ["PairCache", "cached_map", "cached_pairs"]
