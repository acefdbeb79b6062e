"""The feature bank: homography pairs with their keypoints extracted once, stored for many epochs.

SIFT on a 640×480 image costs ~100 ms, more than a training step of the shipped model, so a
training that extracts on the fly spends half the CPU on it. A bank pays that once.

On-disk format (``BANK/``; version 1)::

    bank.json            {"format": "pygmatch-bank", "version": 1, "features", "max_keypoints",
                          "size": [w, h], "sources": [folders], "seed", "difficulties",
                          "shard_pairs", "photometric": {...}}
    shard-00000/         one finished shard (written as shard-00000.tmp/, then renamed)
      H.npy              (P, 3, 3) float64  H_0to1 of each pair (image-0 pixels -> image-1 pixels)
      difficulty.npy     (P,) float32
      image.npy          (P,) int64   index of the source image in the sorted list of all sources
      offsets0.npy       (P + 1,) int64   pair p's image-0 keypoints are rows offsets0[p]:offsets0[p+1]
      xy0.npy            (N0, 2) float32  pixel coordinates
      scale0.npy, ori0.npy, score0.npy   (N0,) float32  diameter px, radians, detector response
      desc0.npy          (N0, B) uint8  raw descriptors (SIFT: 128 values; ORB: 32 packed bytes)
      offsets1.npy ... desc1.npy        the same for image 1
      view0.npy, view1.npy  (N0,) / (N1,) int16, a bank built with ``views``: each image's keypoints
                         are its own, then those of its simulated views that the rounds of
                         ``Pipeline(views="auto")`` can pick (``synthesised_keypoints``); the view
                         of each keypoint, an index into ``FULL_SET_VIEWS`` (0: the image itself)
      meta.json          {"pairs": P, "skipped": [unreadable images passed over]}

Every array is a plain ``.npy`` opened with ``mmap_mode="r"``: a bank far larger than memory is
read pair by pair. Pair ``p`` belongs to shard ``p // shard_pairs`` and depends only on
(seed, p), so a build can be interrupted, resumed and extended (``--pairs`` raised) without
changing or corrupting what is there: unfinished ``.tmp`` shards are discarded and redone.

A bank knows when it is damaged: opening one with a shard missing before the last one, or a shard
missing one of its files, is a one-line error, and ``build_bank`` (``python -m train.bank`` with the
same settings) checks every existing shard and rebuilds the missing or damaged ones, each exactly
as it was. A build is refused before any work when its estimated size exceeds the free disk space.
"""
from __future__ import annotations

import json
import multiprocessing as mp
import os
import pickle
import signal
import shutil
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from ..errors import PygmatchError
from ..files import make_folder, writable_folder
from .features import (BENCHMARK_CONTRAST_THRESHOLD, FEATURES, RAW_DESCRIPTOR_BYTES, SYNTHESIS_MAX_KEYPOINTS, Keypoints,
                       check_contrast_threshold, detect, finish)
from .images import CorruptImage, list_images, none_readable, read_gray
from .pairs import make_pair, pair_rng
from .photometric import Photometric
from .views import FULL_SET_VIEWS, SYNTHESIS_ROUNDS, ViewKeypoints, synthesised_keypoints, view_map

FORMAT, VERSION = "pygmatch-bank", 1
SIDE_ARRAYS = ("xy", "scale", "ori", "score", "desc")


@dataclass(frozen=True)
class BankConfig:
    """What a bank was (or is to be) built with; every shard of a bank shares it."""

    sources: tuple[str, ...]
    features: str = "sift"
    max_keypoints: int = 1024
    size: tuple[int, int] = (640, 480)
    seed: int = 0
    difficulties: tuple[float, ...] = (1.0, 2.0)
    shard_pairs: int = 100
    views: bool = False  # also the keypoints of simulated views (SIFT only)
    contrast_threshold: float = BENCHMARK_CONTRAST_THRESHOLD  # SIFT's; a bank.json without it was built at this one

    def to_json(self) -> dict:
        return {"format": FORMAT, "version": VERSION, "sources": list(self.sources), "features": self.features,
                "max_keypoints": self.max_keypoints, "size": list(self.size), "seed": self.seed,
                "difficulties": list(self.difficulties), "shard_pairs": self.shard_pairs, "views": self.views,
                "contrast_threshold": self.contrast_threshold,
                "photometric": asdict(Photometric())}

    @property
    def side_arrays(self) -> tuple[str, ...]:
        return SIDE_ARRAYS + (("view",) if self.views else ())

    @property
    def arrays(self) -> tuple[str, ...]:
        return ("H", "difficulty", "image") + tuple(f"{k}{s}" for s in (0, 1) for k in ("offsets",) + self.side_arrays)

    @property
    def shard_files(self) -> tuple[str, ...]:
        return tuple(f"{a}.npy" for a in self.arrays) + ("meta.json",)

    @property
    def keypoints_per_image(self) -> int:
        """The most keypoints one image can hold: its own, and with ``views`` those of each round."""
        return self.max_keypoints + (len(SYNTHESIS_ROUNDS) * SYNTHESIS_MAX_KEYPOINTS if self.views else 0)

    @classmethod
    def from_json(cls, d: dict, path: Path) -> "BankConfig":
        if not isinstance(d, dict) or d.get("format") != FORMAT:
            raise PygmatchError(f"{path}: not a pygmatch feature bank (no '\"format\": \"{FORMAT}\"')")
        if d.get("version") != VERSION:
            raise PygmatchError(f"{path}: bank format version {d.get('version')!r}; this pygmatch reads version {VERSION}")
        try:
            cfg = cls(tuple(d["sources"]), d["features"], int(d["max_keypoints"]), tuple(int(v) for v in d["size"]),
                      int(d["seed"]), tuple(float(v) for v in d["difficulties"]), int(d["shard_pairs"]), bool(d.get("views", False)),
                      check_contrast_threshold(d.get("contrast_threshold", BENCHMARK_CONTRAST_THRESHOLD)))
        except PygmatchError as e:
            raise PygmatchError(f"{path}: {e}") from None
        except (KeyError, TypeError, ValueError) as e:
            raise PygmatchError(f"{path}: incomplete bank description ({type(e).__name__}: {e})") from None
        if cfg.features not in FEATURES:
            raise PygmatchError(f"{path}: unknown features {cfg.features!r}")
        if cfg.views and cfg.features != "sift":
            raise PygmatchError(f"{path}: views are simulated for sift keypoints, not {cfg.features}")
        return cfg


def _shard_name(index: int) -> str:
    return f"shard-{index:05d}"


def _difficulty(cfg: BankConfig, pair: int) -> float:
    return cfg.difficulties[pair % len(cfg.difficulties)]


def _build_shard(job) -> tuple[int, int, list[str]]:
    """Generate and write one shard; runs in a worker process."""
    import cv2  # noqa: PLC0415

    cv2.setNumThreads(1)  # one process per core: OpenCV's own threads would only fight
    root, cfg, index, files = job
    first = index * cfg.shard_pairs
    order = np.random.default_rng(cfg.seed).permutation(len(files))  # images interleave across sources
    per_side = {s: {k: [] for k in cfg.side_arrays} for s in (0, 1)}
    counts = {0: [0], 1: [0]}
    Hs, difficulties, images, skipped = [], [], [], []
    for pair in range(first, first + cfg.shard_pairs):
        for attempt in range(len(files)):
            k = int(order[(pair + attempt) % len(files)])
            try:
                image = read_gray(files[k], cfg.size)
                break
            except CorruptImage as e:
                skipped.append(str(e))
        else:
            raise PygmatchError(f"none of the {len(files)} source images could be read")
        difficulty = _difficulty(cfg, pair)
        im0, im1, H = make_pair(image, pair_rng(cfg.seed, pair), difficulty, Photometric())
        for side, im in ((0, im0), (1, im1)):
            kp = detect(im, cfg.features, cfg.max_keypoints, cfg.contrast_threshold)
            values = [kp.xy, kp.scale, kp.ori, kp.score, kp.descriptors]
            if cfg.views:  # the views' keypoints after the image's own; FULL_SET_VIEWS' view 0 is the image
                synthetic = synthesised_keypoints(im, kp, cfg.max_keypoints, raw=True)
                kp = Keypoints.concatenate([kp, synthetic.keypoints])
                values = [kp.xy, kp.scale, kp.ori, kp.score, kp.descriptors,
                          np.concatenate([np.zeros(len(values[0]), np.int16), (synthetic.view + 1).astype(np.int16)])]
            for key, value in zip(cfg.side_arrays, values):
                per_side[side][key].append(value)
            counts[side].append(counts[side][-1] + len(kp))
        Hs.append(H)
        difficulties.append(difficulty)
        images.append(k)
    tmp = Path(root) / (_shard_name(index) + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    np.save(tmp / "H.npy", np.asarray(Hs, np.float64))
    np.save(tmp / "difficulty.npy", np.asarray(difficulties, np.float32))
    np.save(tmp / "image.npy", np.asarray(images, np.int64))
    for side in (0, 1):
        np.save(tmp / f"offsets{side}.npy", np.asarray(counts[side], np.int64))
        for key, parts in per_side[side].items():
            np.save(tmp / f"{key}{side}.npy", np.concatenate(parts))
    (tmp / "meta.json").write_text(json.dumps({"pairs": cfg.shard_pairs, "skipped": skipped}))
    os.replace(tmp, Path(root) / _shard_name(index))  # a shard exists whole or not at all
    return index, cfg.shard_pairs, skipped


def source_files(sources) -> list[Path]:
    """All images of the source folders, in a fixed order (folders as given, files sorted)."""
    return [f for folder in sources for f in list_images(folder)]


def shard_indices(root: Path) -> list[int]:
    """The indices of the finished shards in ``root`` (``shard-NNNNN`` folders), sorted."""
    found = []
    for p in Path(root).glob("shard-*"):
        digits = p.name[len("shard-"):]
        if p.is_dir() and digits.isdigit() and len(digits) == 5:
            found.append(int(digits))
    return sorted(found)


def shard_problem(root: Path, index: int, cfg: BankConfig) -> str | None:
    """What is wrong with finished shard ``index`` (a missing or unreadable file, arrays that do not
    fit together), or None. Reads only the arrays' headers."""
    path = Path(root) / _shard_name(index)
    missing = [n for n in cfg.shard_files if not (path / n).is_file()]
    if missing:
        return f"{missing[0]} is missing"
    arrays = {}
    for name in cfg.arrays:
        try:
            arrays[name] = np.load(path / f"{name}.npy", mmap_mode="r", allow_pickle=False)
        except (OSError, ValueError) as e:
            return f"{name}.npy is unreadable ({e})"
    try:
        meta = json.loads((path / "meta.json").read_text())
        if meta.get("pairs") != cfg.shard_pairs:
            return f"meta.json says {meta.get('pairs')!r} pairs, the bank {cfg.shard_pairs} per shard"
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, AttributeError) as e:
        return f"meta.json is unreadable ({e})"
    return _array_problem(arrays, cfg)


def _array_problem(a: dict, cfg: BankConfig) -> str | None:
    p = cfg.shard_pairs
    width = RAW_DESCRIPTOR_BYTES[cfg.features]
    if a["H"].shape != (p, 3, 3):
        return f"H.npy has shape {a['H'].shape}, expected ({p}, 3, 3)"
    for name in ("difficulty", "image"):
        if a[name].shape != (p,):
            return f"{name}.npy has shape {a[name].shape}, expected ({p},)"
    for s in (0, 1):
        off = a[f"offsets{s}"]
        n = a[f"xy{s}"].shape[0]
        if off.shape != (p + 1,) or off[-1] != n:
            return f"offsets{s}.npy does not describe xy{s}.npy's {n} rows"
        if int(np.diff(off).max(initial=0)) > cfg.keypoints_per_image:
            return f"a pair holds more than the {cfg.keypoints_per_image} keypoints per image its settings allow"
        if a[f"desc{s}"].shape != (n, width) or a[f"desc{s}"].dtype != np.uint8:
            return f"desc{s}.npy is {a[f'desc{s}'].dtype} {a[f'desc{s}'].shape}, expected uint8 ({n}, {width}) for {cfg.features}"
        for key in (k for k in cfg.side_arrays if k not in ("xy", "desc")):  # one value per keypoint
            if a[f"{key}{s}"].shape != (n,):
                return f"{key}{s}.npy has shape {a[f'{key}{s}'].shape}, expected ({n},)"
        if cfg.views and n and not 0 <= int(a[f"view{s}"].min()) <= int(a[f"view{s}"].max()) < len(FULL_SET_VIEWS):
            return f"view{s}.npy holds views outside the {len(FULL_SET_VIEWS)} simulated"
    return None


def saved_config_differs(description: Path, cfg: BankConfig) -> bool:
    try:
        return FeatureBank.read_config(description.parent) != cfg
    except PygmatchError:
        return True


def check_sources_readable(files: list[Path], cfg: BankConfig) -> None:
    """Stop in one line when no source image can be read; decodes only up to the first good one."""
    first_error = none_readable(files, cfg.size)
    if first_error is None:
        return
    raise PygmatchError(f"none of the {len(files)} source images could be read (e.g. {first_error}); nothing to build a bank from")


def pair_bytes_bound(cfg: BankConfig) -> int:
    """The most one pair can take on disk: both images' ``max_keypoints`` keypoints (xy, scale,
    orientation, score, raw descriptor) and the per-pair arrays."""
    per_keypoint = 2 * 4 + 3 * 4 + RAW_DESCRIPTOR_BYTES[cfg.features] + (2 if cfg.views else 0)
    return 2 * (cfg.keypoints_per_image * per_keypoint + 8) + 9 * 8 + 4 + 8


def _human(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB", "PB"):
        if n < 1000 or unit == "PB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} PB"


def check_disk_space(root: Path, cfg: BankConfig, new_shards: int, finished: list[int]) -> None:
    """Refuse, before any work, a build whose new shards cannot fit on the disk: the size per pair
    is measured on the bank's finished shards, or bounded from ``max_keypoints`` for a new bank."""
    if new_shards <= 0:
        return
    if finished:
        sample = [root / _shard_name(i) for i in finished[:5]]
        per_pair = sum(f.stat().st_size for s in sample for f in s.iterdir()) / (len(sample) * cfg.shard_pairs)
        how = f"{_human(per_pair)} per pair, as in its finished shards"
    else:
        per_pair = pair_bytes_bound(cfg)
        how = f"up to {_human(per_pair)} per pair with {cfg.max_keypoints} {cfg.features} keypoints per image"
    need = new_shards * cfg.shard_pairs * per_pair
    existing = next(p for p in (root, *root.parents) if p.exists())
    free = shutil.disk_usage(existing).free
    if need > free:
        raise PygmatchError(f"{root}: {new_shards * cfg.shard_pairs:,} more pairs would need about {_human(need)} ({how}), "
                            f"but only {_human(free)} is free there; lower --pairs (or --max-keypoints)")


def build_bank(root: str | os.PathLike, cfg: BankConfig, pairs: int, workers: int = 2, progress: bool = True) -> "FeatureBank":
    """Create, resume or extend the bank at ``root`` to hold at least ``pairs`` pairs (whole shards).

    An existing bank must have been built with the same ``cfg`` (features, keypoints, size, seed,
    sources, difficulties): its shards are checked and kept, missing or damaged ones are made, in
    ``workers`` processes (``bank.built_pairs``: the pairs made, ``bank.rebuilt_shards``: the
    damaged shards made again). Refused before any work: a folder that cannot be written, sources
    without a readable image, a size that exceeds the free disk space."""
    from tqdm import tqdm  # noqa: PLC0415

    root = Path(root)
    if root.exists() and not root.is_dir():
        raise PygmatchError(f"{root}: exists and is not a folder")
    if cfg.features not in FEATURES:
        raise PygmatchError(f"unknown features {cfg.features!r}; choose from {', '.join(FEATURES)}")
    for name, value in (("pairs", pairs), ("max keypoints", cfg.max_keypoints), ("workers", workers), ("shard pairs", cfg.shard_pairs)):
        if value < 1:
            raise PygmatchError(f"{name} must be >= 1, got {value}")
    if not cfg.difficulties or min(cfg.difficulties) < 0:
        raise PygmatchError(f"difficulties must be >= 0, got {cfg.difficulties}")
    if cfg.views and cfg.features != "sift":
        raise PygmatchError(f"views are simulated for sift keypoints, not {cfg.features}")
    check_contrast_threshold(cfg.contrast_threshold)
    files = source_files(cfg.sources)
    description = root / "bank.json"
    shards = shard_indices(root) if root.is_dir() else []
    if description.exists():
        saved = FeatureBank.read_config(root)
        if saved != cfg and shards:
            differ = [k for k in cfg.__dataclass_fields__ if getattr(saved, k) != getattr(cfg, k)]
            raise PygmatchError(f"{root}: this bank was built with other settings ({', '.join(f'{k} {getattr(saved, k)!r}' for k in differ)});"
                                " extend it with the same ones or choose another --out")
        # without a finished shard, bank.json is what a start that failed left: these settings replace it
    elif root.exists() and any(root.iterdir()):
        raise PygmatchError(f"{root}: folder is not empty and holds no bank.json; choose another --out")
    writable_folder(root, "--out")  # a read-only place: one line now, not a traceback at bank.json
    check_sources_readable(files, cfg)  # before bank.json: a failed start must not pin its settings
    wanted = max(-(-pairs // cfg.shard_pairs), max(shards, default=-1) + 1)  # never fewer shards than there are
    damaged = {i: why for i in shards if i < wanted and (why := shard_problem(root, i, cfg))}
    check_disk_space(root, cfg, wanted - len(shards) + len(damaged), [i for i in shards if i not in damaged])
    make_folder(root, "--out")
    for tmp in root.glob("shard-*.tmp"):  # left by an interrupted build
        shutil.rmtree(tmp, ignore_errors=True)
    for i, why in damaged.items():
        warnings.warn(f"{root / _shard_name(i)}: damaged ({why}); rebuilding it", stacklevel=2)
        shutil.rmtree(root / _shard_name(i))
    if saved_config_differs(description, cfg):
        tmp = root / "bank.json.tmp"
        tmp.write_text(json.dumps(cfg.to_json(), indent=1))
        os.replace(tmp, description)
    todo = [i for i in range(wanted) if not (root / _shard_name(i)).is_dir()]
    skipped = 0
    if todo:
        jobs = [(str(root), cfg, i, files) for i in todo]
        bar = tqdm(total=len(todo) * cfg.shard_pairs, desc=f"bank {root.name}", unit="pair", disable=not progress)
        if workers == 1:
            results = map(_build_shard, jobs)
            pool = None
        else:
            pool = mp.get_context("spawn").Pool(workers)
            results = pool.imap_unordered(_build_shard, jobs)
        try:
            for _, n, bad in results:
                skipped += len(bad)
                bar.update(n)
        finally:
            bar.close()
            if pool is not None:
                pool.terminate()
    if skipped:
        warnings.warn(f"{skipped} unreadable image(s) passed over while building {root} (listed in the shards' meta.json)", stacklevel=2)
    bank = FeatureBank(root)
    bank.built_pairs, bank.rebuilt_shards = len(todo) * cfg.shard_pairs, sorted(damaged)
    return bank


class FeatureBank:
    """A bank opened for reading: ``len(bank)`` pairs, ``bank.raw(p)`` -> (kp0, kp1, H, difficulty)
    with raw uint8 descriptors; ``bank.keypoints(p)`` finishes them (rootSIFT / ORB bits)."""

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)
        self.config = self.read_config(self.root)
        indices = shard_indices(self.root)
        if not indices:
            raise PygmatchError(f"{self.root}: the bank holds no finished shard yet")
        gaps = sorted(set(range(indices[-1] + 1)) - set(indices))
        if gaps:  # pair p must always be pair p: training on the shards before the gap would silently lose the rest
            raise PygmatchError(f"{self.root}: {_shard_name(gaps[0])} is missing ({len(gaps)} of {indices[-1] + 1} shards); "
                                f"run python -m train.bank --out {self.root} with the same settings to rebuild it")
        self.shards = [self.root / _shard_name(i) for i in indices]
        for shard in self.shards:
            missing = [n for n in self.config.shard_files if not (shard / n).is_file()]
            if missing:
                raise PygmatchError(f"{shard}: damaged shard ({missing[0]} is missing); run python -m train.bank --out {self.root} "
                                    "with the same settings to rebuild it")
        self._open = {}
        self.built_pairs, self.rebuilt_shards = 0, []  # set by build_bank
        self._files: list[Path] | None = None  # the source images, listed when first needed
        self._affine: np.ndarray | None = None  # a bank with views: each view's map from the image's pixels

    @staticmethod
    def read_config(root: Path) -> BankConfig:
        path = Path(root) / "bank.json"
        if not Path(root).is_dir():
            raise PygmatchError(f"{root}: no such bank folder")
        if not path.is_file():
            raise PygmatchError(f"{root}: not a feature bank (no bank.json); build one with python -m train.bank")
        try:
            d = json.loads(path.read_text())
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise PygmatchError(f"{path}: not valid JSON ({e})") from None
        return BankConfig.from_json(d, path)

    def __len__(self) -> int:
        return len(self.shards) * self.config.shard_pairs

    def _shard(self, index: int) -> dict:
        if index not in self._open:
            path = self.shards[index]
            arrays = {}
            for name in self.config.arrays:
                try:
                    arrays[name] = np.load(path / f"{name}.npy", mmap_mode="r", allow_pickle=False)
                except (OSError, ValueError) as e:
                    raise PygmatchError(f"{path / (name + '.npy')}: missing or unreadable ({e})") from None
            problem = _array_problem(arrays, self.config)
            if problem:
                raise PygmatchError(f"{path}: corrupt shard: {problem}")
            self._open[index] = arrays
        return self._open[index]

    def raw(self, pair: int) -> tuple[Keypoints, Keypoints, np.ndarray, float]:
        if not 0 <= pair < len(self):
            raise IndexError(pair)
        shard, local = divmod(pair, self.config.shard_pairs)
        a = self._shard(shard)
        sides = []
        for s in (0, 1):
            lo, hi = int(a[f"offsets{s}"][local]), int(a[f"offsets{s}"][local + 1])
            sides.append(Keypoints(*(np.array(a[f"{k}{s}"][lo:hi]) for k in SIDE_ARRAYS)))
        return sides[0], sides[1], np.array(a["H"][local]), float(a["difficulty"][local])

    def keypoints(self, pair: int) -> tuple[Keypoints, Keypoints, np.ndarray, float]:
        """Pair ``pair`` with unit-norm float descriptors, ready for a matcher: each image's own
        keypoints (in a bank with ``views``, without those of the simulated views)."""
        kp0, kp1, H, difficulty = self.raw(pair)
        if self.config.views:
            kp0, kp1 = (kp.subset(np.nonzero(view == 0)[0]) for kp, view in zip((kp0, kp1), self._views(pair)))
        return finish(kp0, self.config.features), finish(kp1, self.config.features), H, difficulty

    def view_keypoints(self, pair: int) -> tuple[ViewKeypoints, ViewKeypoints, np.ndarray, float]:
        """Pair ``pair`` of a bank with ``views``: each image's full set (its own keypoints, then
        those of its simulated views) with unit-norm descriptors, as ``round_sets`` takes it."""
        if not self.config.views:
            raise PygmatchError(f"{self.root}: built without views (python -m train.bank --views)")
        kp0, kp1, H, difficulty = self.raw(pair)
        if self._affine is None:
            self._affine = np.stack([view_map(self.config.size, v) for v in FULL_SET_VIEWS])
        sides = [ViewKeypoints(finish(kp, "sift"), view.astype(np.int64), self._affine, FULL_SET_VIEWS)
                 for kp, view in zip((kp0, kp1), self._views(pair))]
        return sides[0], sides[1], H, difficulty

    def _views(self, pair: int) -> list[np.ndarray]:
        shard, local = divmod(pair, self.config.shard_pairs)
        a = self._shard(shard)
        return [np.array(a[f"view{s}"][int(a[f"offsets{s}"][local]):int(a[f"offsets{s}"][local + 1])]) for s in (0, 1)]

    def images(self, pair: int) -> tuple[np.ndarray, np.ndarray]:
        """The two images of pair ``pair``, regenerated (a pair depends only on the bank's seed and
        ``pair``): for training on pixels (``train.refiner``). The bank's source folders must be
        where they were at build time (relative paths: from the current folder)."""
        if not 0 <= pair < len(self):
            raise IndexError(pair)
        if self._files is None:
            missing = [s for s in self.config.sources if not Path(s).is_dir()]
            if missing:
                raise PygmatchError(f"{self.root}: its source folder {missing[0]} is not there (relative paths are read from the "
                                    f"current folder, {Path.cwd()}); the images are needed to regenerate its pairs")
            self._files = source_files(self.config.sources)
        shard, local = divmod(pair, self.config.shard_pairs)
        k = int(self._shard(shard)["image"][local])
        if k >= len(self._files):
            raise PygmatchError(f"{self.root}: pair {pair} was made from source image {k}, but its sources now hold "
                                f"{len(self._files)} images; the folders changed since the bank was built")
        image = read_gray(self._files[k], self.config.size)
        im0, im1, _ = make_pair(image, pair_rng(self.config.seed, pair), _difficulty(self.config, pair), Photometric())
        return im0, im1

    def check_compatible(self, features: str, max_keypoints: int | None, size: tuple[int, int]) -> None:
        """Refuse, in one line, a bank that cannot serve a training with these settings (``max_keypoints``
        None: as many as the bank holds)."""
        c = self.config
        if c.features != features:
            raise PygmatchError(f"{self.root}: the bank holds {c.features} keypoints, but this training uses {features} (--features)")
        if max_keypoints is not None and c.max_keypoints < max_keypoints:
            raise PygmatchError(f"{self.root}: the bank holds at most {c.max_keypoints} keypoints per image, fewer than "
                                f"--max-keypoints {max_keypoints}; rebuild it with --max-keypoints {max_keypoints}")
        if tuple(c.size) != tuple(size):
            raise PygmatchError(f"{self.root}: the bank's images are {c.size[0]}x{c.size[1]}, this training uses {size[0]}x{size[1]} (--size)")

    def bytes_on_disk(self) -> int:
        return sum(f.stat().st_size for s in self.shards for f in s.iterdir())

    def __repr__(self) -> str:
        c = self.config
        views = " and their simulated views" if c.views else ""
        contrast = f" at contrast {c.contrast_threshold:g}" if c.features in ("sift", "asift") else ""
        return (f"FeatureBank({self.root}, {len(self)} pairs, {c.features} ≤{c.max_keypoints}{contrast}{views}, "
                f"{c.size[0]}x{c.size[1]})")



def _map_chunk(job) -> list:
    """Run ``fn(bank, pair)`` over one chunk of pairs; in a worker process (or in this one)."""
    import cv2  # noqa: PLC0415
    import torch  # noqa: PLC0415
    from threadpoolctl import threadpool_limits  # noqa: PLC0415

    root, fn, start, stop, cwd = job
    os.chdir(cwd)  # the bank's relative source folders are read from the caller's folder
    # one process per core: torch's, OpenCV's and BLAS's own threads would only fight (on a
    # 16-core machine they made 16 workers 10x slower than one each)
    torch.set_num_threads(1)
    cv2.setNumThreads(1)
    bank = FeatureBank(root)
    with threadpool_limits(limits=1):
        # pickled here, by value: a pool would send each tensor of the results as a file descriptor
        # of shared memory, and a chunk's many graphs overflow the descriptors one message can carry
        return pickle.dumps([(p, fn(bank, p)) for p in range(start, stop)])


def _ignore_interrupts() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def map_bank_pairs(root: str | os.PathLike, fn, pairs: int | None = None, workers: int = 2, desc: str = "bank pairs",
                   progress: bool = True) -> list[tuple[int, object]]:
    """``[(pair, fn(bank, pair))]`` over the bank's first ``pairs`` pairs (all by default), in pair
    order, leaving out the pairs where ``fn`` returns None. ``fn`` (a module-level function or a
    ``functools.partial`` of one: it travels to the workers) runs in ``workers`` processes, each on
    one thread."""
    from tqdm import tqdm  # noqa: PLC0415

    bank = FeatureBank(root)
    total = len(bank) if pairs is None else pairs
    if total > len(bank):
        raise PygmatchError(f"{root}: holds {len(bank)} pairs, fewer than the {total} asked for (--pairs)")
    chunk = 25
    jobs = [(str(root), fn, s, min(s + chunk, total), os.getcwd()) for s in range(0, total, chunk)]
    out = []
    bar = tqdm(total=total, desc=desc, unit="pair", disable=not progress)
    # the workers leave Ctrl-C to this process, which stops them: no traceback of theirs on the console
    pool = mp.get_context("spawn").Pool(workers, initializer=_ignore_interrupts) if workers > 1 else None
    try:
        for chunk_results in pool.imap(_map_chunk, jobs) if pool is not None else map(_map_chunk, jobs):
            done = pickle.loads(chunk_results)
            out += [(p, got) for p, got in done if got is not None]
            bar.update(len(done))
    finally:
        bar.close()
        if pool is not None:
            pool.terminate()
    return out
