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

from ..data.epipolar import pixel_to_camera
from ..data.features import Keypoints, extract
from ..data.images import downscale, points_to_original, read_gray
from ..data.scenes import SceneImage, read_cameras_text, read_images_text
from ..errors import PygmatchError
from ..matching.candidate_graph import candidate_graph
from ..nn.candidate_graph import CandidateGraphConfig

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


def read_points3d_text(path: Path) -> dict[int, np.ndarray]:
    points = {}
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip() or line.startswith("#"):
            continue
        parts = line.split()
        try:
            points[int(parts[0])] = np.array([float(v) for v in parts[1:4]])
        except (ValueError, IndexError):
            raise PygmatchError(f"{path}:{number}: expected POINT3D_ID X Y Z ..., got {line[:60]!r}") from None
    return points


def read_observations(path: Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Per image name: the POINTS2D of ``images.txt`` that have a 3-D point, ``(xy (M, 2) in
    COLMAP's pixels, point ids (M,))``."""
    lines = [line for line in path.read_text().splitlines() if not line.startswith("#")]
    out = {}
    for k in range(0, len(lines) - 1, 2):
        header, points = lines[k].split(), lines[k + 1].split()
        if not header:
            continue
        try:
            values = np.array([float(v) for v in points]).reshape(-1, 3)
        except ValueError:
            raise PygmatchError(f"{path}: the POINTS2D line of image {header[-1]} is not X Y POINT3D_ID triples") from None
        seen = values[:, 2] >= 0
        out[header[-1]] = (values[seen, :2], values[seen, 2].astype(np.int64))
    return out


def load_views(scene: str | os.PathLike, resize: int, max_keypoints: int, features: str = "sift") -> list[SceneView]:
    """Every registered image of a scene folder with its keypoints and observations."""
    scene = Path(scene)
    folder = model_dir(scene)
    cameras = read_cameras_text(folder / "cameras.txt")
    images = read_images_text(folder / "images.txt", cameras)
    observed = read_observations(folder / "images.txt")
    points = read_points3d_text(folder / "points3D.txt")
    views = []
    for name, image in sorted(images.items()):
        path = scene / "images" / name
        if not path.is_file():
            raise PygmatchError(f"{path}: no such image (registered in {folder / 'images.txt'})")
        gray = read_gray(path, None)
        if (gray.shape[1], gray.shape[0]) != (image.camera.width, image.camera.height):
            raise PygmatchError(f"{path}: the image is {gray.shape[1]}x{gray.shape[0]}, its camera in {folder / 'cameras.txt'} "
                                f"{image.camera.width}x{image.camera.height}: not the photograph the model was made from")
        small, S = downscale(gray, resize)
        xy, ids = observed.get(name, (np.zeros((0, 2)), np.zeros(0, np.int64)))
        known = np.array([i in points for i in ids], bool)
        xy, ids = xy[known], ids[known]
        world = np.array([points[i] for i in ids]).reshape(-1, 3)
        depth = (world @ image.R.T + image.t)[:, 2]
        working = to_working(xy - 0.5, S)  # COLMAP's pixel centres are at +0.5
        views.append(SceneView(name, extract(small, features, max_keypoints), (small.shape[1], small.shape[0]), S, image, working, depth, ids))
    return views


def to_working(xy: np.ndarray, S: np.ndarray) -> np.ndarray:
    """Original pixels (pixel centres at integers) -> the downscaled image's (``downscale``'s S)."""
    return np.asarray(xy, np.float64).reshape(-1, 2) * np.diag(S)[:2] + (np.diag(S)[:2] - 1) / 2


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
    R = v1.image.R @ v0.image.R.T
    t = v1.image.t - R @ v0.image.t
    E = np.array([[0, -t[2], t[1]], [t[2], 0, -t[0]], [-t[1], t[0], 0]]) @ R
    focal0 = v0.S[0, 0] * np.mean(np.diag(v0.image.K)[:2])
    focal1 = v1.S[0, 0] * np.mean(np.diag(v1.image.K)[:2])
    line1, line0 = rays0 @ E.T, rays1 @ E  # epipolar lines in camera 1's and camera 0's normalised coordinates
    d1 = np.abs((rays1 * line1).sum(1)) / np.maximum(np.linalg.norm(line1[:, :2], axis=1), 1e-12) * focal1
    d0 = np.abs((rays0 * line0).sum(1)) / np.maximum(np.linalg.norm(line0[:, :2], axis=1), 1e-12) * focal0
    error = np.maximum(d0, d1)
    label = np.where(error > ignore_px, error, np.nan)
    undecided = np.nonzero(error <= ignore_px)[0]
    if len(undecided) and len(v0.observed_xy):
        tree = cKDTree(v0.observed_xy)
        dist, near = tree.query(v0.keypoints.xy[i[undecided]], k=6, distance_upper_bound=DEPTH_RADIUS)
        for row, (dd, nn) in zip(undecided, zip(dist, near)):
            nn = nn[np.isfinite(dd)]
            if len(nn) < 2:
                continue
            depths = v0.observed_depth[nn]
            if depths.min() <= 0 or depths.max() > DEPTH_AGREEMENT * depths.min():
                continue
            X1 = R @ (rays0[row] * np.median(depths)) + t
            if X1[2] <= 0:
                continue
            seen = to_working((v1.image.K @ (X1 / X1[2]))[:2][None] - 0.5, v1.S)[0]
            transfer = float(np.linalg.norm(seen - v1.keypoints.xy[j[row]]))
            if transfer <= TRANSFER_PX:
                label[row] = error[row]
            elif transfer > WRONG_TRANSFER_PX:
                label[row] = transfer
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
        data.error = torch.from_numpy(candidate_errors(v0, v1, cand, cfg.ignore_px).astype(np.float32))
        data.H = torch.full((1, 3, 3), float("nan"), dtype=torch.float64)  # no homography: validation measures bank pairs only
        data.image_size = torch.tensor([v0.size], dtype=torch.float32)
        data.difficulty = torch.tensor([-1.0])
        return data

    def __len__(self) -> int:
        return len(self.graphs)

    def __getitem__(self, index: int) -> Data:
        return self.graphs[index]

    def __repr__(self) -> str:
        return f"{type(self).__name__}({len(self.graphs)} graphs of {len(self.scenes)} scene(s))"


__all__ = ["SceneGraphs", "SceneView", "candidate_errors", "covisible_pairs", "load_views", "read_observations", "read_points3d_text"]
