"""Training pairs from real photographs: a COLMAP reconstruction of a scene labels the graph
network's candidates, where the homography pairs (``data.py``) can only teach planar motion.

A scene folder is ``SCENE/images/`` and a COLMAP *text* model with its 3-D points
(``cameras.txt``, ``images.txt`` with the POINTS2D lines, ``points3D.txt``) in ``SCENE/model/``,
``SCENE/gt/``, ``SCENE/sparse/`` or SCENE itself. Pairs: images that see at least
``MIN_COVISIBLE`` common 3-D points, at most ``pairs`` per scene drawn with the seed. Each image is
read once, downscaled to ``resize`` px on its longer side and given SIFT keypoints, as for matching.

Each candidate (i, j) gets ``error``, in image 1's pixels, as the homography pairs' label (the loss
takes < 1 px as a match, > 3 px as not, and ignores the band between and NaN):

- its epipolar distance under the true cameras, the larger of the two images' (a lower bound of the
  true reprojection error), when that exceeds ``ignore_px`` (3 px): certainly wrong;
- else, where the reconstruction's 3-D points seen in image 0 within ``DEPTH_RADIUS`` px of
  keypoint i agree on its depth (within ``DEPTH_AGREEMENT``), keypoint i is lifted to that depth and
  projected into image 1: if the projection falls within ``TRANSFER_PX`` of keypoint j the label is
  the epipolar distance (the depth, interpolated from neighbours, is too coarse to place a point
  along the line to a pixel; the epipolar distance is exact), beyond ``WRONG_TRANSFER_PX`` it is the
  transfer distance (a match to the wrong place on the line: repeated structure), else NaN;
- else NaN (no depth: correct and wrong cannot be told apart along the line).

Distortion parameters of the cameras are ignored, as in ``pygmatch.data.scenes``.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from scipy.spatial import cKDTree
from torch_geometric.data import Data
from tqdm import tqdm

from ..data.epipolar import essential_matrix, pixel_to_camera
from ..data.features import Keypoints, extract
from ..data.images import downscale, points_to_original, read_gray
from ..data.geometry import warp_points
from ..data.scenes import SceneImage, check_image_size, read_cameras_text, read_images_text, read_points2d_text, read_points3d_text, relative_pose
from ..errors import PygmatchError
from ..matching.candidate_graph import candidate_graph
from ..nn.candidate_graph import CandidateGraphConfig
from .data import with_labels

MIN_COVISIBLE = 50  # 3-D points two images must share to make a training pair
DEPTH_RADIUS = 16.0  # px (working image): 3-D points this near a keypoint give its depth
DEPTH_AGREEMENT = 1.15  # their largest over smallest depth; beyond, a depth edge: no depth
TRANSFER_PX, WRONG_TRANSFER_PX = 3.0, 8.0


@dataclass
class SceneView:
    """One image of a scene as training sees it: keypoints in the downscaled image's pixels, the
    camera, and the reconstruction's observations there (positions, their depths)."""

    name: str
    keypoints: Keypoints
    size: tuple[int, int]
    S: np.ndarray  # original pixels -> working pixels
    image: SceneImage
    observed_xy: np.ndarray  # (M, 2) working pixels
    observed_depth: np.ndarray  # (M,)
    point_ids: np.ndarray  # (M,) the 3-D points observed


def model_dir(scene: Path) -> Path:
    if not scene.is_dir():
        raise PygmatchError(f"{scene}: no such scene folder")
    for sub in ("model", "gt", "sparse", "."):
        if (scene / sub / "points3D.txt").is_file():
            return scene / sub
    raise PygmatchError(f"{scene}: no COLMAP text model with points3D.txt in model/, gt/, sparse/ or the folder itself "
                        f"(a training scene needs the reconstruction's 3-D points; write a binary model as text with "
                        f"pycolmap.Reconstruction(path).write_text(dir))")


def load_views(scene: str | os.PathLike, resize: int, max_keypoints: int, features: str = "sift") -> list[SceneView]:
    """Every registered image of a scene folder with its keypoints and observations."""
    scene = Path(scene)
    folder = model_dir(scene)
    cameras = read_cameras_text(folder / "cameras.txt")
    images = read_images_text(folder / "images.txt", cameras)
    observed = read_points2d_text(folder / "images.txt")
    points = read_points3d_text(folder / "points3D.txt")
    views = []
    for name, image in sorted(images.items()):
        path = scene / "images" / name
        if not path.is_file():
            raise PygmatchError(f"{path}: no such image (registered in {folder / 'images.txt'})")
        gray = read_gray(path, None)
        check_image_size(path, (gray.shape[1], gray.shape[0]), image.camera, folder / "cameras.txt")
        small, S = downscale(gray, resize)
        xy, ids = observed.get(name, (np.zeros((0, 2)), np.zeros(0, np.int64)))
        known = np.array([i in points for i in ids], bool)
        xy, ids = xy[known], ids[known]
        world = np.array([points[i] for i in ids]).reshape(-1, 3)
        depth = (world @ image.R.T + image.t)[:, 2]
        working = warp_points(xy - 0.5, S)  # COLMAP's pixel centres are at +0.5
        views.append(SceneView(name, extract(small, features, max_keypoints), (small.shape[1], small.shape[0]), S, image, working, depth, ids))
    return views


def covisible_pairs(views: list[SceneView], pairs: int, seed: int) -> list[tuple[int, int]]:
    """Up to ``pairs`` index pairs of views sharing at least ``MIN_COVISIBLE`` 3-D points, drawn at random."""
    sets = [set(v.point_ids.tolist()) for v in views]
    found = [(a, b) for a in range(len(views)) for b in range(a + 1, len(views)) if len(sets[a] & sets[b]) >= MIN_COVISIBLE]
    order = np.random.default_rng(seed).permutation(len(found))[:pairs]
    return [found[k] for k in sorted(order)]


def candidate_errors(v0: SceneView, v1: SceneView, cand: np.ndarray, ignore_px: float) -> np.ndarray:
    """(K,) the label of each candidate (the module's docstring)."""
    i, j = cand[:, 0], cand[:, 1]
    rays0 = np.c_[pixel_to_camera(points_to_original(v0.keypoints.xy[i], v0.S), v0.image.K), np.ones(len(i))]
    rays1 = np.c_[pixel_to_camera(points_to_original(v1.keypoints.xy[j], v1.S), v1.image.K), np.ones(len(j))]
    R, t = relative_pose(v0.image, v1.image)
    E = essential_matrix(R, t)
    focal0 = v0.S[0, 0] * np.mean(np.diag(v0.image.K)[:2])
    focal1 = v1.S[0, 0] * np.mean(np.diag(v1.image.K)[:2])
    line1, line0 = rays0 @ E.T, rays1 @ E  # epipolar lines in camera 1's and camera 0's normalised coordinates
    d1 = np.abs((rays1 * line1).sum(1)) / np.maximum(np.linalg.norm(line1[:, :2], axis=1), 1e-12) * focal1
    d0 = np.abs((rays0 * line0).sum(1)) / np.maximum(np.linalg.norm(line0[:, :2], axis=1), 1e-12) * focal0
    error = np.maximum(d0, d1)
    label = np.where(error > ignore_px, error, np.nan)
    rows = np.nonzero(error <= ignore_px)[0]
    if not len(rows) or not len(v0.observed_xy):
        return label
    # each undecided candidate's keypoint: the depths of the 3-D points seen within DEPTH_RADIUS (at most 6)
    dist, near = cKDTree(v0.observed_xy).query(v0.keypoints.xy[i[rows]], k=6, distance_upper_bound=DEPTH_RADIUS)
    found = np.isfinite(dist)
    depths = np.where(found, v0.observed_depth[np.minimum(near, len(v0.observed_depth) - 1)], np.nan)
    low, high = np.where(found, depths, np.inf).min(1), np.where(found, depths, -np.inf).max(1)
    usable = (found.sum(1) >= 2) & (low > 0) & (high <= DEPTH_AGREEMENT * low)
    rows, depths = rows[usable], depths[usable]
    X1 = (rays0[rows] * np.nanmedian(depths, axis=1)[:, None]) @ R.T + t  # lifted to the depth, in camera 1
    ahead = X1[:, 2] > 0
    rows, X1 = rows[ahead], X1[ahead]
    seen = warp_points((X1 / X1[:, 2:]) @ v1.image.K[:2].T - 0.5, v1.S)
    transfer = np.linalg.norm(seen - v1.keypoints.xy[j[rows]], axis=1)
    label[rows[transfer <= TRANSFER_PX]] = error[rows[transfer <= TRANSFER_PX]]
    label[rows[transfer > WRONG_TRANSFER_PX]] = transfer[transfer > WRONG_TRANSFER_PX]
    return label


class SceneGraphs(torch.utils.data.Dataset):
    """The candidate graphs of real scenes' pairs with their labels, built once and kept in memory."""

    def __init__(self, scenes: list[str], cfg: CandidateGraphConfig, pairs: int = 200, resize: int = 640, max_keypoints: int = 1024,
                 seed: int = 0, progress: bool = True):
        self.scenes, self.graphs, self.files = [str(s) for s in scenes], [], []
        for scene in self.scenes:
            views = load_views(scene, resize, max_keypoints, cfg.features)
            self.files += [Path(scene) / "images" / v.name for v in views]
            chosen = covisible_pairs(views, pairs, seed)
            if not chosen:
                raise PygmatchError(f"{scene}: no two images share {MIN_COVISIBLE} 3-D points: no training pair")
            for a, b in tqdm(chosen, desc=f"graphs of {Path(scene).name}", unit="pair", disable=not progress):
                graph = self.graph(views[a], views[b], cfg)
                if graph is not None:
                    self.graphs.append(graph)

    @staticmethod
    def graph(v0: SceneView, v1: SceneView, cfg: CandidateGraphConfig) -> Data | None:
        cand, data = candidate_graph(v0.keypoints, v1.keypoints, v0.size, v1.size, cfg)
        if data is None:
            return None
        # no homography (validation measures the homography pairs only), difficulty -1
        return with_labels(data, candidate_errors(v0, v1, cand, cfg.ignore_px), np.full((3, 3), np.nan), v0.size, -1.0)

    def __len__(self) -> int:
        return len(self.graphs)

    def __getitem__(self, index: int) -> Data:
        return self.graphs[index]

    def __repr__(self) -> str:
        return f"{type(self).__name__}({len(self.graphs)} graphs of {len(self.scenes)} scene(s))"


__all__ = ["SceneGraphs", "SceneView", "candidate_errors", "covisible_pairs", "load_views"]
