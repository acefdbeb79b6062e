"""Reconstruct relative-pose scenes from folders of photographs, for ``eval.pose``: the second set of
real scenes in ``benchmarks/results/keypoint-selection/scenes/`` (its README: the sources).

For each ``SCENES/SCENE/images/``: pycolmap SIFT (up to 8,192 features on images downscaled to
1,600 px), exhaustive matching, incremental mapping (seed 0), all on one thread; one camera for a
scene whose photographs share a size, else COLMAP's guess; where the mapper finds no initial pair
it is run again with a 4° initial triangulation angle (COLMAP's default is 16°). The model with the
most registered images is written as text to ``SCENE/gt/``, and ``SCENE/pairs.txt`` gets the lines
of ``PAIRS/SCENE.txt`` whose two images it registered. A scene that has ``gt/`` is skipped.

    python -m benchmarks.build_scenes --scenes DIR [--pairs benchmarks/results/keypoint-selection/scenes/pairs]
"""
from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from pygmatch.data.images import list_images, read_gray
from pygmatch.errors import PygmatchError
from pygmatch.sfm.colmap import pycolmap_module

PAIRS = Path(__file__).resolve().parent / "results" / "keypoint-selection" / "scenes" / "pairs"
MAX_IMAGE_SIZE = 1600
MAX_FEATURES = 8192
FALLBACK_INIT_ANGLE = 4.0


def reconstruct(images: Path, work: Path):
    """The pycolmap model of the photographs in ``images`` with the most registered images, or None."""
    pycolmap = pycolmap_module()
    names = [p.name for p in list_images(images)]
    sizes = {read_gray(images / n, None).shape for n in names}
    database = work / "database.db"
    extraction = pycolmap.FeatureExtractionOptions()
    extraction.max_image_size, extraction.sift.max_num_features, extraction.num_threads, extraction.use_gpu = MAX_IMAGE_SIZE, MAX_FEATURES, 1, False
    mode = pycolmap.CameraMode.SINGLE if len(sizes) == 1 else pycolmap.CameraMode.AUTO
    pycolmap.extract_features(str(database), str(images), image_names=names, camera_mode=mode, extraction_options=extraction,
                              device=pycolmap.Device.cpu)
    matching = pycolmap.FeatureMatchingOptions()
    matching.num_threads, matching.use_gpu = 1, False
    verification = pycolmap.TwoViewGeometryOptions()
    verification.ransac.num_threads = 1
    pycolmap.match_exhaustive(str(database), matching_options=matching, verification_options=verification, device=pycolmap.Device.cpu)
    options = pycolmap.IncrementalPipelineOptions()
    options.num_threads, options.random_seed = 1, 0
    for attempt in range(2):
        output = work / f"sparse-{attempt}"
        output.mkdir()
        models = pycolmap.incremental_mapping(str(database), str(images), str(output), options=options)
        if models:
            return max(models.values(), key=lambda r: (r.num_reg_images(), r.num_points3D()))
        options.mapper.init_min_tri_angle = FALLBACK_INIT_ANGLE
    return None


def build(scene: Path, pairs: Path) -> dict:
    """``scene/gt/`` and ``scene/pairs.txt`` (above); what was built, for the log."""
    pair_file = pairs / f"{scene.name}.txt"
    if not pair_file.is_file():
        raise PygmatchError(f"{pair_file}: no pair list for scene {scene.name}")
    with tempfile.TemporaryDirectory() as work:
        model = reconstruct(scene / "images", Path(work))
    if model is None:
        return {"scene": scene.name, "registered": 0}
    (scene / "gt").mkdir()
    model.write_text(str(scene / "gt"))
    registered = {image.name for image in model.images.values() if image.has_pose}
    lines = [line.strip() for line in pair_file.read_text().splitlines() if line.strip()]
    kept = [line for line in lines if all(name in registered for name in line.split()[:2])]
    (scene / "pairs.txt").write_text("".join(line + "\n" for line in kept))
    return {"scene": scene.name, "registered": len(registered), "points3D": model.num_points3D(), "pairs": len(kept), "listed": len(lines)}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.build_scenes", description=__doc__.split("\n\n")[0])
    ap.add_argument("--scenes", required=True, help="folder of scene folders, each with images/")
    ap.add_argument("--pairs", default=str(PAIRS), help="folder of pair lists, SCENE.txt")
    args = ap.parse_args(argv)
    scenes = sorted(p for p in Path(args.scenes).iterdir() if (p / "images").is_dir())
    if not scenes:
        raise SystemExit(f"error: {args.scenes}: no scene folder with images/")
    for scene in scenes:
        if (scene / "gt").exists():
            print(json.dumps({"scene": scene.name, "skipped": "gt/ exists"}), flush=True)
            continue
        print(json.dumps(build(scene, Path(args.pairs))), flush=True)


if __name__ == "__main__":
    main()
