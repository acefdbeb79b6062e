"""Structure from motion with pycolmap: a ``Pipeline``'s matches in a COLMAP database, COLMAP's
geometric verification and incremental mapping, and COLMAP's own SIFT pipeline beside it.

::

    from pygmatch import Pipeline
    from pygmatch.evaluation import sfm

    names = sfm.list_collection("photos/")                          # image names, every one readable
    pairs = sfm.exhaustive_pairs(names)                             # or sfm.read_pairs("pairs.txt", names)
    matched = sfm.match_collection(Pipeline.load("default", max_keypoints=4096, match_threshold=0.1), "photos/", names, pairs)
    keypoints = sfm.adjust_keypoints(matched.keypoints, matched.pairs).keypoints   # one position per keypoint
    sfm.write_database("out/database.db", "photos/", names, keypoints, matched.pairs)
    sfm.verify("out/database.db")                                   # two-view geometries
    rec = sfm.reconstruct("out/database.db", "photos/", "out/sparse")   # the largest pycolmap.Reconstruction
    sfm.reconstruction_metrics(rec, len(names))                     # registered, points, track length, error

``run_sfm`` does all of it for several methods (pipeline names or ``colmap``) and writes a report.

How refinement enters. COLMAP takes one position per keypoint and image, but a refiner moves a
matched keypoint once per pair: in pair (i, j) it says where keypoint a of image i lands in image j
(``d``: the refined position minus keypoint b's). ``adjust_keypoints`` turns those per-pair offsets
into one offset ``u`` per keypoint, as Pixel-Perfect SfM's keypoint adjustment does with features:
every match asks ``u_b − L·u_a = d`` (``L``: the local linear motion i → j around the match, as the
refiner used it), solved by linear least squares over all keypoints at once with a small damping
toward 0 (which fixes the free shift of a whole track: a two-view track moves each end half-way).
The solve is first reweighted (Cauchy weights) so that one wrong refined position does not pull
its whole track; matches whose equation then stays violated by more than ``max_residual`` pixels
(the refiner and the other matches of the track disagree) are dropped and the rest solved again; a
keypoint none of whose matches survive keeps its detected position. Methods without a refiner write
the detected keypoints.

Coordinates: keypoints are written in the original images' pixels, shifted by +0.5 to COLMAP's
convention (the centre of the top-left pixel is (0.5, 0.5); OpenCV's is (0, 0)).
"""
from __future__ import annotations

import json
import math
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm import tqdm

from ..data.images import CorruptImage, list_images, read_gray
from ..errors import PygmatchError
from ..files import make_folder, save_figure, writable_folder, write_text
from ..matching.refine import local_linear_maps
from ..pipeline import Pipeline

COLMAP = "colmap"  # the method name of COLMAP's own pipeline
COLMAP_MAX_IMAGE_SIZE = 1024  # COLMAP's SIFT runs on images downscaled to this longer side, as pygmatch's extraction
CAMERA_MODES = ("per-image", "single", "auto")
# Keypoints per image for SfM: at the matchers' 1024, nn-ratio registered 2 of the 10 sacre_coeur
# images (35 matches per pair; COLMAP's first pair needs 100 inliers); at 4096 every method registers all.
DEFAULT_MAX_KEYPOINTS = 4096
# Match probability threshold of the learned matchers for SfM. Their own (the verifier's 0.7) keeps
# the matches within 1 px for a homography fit; COLMAP's verification removes wrong matches itself
# and registration needs many. On the 5 embedded images at 768 px the default pipeline registered
# 2 of 5 at 0.3 and 5 of 5 at 0.1.
DEFAULT_MATCH_THRESHOLD = 0.1
MIN_MATCHES = 15  # COLMAP's minimum of verified inliers for a pair (TwoViewGeometryOptions.min_num_inliers)
SEED = 0
INSTALL = 'pip install pycolmap (or pip install -e ".[sfm]")'


def pycolmap_module():
    """The ``pycolmap`` module, or one line saying how to install it."""
    try:
        import pycolmap  # noqa: PLC0415
    except ImportError:
        raise PygmatchError(f"structure from motion needs pycolmap: {INSTALL}") from None
    try:  # COLMAP's log lines would bury the progress bars and the report
        pycolmap.logging.minloglevel = 2
    except AttributeError:
        pass
    return pycolmap


# ---------------------------------------------------------------------------- inputs


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


# ---------------------------------------------------------------------------- matching


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


# ---------------------------------------------------------------------------- refinement


@dataclass
class Adjustment:
    """``keypoints``: one (N, 2) array per image, adjusted; ``moved``: keypoints moved;
    ``median_shift``: their median shift (px); ``matches_used`` / ``matches_dropped``: matches whose
    equation was kept / dropped as inconsistent."""

    keypoints: list[np.ndarray] = field(repr=False)
    moved: int
    median_shift: float
    matches_used: int
    matches_dropped: int


def adjust_keypoints(keypoints: list[np.ndarray], pairs: list[PairMatches], max_residual: float = 1.0, damping: float = 1e-3,
                     reweightings: int = 10) -> Adjustment:
    """One offset per keypoint from the per-pair refined positions (the module's docstring):
    least squares of ``u_b − L·u_a = d`` over every match with ``damping``·|u|² toward 0, first
    ``reweightings`` times with Cauchy weights (scale ``max_residual``/2, so that one wrong refined
    position does not pull its whole track), then unweighted on the matches whose residual is at
    most ``max_residual`` px."""
    from scipy.sparse import csr_matrix, diags, identity  # noqa: PLC0415

    base = np.cumsum([0] + [len(k) for k in keypoints])
    a_list, b_list, L_list, d_list = [], [], [], []
    for p in pairs:
        if len(p.matches) == 0:
            continue
        kp0 = keypoints[p.i][p.matches[:, 0]].astype(np.float64)
        kp1 = keypoints[p.j][p.matches[:, 1]].astype(np.float64)
        a_list.append(base[p.i] + p.matches[:, 0])
        b_list.append(base[p.j] + p.matches[:, 1])
        L_list.append(local_linear_maps(kp0, kp1))  # (K, 2, 2): image i displacement -> image j displacement
        d_list.append(np.asarray(p.points1, np.float64) - kp1)
    total = int(base[-1])
    if not a_list:
        return Adjustment([k.copy() for k in keypoints], 0, 0.0, 0, 0)
    a, b = np.concatenate(a_list), np.concatenate(b_list)
    L, d = np.concatenate(L_list), np.concatenate(d_list)
    finite = np.all(np.isfinite(d), 1) & np.all(np.isfinite(L.reshape(len(L), -1)), 1)
    d, L = np.where(finite[:, None], d, 0.0), np.where(finite[:, None, None], L, 0.0)

    u = np.zeros((total, 2))

    def solve(weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        n = len(a)
        w = np.sqrt(np.repeat(weights, 2))
        # rows 2m + c (c = x, y): +1 at u_b[c], -L[c, 0] at u_a[x], -L[c, 1] at u_a[y]
        rows = np.repeat(np.arange(2 * n), 3)
        cols = np.stack([2 * b, 2 * a, 2 * a + 1, 2 * b + 1, 2 * a, 2 * a + 1], 1).reshape(-1)
        vals = (np.stack([np.ones(n), -L[:, 0, 0], -L[:, 0, 1], np.ones(n), -L[:, 1, 0], -L[:, 1, 1]], 1).reshape(-1, 3) * w[:, None]).reshape(-1)
        A = csr_matrix((vals, (rows, cols)), shape=(2 * n, 2 * total))
        normal = (A.T @ A + damping * identity(2 * total)).tocsr()
        x = conjugate_gradient(normal, A.T @ (d.reshape(-1) * w), u.reshape(-1), diags(1.0 / normal.diagonal()))
        u[:] = x.reshape(total, 2)
        return u.copy(), np.linalg.norm(u[b] - np.einsum("kij,kj->ki", L, u[a]) - d, axis=1)

    weights = finite.astype(np.float64)
    for _ in range(reweightings):
        _, residual = solve(weights)
        weights = finite / (1.0 + (residual / (0.5 * max_residual)) ** 2)
    keep = finite & (residual <= max_residual) if reweightings else finite
    u, _ = solve(keep.astype(np.float64))
    used = np.zeros(total, bool)
    used[a[keep]] = used[b[keep]] = True
    u[~used] = 0.0
    shift = np.linalg.norm(u, axis=1)
    moved = used & (shift > 0)
    adjusted = [(k.astype(np.float64) + u[base[i]:base[i + 1]]) for i, k in enumerate(keypoints)]
    return Adjustment(adjusted, int(moved.sum()), float(np.median(shift[moved])) if moved.any() else 0.0,
                      int(keep.sum()), int(len(keep) - keep.sum()))


def conjugate_gradient(matrix, rhs: np.ndarray, x0: np.ndarray, preconditioner, tolerance: float = 1e-6, iterations: int = 2000) -> np.ndarray:
    """``scipy.sparse.linalg.cg`` (its tolerance argument was renamed in SciPy 1.12). A direct
    sparse solve fills in badly once wrong matches join many tracks into one component (600 s for
    56k mutual nearest neighbours); the preconditioned iteration takes well under a second."""
    from scipy.sparse.linalg import cg  # noqa: PLC0415

    try:
        x, _ = cg(matrix, rhs, x0=x0, rtol=tolerance, atol=0.0, maxiter=iterations, M=preconditioner)
    except TypeError:
        x, _ = cg(matrix, rhs, x0=x0, tol=tolerance, atol=0.0, maxiter=iterations, M=preconditioner)
    return x


# ---------------------------------------------------------------------------- COLMAP


def _camera_mode(pycolmap, camera_mode: str):
    if camera_mode not in CAMERA_MODES:
        raise PygmatchError(f"unknown camera mode {camera_mode!r}: choose from {', '.join(CAMERA_MODES)}")
    return {"per-image": pycolmap.CameraMode.PER_IMAGE, "single": pycolmap.CameraMode.SINGLE, "auto": pycolmap.CameraMode.AUTO}[camera_mode]


def _image_ids(pycolmap, database, names: list[str]) -> list[int]:
    with pycolmap.Database.open(str(database)) as db:
        return [db.read_image_with_name(n).image_id for n in names]


def write_database(database, folder, names: list[str], keypoints: list[np.ndarray], pairs: list[PairMatches],
                   camera_mode: str = "per-image") -> Path:
    """A new COLMAP database at ``database``: the images of ``folder`` named ``names`` with
    cameras from their EXIF data (``camera_mode``: one camera per image, one for all, or COLMAP's
    guess), one keypoint array per image (original pixels, OpenCV convention) and the raw matches
    of every pair, for ``verify`` to check."""
    pycolmap = pycolmap_module()
    database = Path(database)
    if database.exists():
        raise PygmatchError(f"{database}: already exists; write the database to a new file")
    make_folder(database.parent)
    pycolmap.Database.open(str(database)).close()  # import_images wants an existing database file
    pycolmap.import_images(str(database), str(folder), _camera_mode(pycolmap, camera_mode), image_names=list(names))
    ids = _image_ids(pycolmap, database, names)
    with pycolmap.Database.open(str(database)) as db:
        for image_id, xy in zip(ids, keypoints):
            db.write_keypoints(image_id, np.ascontiguousarray(np.asarray(xy, np.float32).reshape(-1, 2) + 0.5))
        for p in pairs:
            db.write_matches(ids[p.i], ids[p.j], np.ascontiguousarray(np.asarray(p.matches, np.uint32).reshape(-1, 2)))
    return database


def verify(database, threads: int = 1) -> None:
    """COLMAP's geometric verification of every matched pair of ``database`` (two-view geometries
    with their inlier matches), on ``threads`` threads with a fixed seed."""
    pycolmap = pycolmap_module()
    options = pycolmap.TwoViewGeometryOptions()
    options.ransac.random_seed = SEED
    pycolmap.geometric_verification(str(database), pycolmap.GeometricVerifierOptions(num_threads=threads),
                                    pycolmap.ExistingMatchedPairingOptions(), options)


def colmap_features(database, folder, names: list[str], pairs: list[tuple[str, str]] | None, threads: int = 1,
                    camera_mode: str = "per-image", max_image_size: int = COLMAP_MAX_IMAGE_SIZE) -> dict:
    """COLMAP's own pipeline up to the raw matches: SIFT on the images downscaled to
    ``max_image_size`` (COLMAP's defaults otherwise: up to 8192 features, ratio 0.8, cross-check),
    then exhaustive matching (``pairs`` None) or the pairs given. Seconds per stage."""
    pycolmap = pycolmap_module()
    database = Path(database)
    if database.exists():
        raise PygmatchError(f"{database}: already exists; write the database to a new file")
    make_folder(database.parent)
    extraction = pycolmap.FeatureExtractionOptions()
    extraction.max_image_size, extraction.num_threads, extraction.use_gpu = max_image_size, threads, False
    matching = pycolmap.FeatureMatchingOptions()
    matching.num_threads, matching.use_gpu, matching.skip_geometric_verification = threads, False, True
    start = time.perf_counter()
    pycolmap.extract_features(str(database), str(folder), image_names=list(names), camera_mode=_camera_mode(pycolmap, camera_mode),
                              extraction_options=extraction, device=pycolmap.Device.cpu)
    extracted = time.perf_counter()
    if pairs is None:
        pycolmap.match_exhaustive(str(database), matching_options=matching, device=pycolmap.Device.cpu)
    else:
        pairs_file = database.with_name("pairs.txt")
        write_text(pairs_file, "".join(f"{a} {b}\n" for a, b in pairs))
        pairing = pycolmap.ImportedPairingOptions()
        pairing.match_list_path = str(pairs_file)
        pycolmap.match_image_pairs(str(database), matching_options=matching, pairing_options=pairing, device=pycolmap.Device.cpu)
    return {"extract_s": extracted - start, "match_s": time.perf_counter() - extracted}


def mapping_options(overrides: dict | None = None, threads: int = 1):
    """``pycolmap.IncrementalPipelineOptions`` with a fixed seed, ``threads`` threads and the
    ``overrides`` (``{"mapper.init_min_num_inliers": 50, "min_model_size": 3}``: dotted names of
    the options and their sub-options); an unknown name is one line."""
    pycolmap = pycolmap_module()
    options = pycolmap.IncrementalPipelineOptions()
    options.num_threads, options.random_seed = threads, SEED
    for name, value in (overrides or {}).items():
        *parents, last = name.split(".")
        target = options
        try:
            for p in parents:
                target = getattr(target, p)
            getattr(target, last)
            setattr(target, last, value)
        except (AttributeError, TypeError) as e:
            raise PygmatchError(f"mapping option {name}={value!r}: {'no such option' if isinstance(e, AttributeError) else 'wrong type'}") from None
    return options


def reconstruct(database, folder, output, threads: int = 1, progress: bool = True, options: dict | None = None):
    """``pycolmap.incremental_mapping`` of ``database`` (``mapping_options(options, threads)``);
    every model it finds is written under ``output`` (``0/``, ``1/``, ... COLMAP binary); returns
    the one with the most registered images, or None when nothing could be reconstructed."""
    pycolmap = pycolmap_module()
    options = mapping_options(options, threads)
    make_folder(output)
    with pycolmap.Database.open(str(database)) as db:
        total = db.num_images()
    bar = tqdm(total=total, desc="mapping", unit="image", disable=not progress)

    def next_image():  # called for each image registered after the first pair
        if bar.n < total:
            bar.update(1)

    pycolmap.set_random_seed(SEED)
    best = None
    try:
        models = pycolmap.incremental_mapping(str(database), str(folder), str(output), options, next_image_callback=next_image)
        best = max(models.values(), key=lambda r: (r.num_reg_images(), r.num_points3D()), default=None)
        bar.n = best.num_reg_images() if best is not None else 0  # the bar ends at the images the model holds
        bar.refresh()
    finally:
        bar.close()
    return best


def reconstruction_metrics(rec, given: int) -> dict:
    """Registered images (of ``given``), 3D points, mean track length, mean reprojection error (px)
    and mean observations per registered image of a ``pycolmap.Reconstruction`` (None: nothing)."""
    if rec is None or rec.num_reg_images() == 0:
        return {"registered": 0, "given": given, "points3D": 0, "track_length": math.nan, "reprojection_error": math.nan,
                "observations_per_image": math.nan, "registered_names": []}
    return {"registered": int(rec.num_reg_images()), "given": given, "points3D": int(rec.num_points3D()),
            "track_length": float(rec.compute_mean_track_length()), "reprojection_error": float(rec.compute_mean_reprojection_error()),
            "observations_per_image": float(rec.compute_mean_observations_per_reg_image()),
            "registered_names": sorted(rec.images[i].name for i in rec.reg_image_ids())}


def database_metrics(database) -> dict:
    """Keypoints per image, raw matches per pair and pairs with >= ``MIN_MATCHES`` verified inliers."""
    pycolmap = pycolmap_module()
    with pycolmap.Database.open(str(database)) as db:
        images = max(db.num_images(), 1)
        _, raw = db.read_num_matches()
        _, inliers = db.read_two_view_geometry_num_inliers()
        return {"keypoints_per_image": db.num_keypoints() / images, "matches_per_pair": float(np.mean(raw)) if raw else 0.0,
                "verified_pairs": int(sum(n >= MIN_MATCHES for n in inliers)), "inliers_per_verified_pair":
                float(np.mean([n for n in inliers if n >= MIN_MATCHES])) if any(n >= MIN_MATCHES for n in inliers) else 0.0}


# ---------------------------------------------------------------------------- one method, several methods


def method_folder(out, method: str) -> Path:
    """The folder of a method's database and reconstruction: its name with path separators replaced."""
    return Path(out) / "".join(c if c.isalnum() or c in "+-_.@" else "_" for c in method)


def run_method(method: str, folder, names: list[str], pairs: list[tuple[str, str]], out, exhaustive: bool, pipeline=None,
               threads: int = 1, camera_mode: str = "per-image", progress: bool = True, mapping: dict | None = None) -> dict:
    """One method end to end into ``method_folder(out, method)`` (``database.db``, ``sparse/N/``):
    ``colmap``, or a ``Pipeline`` (matches, keypoint adjustment when it refines, database).
    Returns its metrics, timings in seconds and ``ms_per_pair`` of matching."""
    folder, target = Path(folder), method_folder(out, method)
    database = target / "database.db"
    timings, extra = {}, {}
    if method == COLMAP:
        timings.update(colmap_features(database, folder, names, None if exhaustive else pairs, threads, camera_mode))
        timings["adjust_s"] = 0.0
        extra["refined"] = False
    else:
        matched = match_collection(pipeline, folder, names, pairs, progress)
        timings.update(matched.timings)
        keypoints = matched.keypoints
        start = time.perf_counter()
        if matched.refined:
            adjustment = adjust_keypoints(matched.keypoints, matched.pairs)
            keypoints = adjustment.keypoints
            extra["adjustment"] = {"moved": adjustment.moved, "median_shift_px": adjustment.median_shift,
                                   "matches_used": adjustment.matches_used, "matches_dropped": adjustment.matches_dropped}
        timings["adjust_s"] = time.perf_counter() - start
        extra["refined"] = matched.refined
        start = time.perf_counter()
        write_database(database, folder, names, keypoints, matched.pairs, camera_mode)
        timings["database_s"] = time.perf_counter() - start
    start = time.perf_counter()
    verify(database, threads)
    timings["verify_s"] = time.perf_counter() - start
    start = time.perf_counter()
    rec = reconstruct(database, folder, target / "sparse", threads, progress, mapping)
    timings["map_s"] = time.perf_counter() - start
    timings["total_s"] = sum(timings.values())
    metrics = reconstruction_metrics(rec, len(names))
    metrics.update(database_metrics(database))
    metrics.update(extra)
    metrics["ms_per_pair"] = 1000 * timings["match_s"] / max(len(pairs), 1)
    metrics["ms_per_image"] = 1000 * timings["extract_s"] / max(len(names), 1)
    metrics["timings_s"] = timings
    if rec is not None:
        models = sorted(p for p in (target / "sparse").iterdir() if p.is_dir())
        best = next((p for p in models if _same_model(p, rec)), None)
        metrics["model"] = str(best.relative_to(Path(out))) if best else None
    return metrics


def _same_model(path: Path, rec) -> bool:
    pycolmap = pycolmap_module()
    try:
        other = pycolmap.Reconstruction(str(path))
    except Exception:  # noqa: BLE001 - an unreadable model is simply not this one
        return False
    return other.num_reg_images() == rec.num_reg_images() and other.num_points3D() == rec.num_points3D()


OUTPUTS = ("report.md", "metrics.json", "sfm.png")


def prepare_output(out, methods: list[str], overwrite: bool = False) -> Path:
    """Check ``out`` before any work: a folder that already holds files is an error unless
    ``overwrite``, which removes the method folders and the report files this run writes (and
    nothing else)."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise PygmatchError(f"{out}: exists and is not a folder")
    if out.is_dir() and any(out.iterdir()):
        if not overwrite:
            raise PygmatchError(f"{out}: already exists and is not empty; choose another folder or overwrite it (--overwrite)")
        for m in methods:
            shutil.rmtree(method_folder(out, m), ignore_errors=True)
        for name in OUTPUTS:
            (out / name).unlink(missing_ok=True)
    writable_folder(out)
    return make_folder(out)


def check_methods(methods: list[str]) -> list[str]:
    """Method names: non-empty, each once."""
    methods = [m.strip() for m in methods if m.strip()]
    if not methods:
        raise PygmatchError("no methods given")
    seen = set()
    for m in methods:
        if m in seen:
            raise PygmatchError(f"method {m!r} is given twice")
        seen.add(m)
        if m != COLMAP and method_folder(".", m).name in (Path(o).stem for o in OUTPUTS):
            raise PygmatchError(f"method name {m!r} clashes with an output file")
    return methods


def run_sfm(folder, out, methods: list[str], pairs=None, *, max_keypoints: int = DEFAULT_MAX_KEYPOINTS,
            match_threshold: float | None = DEFAULT_MATCH_THRESHOLD, threads: int = 1,
            camera_mode: str = "per-image", overwrite: bool = False, progress: bool = True, mapping: dict | None = None,
            load_pipeline=None) -> dict:
    """Every method on the images of ``folder`` (``pairs``: None for all pairs, or a pairs file),
    into ``out``: per method a database and the reconstructions, and ``report.md``,
    ``metrics.json``, ``sfm.png`` for all. ``mapping``: overrides of COLMAP's mapping options for
    every method (``mapping_options``). ``load_pipeline(name)``: how a method name becomes a
    ``Pipeline`` (default ``Pipeline.load(name, max_keypoints=..., match_threshold=..., threads=...)``;
    ``match_threshold`` None: each learned matcher's own). Bad input is a
    ``PygmatchError`` before any work. Returns the metrics (what ``metrics.json`` holds)."""
    pycolmap = pycolmap_module()
    methods = check_methods(list(methods))
    if threads < 1:
        raise PygmatchError(f"threads must be >= 1, got {threads}")
    _camera_mode(pycolmap, camera_mode)
    mapping_options(mapping, threads)
    folder = Path(folder)
    names = list_collection(folder)
    pair_list = exhaustive_pairs(names) if pairs is None else read_pairs(pairs, names)
    if load_pipeline is None:
        def load_pipeline(name):
            return Pipeline.load(name, max_keypoints=max_keypoints, match_threshold=match_threshold, threads=threads)
    pipelines = {m: (None if m == COLMAP else load_pipeline(m)) for m in methods}  # a bad name fails before any work
    out = prepare_output(out, methods, overwrite)
    results = {}
    for m in methods:
        if progress:
            tqdm.write(f"{m}:")
        results[m] = run_method(m, folder, names, pair_list, out, pairs is None, pipelines[m], threads, camera_mode, progress, mapping)
    summary = {"images": str(folder), "names": names, "pairs": len(pair_list), "pairs_source": "exhaustive" if pairs is None else str(pairs),
               "max_keypoints": max_keypoints, "match_threshold": match_threshold, "threads": threads, "camera_mode": camera_mode,
               "pycolmap": pycolmap.__version__, "colmap_max_image_size": COLMAP_MAX_IMAGE_SIZE, "mapping_options": dict(mapping or {}),
               "methods": results}
    write_text(out / "metrics.json", json.dumps(summary, indent=2, default=float))
    write_text(out / "report.md", report(summary))
    plot(summary, out / "sfm.png")
    return summary


# ---------------------------------------------------------------------------- report


def _f(v, digits=2) -> str:
    return "–" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.{digits}f}"


def table(summary: dict) -> str:
    """The markdown table of every method's reconstruction and timings."""
    head = ("| method | registered | 3D points | track length | reproj. error (px) | verified pairs | matches/pair | "
            "extract ms/image | match ms/pair | adjust s | verify s | map s | total s |")
    lines = [head, "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for m, r in summary["methods"].items():
        t = r["timings_s"]
        lines.append(f"| {m} | {r['registered']} / {r['given']} | {r['points3D']} | {_f(r['track_length'])} | {_f(r['reprojection_error'], 3)} | "
                     f"{r['verified_pairs']} / {summary['pairs']} | {r['matches_per_pair']:.0f} | {r['ms_per_image']:.0f} | "
                     f"{r['ms_per_pair']:.1f} | {t['adjust_s']:.2f} | {t['verify_s']:.1f} | {t['map_s']:.1f} | {t['total_s']:.1f} |")
    return "\n".join(lines)


def report(summary: dict) -> str:
    """``report.md``: the data, the settings and the table."""
    lines = [
        "# Structure from motion", "",
        f"Images: `{summary['images']}`, {len(summary['names'])} images, {summary['pairs']} pairs ({summary['pairs_source']}). "
        f"pycolmap {summary['pycolmap']}, {summary['threads']} thread(s), cameras {summary['camera_mode']}. "
        f"pygmatch methods: up to {summary['max_keypoints']} keypoints per image (longer side at most 1024 px), "
        f"learned matchers' match threshold {summary['match_threshold'] if summary['match_threshold'] is not None else 'their own'}; "
        f"`colmap`: COLMAP's SIFT at {summary['colmap_max_image_size']} px and its matcher (ratio test, cross-check).", "",
        table(summary), "",
        "Registered: images in the largest model. Track length: mean observations per 3D point. Reprojection error: mean over all "
        "observations after bundle adjustment. Verified pairs: pairs with at least 15 inliers of COLMAP's geometric verification. "
        "Matches/pair: raw matches written to the database (before verification). Match ms/pair: matching (with refinement) of one "
        "pair; for `colmap`, its SIFT matcher. Adjust: combining the refined positions into one per keypoint.", "",
    ]
    adjusted = {m: r["adjustment"] for m, r in summary["methods"].items() if "adjustment" in r}
    if adjusted:
        lines += ["## Keypoint adjustment", "", "| method | keypoints moved | median shift (px) | matches used | matches dropped |",
                  "|---|---:|---:|---:|---:|"]
        lines += [f"| {m} | {a['moved']} | {a['median_shift_px']:.2f} | {a['matches_used']} | {a['matches_dropped']} |" for m, a in adjusted.items()]
        lines.append("")
    missing = {m: sorted(set(summary["names"]) - set(r["registered_names"])) for m, r in summary["methods"].items()}
    missing = {m: v for m, v in missing.items() if v}
    if missing:
        lines += ["## Images not registered", ""] + [f"- {m}: {', '.join(v)}" for m, v in missing.items()] + [""]
    lines += ["Each method's database and models (COLMAP binary, readable by the COLMAP GUI) are in its folder: "
              "`METHOD/database.db`, `METHOD/sparse/N/`.", ""]
    return "\n".join(lines)


def plot(summary: dict, path) -> Path:
    """Registered images, mean track length and mean reprojection error per method, side by side."""
    import matplotlib  # noqa: PLC0415

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    methods = list(summary["methods"])
    rows = [("registered images", "registered"), ("mean track length", "track_length"), ("mean reprojection error (px)", "reprojection_error")]
    fig, axes = plt.subplots(1, 3, figsize=(min(3 + 1.8 * len(methods), 15), 3.8))
    colours = ["tab:gray" if m == COLMAP else "tab:blue" for m in methods]
    for ax, (title, key) in zip(axes, rows):
        values = [summary["methods"][m][key] for m in methods]
        ax.bar(range(len(methods)), [0 if v is None or (isinstance(v, float) and math.isnan(v)) else v for v in values], color=colours)
        ax.set_xticks(range(len(methods)), methods, rotation=20, ha="right", fontsize=8)
        ax.set_title(title, fontsize=10)
        for k, v in enumerate(values):
            ax.annotate(_f(v, 0 if key == "registered" else (3 if key == "reprojection_error" else 2)), (k, 0 if v != v else v),
                        ha="center", va="bottom", fontsize=8)
        if key == "registered":
            ax.axhline(len(summary["names"]), color="k", lw=0.8, ls="--")
    fig.suptitle(f"{Path(summary['images']).name}: {len(summary['names'])} images, {summary['pairs']} pairs", fontsize=10)
    fig.tight_layout()
    return save_figure(fig, path, dpi=110)

