"""The store of a collection's features and matches, in hloc's layout so that hloc and COLMAP
tools read it: ``features.h5`` (one group per image name: ``keypoints`` (N, 2) in the original
pixels, ``descriptors`` (D, N), ``scores`` (N,), ``image_size`` (w, h)) and ``matches.h5`` (one
group per pair ``name0/name1``: ``matches0`` (N0,) the index in image 1 of each keypoint of image
0 or -1, ``matching_scores0`` (N0,)). pygmatch adds what it needs to match and refine again
without recomputing: per image ``xy``, ``scale``, ``ori`` (the keypoints in the extraction
pixels), per pair ``matches`` (K, 2) and ``points1`` (K, 2), image 1's refined positions. With
view synthesis (``views="auto"``) an image's keypoints are its plain ones (the first ``plain``
rows) then those of its simulated views, with ``view`` (rows after ``plain``: the view of each; ``Store.features_of`` reads both parts back),
``view_tilt``, ``view_angle`` (V,) and ``view_affine`` (V, 2, 3): matches index the whole set.

Resumable, and never damaged by a kill: new results go to small files under ``parts/``, each
written under a temporary name and renamed when complete (a rename is atomic), so a killed run
leaves only complete parts and a temporary file that the next run deletes. ``consolidate`` merges
the parts into ``features.h5`` / ``matches.h5`` the same way: a copy with the parts added, renamed
over the old file, then the parts deleted (a part whose keys are already in the file adds nothing).
``store.json`` records the configuration (pipeline, extraction, weights) the store was made with;
another configuration is refused unless ``overwrite``; ``overwrite`` always empties the store.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import uuid
from pathlib import Path

import numpy as np

from ..data.features import Keypoints
from ..data.images import points_to_original
from ..data.views import View, ViewKeypoints
from ..errors import PygmatchError
from ..files import make_folder

FORMAT = "pygmatch collection store 1"
FEATURES, MATCHES, CONFIG, PARTS = "features.h5", "matches.h5", "store.json", "parts"


def h5py_module():
    try:
        import h5py  # noqa: PLC0415
    except ImportError:
        raise PygmatchError('matching a collection needs h5py: pip install h5py (or pip install -e ".[sfm]")') from None
    return h5py


def pair_key(name0: str, name1: str) -> str:
    """hloc's ``names_to_pair``: the group of a pair in ``matches.h5``."""
    return f"{name0.replace('/', '-')}/{name1.replace('/', '-')}"


def pipeline_config(pipeline) -> dict:
    """What makes a store's contents: the pipeline's stages and options (its repr without the
    thread count) and a digest of its learned weights."""
    import torch  # noqa: PLC0415

    digest = hashlib.sha256()
    for stage in (pipeline.matcher, pipeline.refiner):
        modules = [stage] if isinstance(stage, torch.nn.Module) else [v for v in vars(stage).values() if isinstance(v, torch.nn.Module)] \
            if stage is not None else []
        for module in modules:
            for name, tensor in sorted(module.state_dict().items()):
                digest.update(name.encode())
                digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    # Stores written before the extractor had a selection hold the strongest keypoints: the same
    # configuration, so the strongest is left out of the record and they stay valid.
    text = repr(pipeline).replace(", selection='strongest')", ")")
    return {"format": FORMAT, "pipeline": text[: text.rfind(", threads=")] + ")", "weights_sha256": digest.hexdigest()}


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _leaves(f) -> list[str]:
    """The keys of the groups of an h5 file that hold datasets (an image, or a pair ``a/b``)."""
    h5py = h5py_module()
    keys = []

    def visit(name, obj):
        if isinstance(obj, h5py.Group) and any(isinstance(v, h5py.Dataset) for v in obj.values()):
            keys.append(name)
    f.visititems(visit)
    return keys


class Store:
    """A store folder (the module's docstring). ``config``: what the results depend on
    (``pipeline_config``); a store made with another one is refused unless ``overwrite``."""

    def __init__(self, folder, config: dict, overwrite: bool = False):
        self.h5py = h5py_module()
        self.folder = make_folder(folder)
        self.config = config
        config_file = self.folder / CONFIG
        files = [self.folder / FEATURES, self.folder / MATCHES, self.folder / PARTS]
        if config_file.exists():
            try:
                stored = json.loads(config_file.read_text())
            except (OSError, ValueError):
                stored = None
            if stored != config and not overwrite:
                raise PygmatchError(f"{self.folder}: holds features and matches made with another configuration ({config_file}); "
                                    f"choose another folder, or pass --overwrite to discard them")
        elif any(p.exists() for p in files) and not overwrite:
            raise PygmatchError(f"{self.folder}: holds {FEATURES} / {MATCHES} without {CONFIG} (not made by pygmatch); "
                                f"choose another folder, or pass --overwrite to replace them")
        if overwrite or not config_file.exists() or stored != config:
            for p in files:
                shutil.rmtree(p) if p.is_dir() else p.unlink(missing_ok=True)
            self._atomic(config_file, lambda tmp: tmp.write_text(json.dumps(config, indent=2) + "\n"))
        make_folder(self.folder / PARTS)
        for stale in [*self.folder.glob(".tmp-*"), *(self.folder / PARTS).glob(".tmp-*")]:  # a write a kill interrupted
            stale.unlink(missing_ok=True)
        self._index = {FEATURES: {}, MATCHES: {}}  # key -> file holding it
        for kind in (FEATURES, MATCHES):
            for path in [self.folder / kind, *self._parts(kind)]:
                if path.exists():
                    for key in self._keys(path):
                        self._index[kind].setdefault(key, path)

    # -- files
    def _parts(self, kind: str) -> list[Path]:
        return sorted((self.folder / PARTS).glob(f"{Path(kind).stem}-*.h5"))

    def _keys(self, path: Path) -> list[str]:
        try:
            with self.h5py.File(path, "r") as f:
                return _leaves(f)
        except OSError as e:
            raise PygmatchError(f"{path}: not a readable HDF5 file ({e}); remove it, or pass --overwrite to start the store again") from None

    def _atomic(self, path: Path, write) -> Path:
        """``write(tmp)`` into a temporary file beside ``path``, synced, then renamed to ``path``.
        A full disk or an unwritable folder is one line; nothing half-written stays behind."""
        tmp = path.with_name(f".tmp-{uuid.uuid4().hex}-{path.name}")
        try:
            write(tmp)
            _fsync(tmp)
            os.replace(tmp, path)
        except OSError as e:
            tmp.unlink(missing_ok=True)
            raise PygmatchError(f"{path}: could not write ({e.strerror or e}); what was stored before is kept, "
                                f"the same command continues from it") from None
        return path

    def _write_part(self, kind: str, groups: dict[str, dict[str, np.ndarray]]) -> None:
        def write(tmp):
            with self.h5py.File(tmp, "w") as f:
                for key, datasets in groups.items():
                    g = f.require_group(key)
                    for name, value in datasets.items():
                        g.create_dataset(name, data=value)
        path = self._atomic(self.folder / PARTS / f"{Path(kind).stem}-{uuid.uuid4().hex}.h5", write)
        for key in groups:
            self._index[kind].setdefault(key, path)

    def consolidate(self) -> None:
        """Merge the parts into ``features.h5`` and ``matches.h5`` (the module's docstring)."""
        for kind in (FEATURES, MATCHES):
            parts = self._parts(kind)
            if not parts:
                continue
            main = self.folder / kind

            def merge(tmp):
                if main.exists():
                    shutil.copyfile(main, tmp)
                with self.h5py.File(tmp, "a") as out:
                    for part in parts:
                        with self.h5py.File(part, "r") as f:
                            for key in _leaves(f):
                                if key not in out:
                                    f.copy(f[key], out.require_group(str(Path(key).parent)) if "/" in key else out, name=Path(key).name)
            self._atomic(main, merge)
            for part in parts:
                part.unlink()
            self._index[kind] = {key: main for key in self._index[kind]}

    # -- features
    def has_features(self, name: str) -> bool:
        return name in self._index[FEATURES]

    def add_features(self, features: dict) -> None:
        """Store ``{name: pygmatch.pipeline.Features}`` as one part."""
        groups = {}
        for name, f in features.items():
            kp, views = f.keypoints, {}
            if f.synthetic is not None:
                kp = Keypoints.concatenate([kp, f.synthetic.keypoints])
                views = {"plain": np.int64(len(f.keypoints)), "view": f.synthetic.view, "view_affine": f.synthetic.affine,
                         "view_tilt": np.array([v.tilt for v in f.synthetic.views]),
                         "view_angle": np.array([v.angle for v in f.synthetic.views])}
            groups[name] = {"keypoints": f.to_original(kp.xy).astype(np.float32), "descriptors": np.ascontiguousarray(kp.descriptors.T),
                            "scores": kp.score, "image_size": np.array(f.original_size, np.int64),
                            "xy": kp.xy, "scale": kp.scale, "ori": kp.ori, "S": np.asarray(f.S, np.float64), **views}
        self._write_part(FEATURES, groups)

    def features_of(self, name: str) -> tuple[Keypoints, ViewKeypoints | None]:
        """An image's keypoints as extracted (extraction pixels, with descriptors) and those of its
        simulated views (``Features.synthetic``; None without view synthesis), in one read."""
        with self.h5py.File(self._index[FEATURES][name], "r") as f:
            g = f[name]
            kp = Keypoints(g["xy"][()], g["scale"][()], g["ori"][()], g["scores"][()], np.ascontiguousarray(g["descriptors"][()].T))
            if "plain" not in g:
                return kp, None
            plain = int(g["plain"][()])
            views = [View(float(t), float(a)) for t, a in zip(g["view_tilt"][()], g["view_angle"][()])]
            return kp.subset(np.arange(plain)), ViewKeypoints(kp.subset(np.arange(plain, len(kp))), g["view"][()], g["view_affine"][()], views)

    def keypoints(self, name: str) -> Keypoints:
        """An image's keypoints as extracted; not those of its simulated views (``features_of``)."""
        return self.features_of(name)[0]

    def original_keypoints(self, name: str) -> np.ndarray:
        """(N, 2) float64: an image's keypoints in its original pixels, as ``Features.xy`` gives them."""
        with self.h5py.File(self._index[FEATURES][name], "r") as f:
            xy, S = f[name]["xy"][()], f[name]["S"][()]
        return np.asarray(xy, np.float64) if np.array_equal(S, np.eye(3)) else points_to_original(xy, S)

    # -- matches
    def stored_pair(self, name0: str, name1: str) -> tuple[str, str] | None:
        """The pair as stored: ``(name0, name1)``, its reverse, or None when not matched yet."""
        if pair_key(name0, name1) in self._index[MATCHES]:
            return name0, name1
        if pair_key(name1, name0) in self._index[MATCHES]:
            return name1, name0
        return None

    def add_matches(self, results: list[tuple[str, str, np.ndarray, np.ndarray, np.ndarray, int]]) -> None:
        """Store ``(name0, name1, matches (K, 2), scores (K,), points1 (K, 2), keypoints of image 0)`` per pair as one part."""
        groups = {}
        for name0, name1, matches, scores, points1, n0 in results:
            matches = np.asarray(matches, np.int64).reshape(-1, 2)
            matches0, scores0 = np.full(n0, -1, np.int32), np.zeros(n0, np.float32)
            matches0[matches[:, 0]], scores0[matches[:, 0]] = matches[:, 1], scores
            groups[pair_key(name0, name1)] = {"matches0": matches0, "matching_scores0": scores0, "matches": matches,
                                              "points1": np.asarray(points1, np.float64).reshape(-1, 2)}
        self._write_part(MATCHES, groups)

    def matches(self, name0: str, name1: str) -> tuple[np.ndarray, np.ndarray]:
        """``(matches (K, 2), points1 (K, 2))`` of a pair as stored (``stored_pair``'s order)."""
        key = pair_key(name0, name1)
        with self.h5py.File(self._index[MATCHES][key], "r") as f:
            return f[key]["matches"][()], f[key]["points1"][()]

    def contents(self) -> dict:
        """Every dataset of the store, ``{kind: {key: {name: array}}}``, parts included (to compare stores)."""
        out = {}
        for kind, index in self._index.items():
            out[kind] = {}
            for key, path in index.items():
                with self.h5py.File(path, "r") as f:
                    out[kind][key] = {name: d[()] for name, d in f[key].items()}
        return out


def same_contents(a: dict, b: dict) -> bool:
    """Whether two ``Store.contents()`` hold the same keys and datasets, value for value."""
    return a.keys() == b.keys() and all(a[k].keys() == b[k].keys() for k in a) and all(
        a[k][key].keys() == b[k][key].keys() and all(np.array_equal(a[k][key][n], b[k][key][n]) for n in a[k][key])
        for k in a for key in a[k])
