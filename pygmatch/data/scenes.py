"""Real photographs with known cameras: scenes read from a COLMAP text model, for relative-pose evaluation.

A scene is a folder::

    SCENE/images/          the photographs
    SCENE/gt/cameras.txt   COLMAP text model (``gt/`` may be left out: the two files directly in SCENE/)
    SCENE/gt/images.txt
    SCENE/pairs.txt        optional: the pairs to evaluate, ``name0 name1`` per line (default: every pair)

``cameras.txt``: ``CAMERA_ID MODEL WIDTH HEIGHT PARAMS...``. The intrinsics K are taken from the focal
length(s) and principal point of ``SIMPLE_PINHOLE`` (f cx cy), ``PINHOLE`` (fx fy cx cy),
``SIMPLE_RADIAL`` (f cx cy k), ``RADIAL`` (f cx cy k1 k2) and ``OPENCV`` (fx fy cx cy k1 k2 p1 p2);
**the distortion parameters are ignored** (the images are not undistorted: fine for the small
distortions of these models, a bias for strong ones). Principal points are in COLMAP's convention, the
image's top-left corner at (0, 0) and the first pixel's centre at (0.5, 0.5); pygmatch's positions have
pixel centres at integers, so ``pixel_to_camera`` (``pygmatch.data.epipolar``) adds 0.5 before applying K⁻¹.

``images.txt``: for each image a line ``IMAGE_ID QW QX QY QZ TX TY TZ CAMERA_ID NAME`` (world-to-camera:
x_cam = R x_world + t, R from the quaternion) followed by its POINTS2D line (``X Y POINT3D_ID`` triples,
possibly empty), as COLMAP writes it; lines starting ``#`` are comments. ``points3D.txt`` is not read.

Every bad input (a missing file, a malformed line, an unknown camera model or image name) is a one-line
``PygmatchError`` naming the file and line.
"""
from __future__ import annotations

import itertools
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import PygmatchError

# model: (number of parameters, indices of fx, fy, cx, cy in them)
CAMERA_MODELS = {
    "SIMPLE_PINHOLE": (3, (0, 0, 1, 2)),
    "PINHOLE": (4, (0, 1, 2, 3)),
    "SIMPLE_RADIAL": (4, (0, 0, 1, 2)),
    "RADIAL": (5, (0, 0, 1, 2)),
    "OPENCV": (8, (0, 1, 2, 3)),
}
PAIRS_FILE = "pairs.txt"


@dataclass(frozen=True)
class Camera:
    id: int
    model: str
    width: int
    height: int
    K: np.ndarray  # 3×3 intrinsics (distortion ignored)


@dataclass(frozen=True)
class SceneImage:
    """One photograph of a scene: its camera and world-to-camera pose (x_cam = R x_world + t)."""

    id: int
    name: str
    camera: Camera
    R: np.ndarray  # 3×3
    t: np.ndarray  # (3,)

    @property
    def K(self) -> np.ndarray:
        return self.camera.K


@dataclass
class Scene:
    """A scene folder: ``images`` by name, the image folder, and the pairs to evaluate (names)."""

    name: str
    folder: Path
    image_folder: Path
    images: dict[str, SceneImage]
    pairs: list[tuple[str, str]]

    def path(self, name: str) -> Path:
        return self.image_folder / name


def _lines(path: Path):
    """``(line number, stripped text)`` of a text file, a missing / unreadable one a ``PygmatchError``."""
    try:
        text = path.read_bytes().decode("utf-8", errors="replace")
    except FileNotFoundError:
        raise PygmatchError(f"{path}: missing (a COLMAP text model needs cameras.txt and images.txt)") from None
    except OSError as e:
        raise PygmatchError(f"{path}: cannot read ({e.strerror or e})") from None
    return [(n, line.strip()) for n, line in enumerate(text.splitlines(), 1)]


def _numbers(path: Path, n: int, tokens: list[str], kinds: str, what: str) -> list:
    """``tokens`` parsed by ``kinds`` (``i`` int, ``f`` finite float), else one line naming path:n."""
    out = []
    for token, kind in zip(tokens, kinds):
        try:
            v = int(token) if kind == "i" else float(token)
        except ValueError:
            raise PygmatchError(f"{path}:{n}: malformed {what} line: {token!r} is not {'an integer' if kind == 'i' else 'a number'}") from None
        if kind == "f" and not np.isfinite(v):
            raise PygmatchError(f"{path}:{n}: malformed {what} line: {token!r} is not finite")
        out.append(v)
    return out


def read_cameras_text(path: str | os.PathLike) -> dict[int, Camera]:
    """``{camera id: Camera}`` from a COLMAP ``cameras.txt``."""
    path = Path(path)
    cameras = {}
    for n, line in _lines(path):
        if not line or line.startswith("#"):
            continue
        tokens = line.split()
        if len(tokens) < 4:
            raise PygmatchError(f"{path}:{n}: malformed camera line (expected CAMERA_ID MODEL WIDTH HEIGHT PARAMS...)")
        cam_id, = _numbers(path, n, tokens[:1], "i", "camera")
        model = tokens[1].upper()
        if model not in CAMERA_MODELS:
            raise PygmatchError(f"{path}:{n}: camera model {tokens[1]!r} is not supported (supported: {', '.join(CAMERA_MODELS)})")
        count, (ifx, ify, icx, icy) = CAMERA_MODELS[model]
        if len(tokens) != 4 + count:
            raise PygmatchError(f"{path}:{n}: malformed camera line: {model} has {count} parameters, got {len(tokens) - 4}")
        width, height = _numbers(path, n, tokens[2:4], "ii", "camera")
        params = _numbers(path, n, tokens[4:], "f" * count, "camera")
        fx, fy = params[ifx], params[ify]
        if width < 1 or height < 1 or fx <= 0 or fy <= 0:
            raise PygmatchError(f"{path}:{n}: malformed camera line: width, height and focal length must be positive")
        if cam_id in cameras:
            raise PygmatchError(f"{path}:{n}: camera {cam_id} is defined twice")
        K = np.array([[fx, 0.0, params[icx]], [0.0, fy, params[icy]], [0.0, 0.0, 1.0]])
        cameras[cam_id] = Camera(cam_id, model, width, height, K)
    if not cameras:
        raise PygmatchError(f"{path}: no camera in the file")
    return cameras


def quaternion_to_rotation(qw: float, qx: float, qy: float, qz: float) -> np.ndarray:
    """The rotation matrix of a (normalised) quaternion, COLMAP's order (w, x, y, z)."""
    q = np.array([qw, qx, qy, qz], np.float64)
    norm = np.linalg.norm(q)
    if norm < 1e-12:
        raise ValueError("zero quaternion")
    w, x, y, z = q / norm
    return np.array([
        [1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)],
        [2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)],
        [2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)],
    ])


def read_images_text(path: str | os.PathLike, cameras: dict[int, Camera]) -> dict[str, SceneImage]:
    """``{name: SceneImage}`` from a COLMAP ``images.txt`` (each image line followed by its POINTS2D line)."""
    path = Path(path)
    images: dict[str, SceneImage] = {}
    lines = _lines(path)
    k = 0
    while k < len(lines):
        n, line = lines[k]
        k += 1
        if not line or line.startswith("#"):
            continue
        tokens = line.split()
        if len(tokens) < 10:
            raise PygmatchError(f"{path}:{n}: malformed image line (expected IMAGE_ID QW QX QY QZ TX TY TZ CAMERA_ID NAME)")
        image_id, qw, qx, qy, qz, tx, ty, tz, cam_id = _numbers(path, n, tokens[:9], "i" + "f" * 7 + "i", "image")
        name = " ".join(tokens[9:])
        if cam_id not in cameras:
            raise PygmatchError(f"{path}:{n}: image {name!r} names camera {cam_id}, which cameras.txt does not define")
        try:
            R = quaternion_to_rotation(qw, qx, qy, qz)
        except ValueError:
            raise PygmatchError(f"{path}:{n}: malformed image line: the quaternion is zero") from None
        if name in images:
            raise PygmatchError(f"{path}:{n}: image {name!r} is listed twice")
        images[name] = SceneImage(image_id, name, cameras[cam_id], R, np.array([tx, ty, tz], np.float64))
        if k < len(lines):  # its POINTS2D line: X Y POINT3D_ID triples (not used, but checked so a missing one is caught)
            pn, points = lines[k]
            k += 1
            if points and not points.startswith("#") and len(points.split()) % 3:
                raise PygmatchError(f"{path}:{pn}: malformed POINTS2D line (expected X Y POINT3D_ID triples; every image line "
                                    f"is followed by its POINTS2D line, empty or not)")
    if not images:
        raise PygmatchError(f"{path}: no image in the file")
    return images


def model_folder(scene: Path) -> Path:
    """Where a scene's COLMAP text model is: ``SCENE/gt/``, else SCENE itself."""
    return scene / "gt" if (scene / "gt").is_dir() else scene


def read_colmap_text(folder: str | os.PathLike) -> dict[str, SceneImage]:
    """``{name: SceneImage}`` of a COLMAP text model folder (``cameras.txt``, ``images.txt``)."""
    folder = Path(folder)
    return read_images_text(folder / "images.txt", read_cameras_text(folder / "cameras.txt"))


def read_pairs(path: str | os.PathLike, names) -> list[tuple[str, str]]:
    """Pairs ``name0 name1`` per line (further columns ignored; ``#`` comments and blank lines skipped),
    every name checked against ``names``."""
    path = Path(path)
    pairs = []
    for n, line in _lines(path):
        if not line or line.startswith("#"):
            continue
        tokens = line.split()
        if len(tokens) < 2:
            raise PygmatchError(f"{path}:{n}: malformed pair line (expected: name0 name1)")
        a, b = tokens[:2]
        for name in (a, b):
            if name not in names:
                raise PygmatchError(f"{path}:{n}: image {name!r} is not in the scene's images.txt")
        if a == b:
            raise PygmatchError(f"{path}:{n}: a pair of an image with itself ({a!r})")
        pairs.append((a, b))
    if not pairs:
        raise PygmatchError(f"{path}: no pair in the file")
    return pairs


def all_pairs(names) -> list[tuple[str, str]]:
    """Every pair of the names, sorted: (a, b) with a before b."""
    return list(itertools.combinations(sorted(names), 2))


def is_scene(folder: Path) -> bool:
    return (model_folder(folder) / "images.txt").is_file() or (model_folder(folder) / "cameras.txt").is_file()


def load_scene(folder: str | os.PathLike, max_pairs: int | None = None) -> Scene:
    """A scene folder (see the module's docstring); ``max_pairs``: only the first N pairs."""
    folder = Path(folder)
    if not folder.is_dir():
        raise PygmatchError(f"{folder}: not a folder")
    images = read_colmap_text(model_folder(folder))
    image_folder = folder / "images"
    if not image_folder.is_dir():
        raise PygmatchError(f"{folder}: no images/ folder (a scene is SCENE/images/ and SCENE/gt/cameras.txt, images.txt)")
    pairs = read_pairs(folder / PAIRS_FILE, images) if (folder / PAIRS_FILE).is_file() else all_pairs(images)
    if max_pairs is not None:
        pairs = pairs[:max_pairs]
    for name in sorted({name for pair in pairs for name in pair}):
        if not (image_folder / name).is_file():
            raise PygmatchError(f"{image_folder / name}: missing (named in {model_folder(folder) / 'images.txt'})")
    return Scene(folder.name, folder, image_folder, images, pairs)


def load_scenes(data: str | os.PathLike, max_pairs_per_scene: int | None = None) -> list[Scene]:
    """One scene folder, or a folder of scene folders (sorted by name; folders without a model skipped)."""
    data = Path(data)
    if not data.is_dir():
        raise PygmatchError(f"{data}: not a folder (give a scene folder or a folder of scene folders)")
    if is_scene(data):
        return [load_scene(data, max_pairs_per_scene)]
    folders = sorted(p for p in data.iterdir() if p.is_dir() and is_scene(p))
    if not folders:
        raise PygmatchError(f"{data}: no scene (a scene folder holds images/ and gt/cameras.txt, gt/images.txt)")
    return [load_scene(p, max_pairs_per_scene) for p in folders]


def relative_pose(image0: SceneImage, image1: SceneImage) -> tuple[np.ndarray, np.ndarray]:
    """The true pose of camera 1 relative to camera 0: x1 = R x0 + t (camera coordinates)."""
    R = image1.R @ image0.R.T
    return R, image1.t - R @ image0.t
