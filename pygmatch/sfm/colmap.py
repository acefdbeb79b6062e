"""COLMAP through pycolmap: a collection's keypoints and matches in a database, its geometric
verification, COLMAP's own SIFT and exhaustive matching (the baseline), incremental mapping, and
the reconstruction's numbers.

Coordinates: keypoints are written in the original images' pixels, shifted by +0.5 to COLMAP's
convention (the centre of the top-left pixel is (0.5, 0.5); OpenCV's is (0, 0)).
"""
from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np
from tqdm import tqdm

from ..errors import PygmatchError
from ..files import make_folder, write_text
from .collection import PairMatches

COLMAP_MAX_IMAGE_SIZE = 1024  # COLMAP's SIFT runs on images downscaled to this longer side, as pygmatch's extraction
CAMERA_MODES = ("per-image", "single", "auto")
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


def camera_mode_of(pycolmap, camera_mode: str):
    if camera_mode not in CAMERA_MODES:
        raise PygmatchError(f"unknown camera mode {camera_mode!r}: choose from {', '.join(CAMERA_MODES)}")
    return {"per-image": pycolmap.CameraMode.PER_IMAGE, "single": pycolmap.CameraMode.SINGLE, "auto": pycolmap.CameraMode.AUTO}[camera_mode]


def image_ids(pycolmap, database, names: list[str]) -> list[int]:
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
    pycolmap.import_images(str(database), str(folder), camera_mode_of(pycolmap, camera_mode), image_names=list(names))
    ids = image_ids(pycolmap, database, names)
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
    pycolmap.extract_features(str(database), str(folder), image_names=list(names), camera_mode=camera_mode_of(pycolmap, camera_mode),
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


def reconstruct_models(database, folder, output, threads: int = 1, progress: bool = True, options: dict | None = None) -> list:
    """``pycolmap.incremental_mapping`` of ``database`` (``mapping_options(options, threads)``);
    every model it finds is written under ``output`` (``0/``, ``1/``, ... COLMAP binary). Returns
    ``[(folder, pycolmap.Reconstruction)]``, the most registered images first (empty: nothing
    could be reconstructed). A collection of several scenes gives one model per scene."""
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
    try:
        models = pycolmap.incremental_mapping(str(database), str(folder), str(output), options, next_image_callback=next_image)
        ranked = sorted(models.items(), key=lambda kv: (-kv[1].num_reg_images(), -kv[1].num_points3D(), kv[0]))
        bar.n = sum(r.num_reg_images() for _, r in ranked)  # the bar ends at the images the models hold
        bar.refresh()
    finally:
        bar.close()
    return [(Path(output) / str(k), r) for k, r in ranked]


def reconstruct(database, folder, output, threads: int = 1, progress: bool = True, options: dict | None = None):
    """The model of ``reconstruct_models`` with the most registered images, or None."""
    models = reconstruct_models(database, folder, output, threads, progress, options)
    return models[0][1] if models else None


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


def verified_pairs(database, min_inliers: int = MIN_MATCHES) -> set[tuple[str, str]]:
    """The image pairs of ``database`` whose geometric verification kept at least ``min_inliers``
    inlier matches, each as ``(name, name)`` sorted."""
    pycolmap = pycolmap_module()
    with pycolmap.Database.open(str(database)) as db:
        names = {image.image_id: image.name for image in db.read_all_images()}
        pair_ids, inliers = db.read_two_view_geometry_num_inliers()
    out = set()
    for pair_id, n in zip(pair_ids, inliers):
        if n >= min_inliers:
            a, b = pycolmap.pair_id_to_image_pair(pair_id)
            out.add(tuple(sorted((names[a], names[b]))))
    return out
