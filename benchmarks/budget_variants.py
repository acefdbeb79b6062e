"""Other ways of spending a SIFT keypoint budget, tried on the real pose scenes and not kept
([docs/results.md](../docs/results.md#wide-baselines-at-1024-keypoints)). Each variant replaces one
name in ``pygmatch.pipeline`` for one ``eval.pose`` run (the keypoint extraction, ``extract``, but
for the last):

- ``all-keypoints``: the run's selection among all of OpenCV's SIFT keypoints (the control of the
  next three, which do the same);
- ``octave0``: OpenCV's SIFT without the keypoints of its first octave (the image upsampled 2×, the
  finest scale), then the run's selection among the rest;
- ``tilt-stable``: each keypoint's response weighted by 1 + the number of simulated tilts (the image
  squeezed by 2 along x, along y) on which SIFT finds it again within 4 px, then the selection;
- ``dsp``: the run's keypoints with domain-size pooled descriptors (Dong and Soatto 2015: SIFT
  averaged over supports of 1/6 to 3 times the keypoint's, ten sizes, COLMAP's ``domain_size_pooling``);
- ``colmap``, ``colmap-affine-dsp``: COLMAP's own SIFT (pycolmap, VLFeat) with its own choice of
  the budget (the coarsest octaves first), without or with affine shape estimation and DSP;
- ``views-at-budget``: ``views="auto"`` (give ``--views auto``) whose rounds match the run's
  ``--max-keypoints`` per image instead of ``SYNTHESIS_MAX_KEYPOINTS``.

The OpenCV variants choose among all of SIFT's keypoints at the run's contrast threshold (the
pipelines' spread selection among the strongest ``SPREAD_CANDIDATES`` times the budget).

    python -m benchmarks.budget_variants VARIANT [eval.pose arguments]
"""
from __future__ import annotations

import sys

import cv2
import numpy as np
from scipy.spatial import cKDTree

import pygmatch.pipeline
from pygmatch.data.features import Keypoints, cv_keypoint_arrays, root_sift, select

TILT, REDETECTED_PX = 2.0, 2.0
DSP_SCALES = 1 / 6 + np.arange(10) * (3 - 1 / 6) / 10  # COLMAP's dsp_min_scale, dsp_max_scale, dsp_num_scales


def octave_of(kp) -> int:
    """OpenCV's octave of a SIFT keypoint (-1: the image upsampled 2×)."""
    o = kp.octave & 255
    return o - 256 if o >= 128 else o


def redetections(image: np.ndarray, xy: np.ndarray, contrast_threshold: float) -> np.ndarray:
    """For each keypoint, on how many of the two simulated tilts SIFT finds one within
    ``REDETECTED_PX`` × the tilt (the image blurred and squeezed as ASIFT's views are)."""
    h, w = image.shape
    sift, count = cv2.SIFT_create(contrastThreshold=contrast_threshold), np.zeros(len(xy), np.int32)
    sigma = 0.8 * np.sqrt(TILT ** 2 - 1)
    for axis in (0, 1):
        size = (round(w / TILT), h) if axis == 0 else (w, round(h / TILT))
        blurred = cv2.GaussianBlur(image, (0, 0), sigmaX=sigma if axis == 0 else 0.01, sigmaY=sigma if axis == 1 else 0.01)
        found = sift.detect(cv2.resize(blurred, size, interpolation=cv2.INTER_LINEAR), None)
        if found:
            p = (np.array([k.pt for k in found]) + 0.5) * [w / size[0], h / size[1]] - 0.5
            count += np.isfinite(cKDTree(p).query(xy, distance_upper_bound=REDETECTED_PX * TILT)[0])
    return count


def opencv_variant(variant: str):
    def extract(image, features, max_keypoints, contrast_threshold, selection):
        sift = cv2.SIFT_create(contrastThreshold=contrast_threshold)
        found = sift.detect(image, None)
        if variant == "octave0":
            found = [k for k in found if octave_of(k) >= 0]
        if not found:
            return Keypoints.empty(128)
        xy, scale, ori, score = cv_keypoint_arrays(found)
        rank = score * (1 + redetections(image, xy, contrast_threshold)) if variant == "tilt-stable" else score
        keep = select(selection, xy, rank.astype(np.float32), max_keypoints)
        kept = [found[i] for i in keep]
        sizes = DSP_SCALES if variant == "dsp" else [1.0]
        many = [cv2.KeyPoint(k.pt[0], k.pt[1], k.size * s, k.angle, k.response, k.octave, k.class_id) for s in sizes for k in kept]
        _, desc = sift.compute(image, many)
        desc = desc.reshape(len(sizes), len(kept), 128).mean(0)
        return Keypoints(xy[keep].astype(np.float32), scale[keep], ori[keep], score[keep], root_sift(desc))
    return extract


def colmap_variant(variant: str):
    import pycolmap  # noqa: PLC0415 (the sfm extra)

    def extract(image, features, max_keypoints, contrast_threshold, selection):
        options = pycolmap.FeatureExtractionOptions()
        options.num_threads, options.sift.max_num_features = 1, max_keypoints
        options.sift.estimate_affine_shape = options.sift.domain_size_pooling = variant == "colmap-affine-dsp"
        options.sift.peak_threshold = contrast_threshold / 3  # OpenCV divides its threshold by the 3 layers per octave
        kp, desc = pycolmap.Sift(options).extract(np.ascontiguousarray(image))
        kp, desc = kp[:max_keypoints], np.asarray(desc[:max_keypoints], np.float32)  # whole octaves may pass the budget
        desc /= np.linalg.norm(desc, axis=1, keepdims=True) + 1e-12  # COLMAP's L1-root descriptors, at unit length
        n = len(kp)
        # COLMAP's pixel centres are at +0.5; its scale is SIFT's sigma, OpenCV's size twice that
        return Keypoints((kp[:, :2] - 0.5).astype(np.float32), 2 * kp[:, 2].astype(np.float32), kp[:, 3].astype(np.float32),
                         np.ones(n, np.float32), desc)
    return extract


VARIANTS = ("all-keypoints", "octave0", "tilt-stable", "dsp", "colmap", "colmap-affine-dsp", "views-at-budget")


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] not in VARIANTS:
        raise SystemExit(f"usage: python -m benchmarks.budget_variants {{{','.join(VARIANTS)}}} [eval.pose arguments]")
    from pygmatch.commands.eval_pose import main as eval_pose, parser  # noqa: PLC0415

    variant, args = argv[0], argv[1:]
    shipped = pygmatch.pipeline.extract, pygmatch.pipeline.SYNTHESIS_MAX_KEYPOINTS
    try:
        if variant == "views-at-budget":
            pygmatch.pipeline.SYNTHESIS_MAX_KEYPOINTS = parser().parse_args(args).max_keypoints
        else:
            pygmatch.pipeline.extract = (colmap_variant if variant.startswith("colmap") else opencv_variant)(variant)
        return eval_pose(args)
    finally:  # the process may go on with the pipelines as shipped (a test, a notebook)
        pygmatch.pipeline.extract, pygmatch.pipeline.SYNTHESIS_MAX_KEYPOINTS = shipped


if __name__ == "__main__":
    sys.exit(main())
