"""Real photographs with known cameras: scenes read from a COLMAP model (text or binary) or from a
SuperGlue-style pair file, for relative-pose evaluation.

A scene is a folder::

    SCENE/images/          the photographs
    SCENE/gt/cameras.txt   COLMAP text model (``gt/`` may be left out: the two files directly in SCENE/)
    SCENE/gt/images.txt
    SCENE/pairs.txt        optional: the pairs to evaluate, ``name0 name1`` per line (default: every pair)

or the same with the binary model, ``cameras.bin`` and ``images.bin`` (as COLMAP and pycolmap write
them; the text files are read when both are there). Or a pair file, the format of SuperGlue's
``assets/*_pairs_with_gt.txt`` (``read_pair_file``): one pair a line,
``name0 name1 rot0 rot1 K0 (9 values) K1 (9) T_0to1 (16, the 4×4 pose of camera 1 relative to camera
0, row-major)``, the names relative to an image folder; its K are in OpenCV's convention (pixel
centres at integers, as SuperGlue uses them) and are shifted by half a pixel to COLMAP's on reading;
``rot0`` / ``rot1`` (the quarter turns SuperGlue applies before matching, K and T being those of the
stored image) are read and not applied: the stored images are matched as they are.

``cameras.txt``: ``CAMERA_ID MODEL WIDTH HEIGHT PARAMS...``. The intrinsics K are taken from the focal
length(s) and principal point of ``SIMPLE_PINHOLE`` (f cx cy), ``PINHOLE`` (fx fy cx cy),
``SIMPLE_RADIAL`` (f cx cy k), ``RADIAL`` (f cx cy k1 k2) and ``OPENCV`` (fx fy cx cy k1 k2 p1 p2);
**the distortion parameters are ignored** (the images are not undistorted: fine for the small
distortions of these models, a bias for strong ones). Principal points are in COLMAP's convention, the
image's top-left corner at (0, 0) and the first pixel's centre at (0.5, 0.5); pygmatch's positions have
pixel centres at integers, so ``pixel_to_camera`` (``pygmatch.data.epipolar``) adds 0.5 before applying K⁻¹.

``images.txt``: for each image a line ``IMAGE_ID QW QX QY QZ TX TY TZ CAMERA_ID NAME`` (world-to-camera:
x_cam = R x_world + t, R from the quaternion) followed by its POINTS2D line (``X Y POINT3D_ID`` triples,
possibly empty), as COLMAP writes it; lines starting ``#`` are comments. The evaluation reads the
poses alone; training on a scene (``pygmatch.training.scenes``) also reads the POINTS2D lines
(``read_points2d_text``) and ``points3D.txt`` (``read_points3d_text``). ``points3D.bin``,
``rigs.bin``, ``frames.bin`` are not read (pycolmap 4 writes them; the images' poses are in ``images.bin``).

Every bad input (a missing file, a malformed line, a truncated binary file, an unknown camera model or
image name) is a one-line ``PygmatchError`` naming the file and line (or byte offset).
"""
from __future__ import annotations

import itertools
import os
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import PygmatchError

EMBEDDED_SCENES = Path(__file__).resolve().parents[1] / "datasets" / "pose-mini"  # package data: pygmatch/datasets/pose-mini

# model: (number of parameters, indices of fx, fy, cx, cy in them)
CAMERA_MODELS = {
    "SIMPLE_PINHOLE": (3, (0, 0, 1, 2)),
    "PINHOLE": (4, (0, 1, 2, 3)),
    "SIMPLE_RADIAL": (4, (0, 0, 1, 2)),
    "RADIAL": (5, (0, 0, 1, 2)),
    "OPENCV": (8, (0, 1, 2, 3)),
}
# the model ids of COLMAP's binary files (colmap/src/colmap/sensor/models.h)
CAMERA_MODEL_IDS = {0: "SIMPLE_PINHOLE", 1: "PINHOLE", 2: "SIMPLE_RADIAL", 3: "RADIAL", 4: "OPENCV", 5: "OPENCV_FISHEYE",
                    6: "FULL_OPENCV", 7: "FOV", 8: "SIMPLE_RADIAL_FISHEYE", 9: "RADIAL_FISHEYE", 10: "THIN_PRISM_FISHEYE",
                    11: "RAD_TAN_THIN_PRISM_FISHEYE"}
PAIRS_FILE = "pairs.txt"
PAIR_FILE_COLUMNS = 2 + 2 + 9 + 9 + 16  # name0 name1 rot0 rot1 K0 K1 T_0to1


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


@dataclass(frozen=True)
class PairTruth:
    """The true geometry of a pair: each camera's intrinsics and the pose of camera 1 relative to
    camera 0, x1 = R x0 + t."""

    K0: np.ndarray
    K1: np.ndarray
    R: np.ndarray
    t: np.ndarray


def check_image_size(path, size: tuple[int, int], camera: Camera, model) -> None:
    """One ``PygmatchError`` where the image at ``path`` as read (``size``: width, height) is not the
    size of its ``camera`` in the COLMAP model at ``model``: its intrinsics would be those of other
    pixels (a resized copy, a photograph turned by hand) and every geometry measured on it wrong."""
    if tuple(size) != (camera.width, camera.height):
        raise PygmatchError(f"{path}: the image is {size[0]}x{size[1]}, its camera in {model} {camera.width}x{camera.height}: "
                            "not the photograph the model was made from")


@dataclass
class Scene:
    """A scene: ``images`` by name (a COLMAP model's; empty for a pair file), the image folder, the
    pairs to evaluate (names) and, for a pair file, each pair's ``PairTruth``."""

    name: str
    folder: Path
    image_folder: Path
    images: dict[str, SceneImage]
    pairs: list[tuple[str, str]]
    truths: dict[tuple[str, str], PairTruth] | None = None

    def path(self, name: str) -> Path:
        return self.image_folder / name

    def truth(self, name0: str, name1: str) -> PairTruth:
        """The true ``PairTruth`` of a pair: the pair file's, else from the model's two cameras."""
        if self.truths is not None:
            return self.truths[(name0, name1)]
        image0, image1 = self.images[name0], self.images[name1]
        return PairTruth(image0.K, image1.K, *relative_pose(image0, image1))


def _lines(path: Path):
    """``(line number, stripped text)`` of a text file, a missing / unreadable one a ``PygmatchError``."""
    try:
        text = path.read_bytes().decode("utf-8", errors="replace")
    except FileNotFoundError:
        raise PygmatchError(f"{path}: missing (a COLMAP text model needs cameras.txt and images.txt)") from None
    except OSError as e:
        raise PygmatchError(f"{path}: cannot read ({e.strerror or e})") from None
    return [(n, line.strip()) for n, line in enumerate(text.splitlines(), 1)]


def _records(path: Path):
    """``(line number, tokens)`` of each line of a text file that is neither blank nor a ``#`` comment."""
    for n, line in _lines(path):
        if line and not line.startswith("#"):
            yield n, line.split()


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
    for n, tokens in _records(path):
        if len(tokens) < 4:
            raise PygmatchError(f"{path}:{n}: malformed camera line (expected CAMERA_ID MODEL WIDTH HEIGHT PARAMS...)")
        cam_id, = _numbers(path, n, tokens[:1], "i", "camera")
        model = tokens[1].upper()
        if model not in CAMERA_MODELS:
            raise PygmatchError(f"{path}:{n}: camera model {tokens[1]!r} is not supported (supported: {', '.join(CAMERA_MODELS)})")
        count = CAMERA_MODELS[model][0]
        if len(tokens) != 4 + count:
            raise PygmatchError(f"{path}:{n}: malformed camera line: {model} has {count} parameters, got {len(tokens) - 4}")
        width, height = _numbers(path, n, tokens[2:4], "ii", "camera")
        params = _numbers(path, n, tokens[4:], "f" * count, "camera")
        cameras[cam_id] = _camera(path, f":{n}", cam_id, model, width, height, params, cameras)
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


def _image(path: Path, where: str, image_id: int, q, t, cam_id: int, name: str, cameras: dict, images: dict) -> SceneImage:
    """A checked ``SceneImage`` (``where``: ``:LINE`` of a text file, `` byte N`` of a binary one)."""
    if cam_id not in cameras:
        raise PygmatchError(f"{path}{where}: image {name!r} names camera {cam_id}, which {'cameras.txt' if where.startswith(':') else 'cameras.bin'} "
                            f"does not define")
    try:
        R = quaternion_to_rotation(*q)
    except ValueError:
        raise PygmatchError(f"{path}{where}: malformed image{' line' if where.startswith(':') else ''}: the quaternion is zero") from None
    if name in images:
        raise PygmatchError(f"{path}{where}: image {name!r} is listed twice")
    return SceneImage(image_id, name, cameras[cam_id], R, np.array(t, np.float64))


def _image_records(path: Path):
    """Per image of a COLMAP ``images.txt``: ``(line number, image line tokens, POINTS2D line number,
    POINTS2D tokens)``; the POINTS2D line is checked to be X Y POINT3D_ID triples."""
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
        pn, points = (lines[k][0], lines[k][1]) if k < len(lines) else (n, "")
        k += 1
        points = [] if points.startswith("#") else points.split()
        if len(points) % 3:
            raise PygmatchError(f"{path}:{pn}: malformed POINTS2D line (expected X Y POINT3D_ID triples; every image line "
                                f"is followed by its POINTS2D line, empty or not)")
        yield n, tokens, pn, points


def read_images_text(path: str | os.PathLike, cameras: dict[int, Camera]) -> dict[str, SceneImage]:
    """``{name: SceneImage}`` from a COLMAP ``images.txt`` (each image line followed by its POINTS2D line)."""
    path = Path(path)
    images: dict[str, SceneImage] = {}
    for n, tokens, _, _ in _image_records(path):
        image_id, qw, qx, qy, qz, tx, ty, tz, cam_id = _numbers(path, n, tokens[:9], "i" + "f" * 7 + "i", "image")
        name = " ".join(tokens[9:])
        images[name] = _image(path, f":{n}", image_id, (qw, qx, qy, qz), (tx, ty, tz), cam_id, name, cameras, images)
    if not images:
        raise PygmatchError(f"{path}: no image in the file")
    return images


def read_points2d_text(path: str | os.PathLike) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Per image name of a COLMAP ``images.txt``: its observations that have a 3-D point, ``(xy (M, 2)
    in COLMAP's pixels, the pixel centres at +0.5; POINT3D_IDs (M,))``."""
    path = Path(path)
    out = {}
    for _, tokens, pn, points in _image_records(path):
        values = np.array(_numbers(path, pn, points, "ffi" * (len(points) // 3), "POINTS2D"), np.float64).reshape(-1, 3)
        seen = values[:, 2] >= 0
        out[" ".join(tokens[9:])] = (values[seen, :2], values[seen, 2].astype(np.int64))
    return out


def read_points3d_text(path: str | os.PathLike) -> dict[int, np.ndarray]:
    """``{POINT3D_ID: (3,) world position}`` from a COLMAP ``points3D.txt``."""
    path = Path(path)
    points = {}
    for n, tokens in _records(path):
        if len(tokens) < 4:
            raise PygmatchError(f"{path}:{n}: malformed 3-D point line (expected POINT3D_ID X Y Z ...)")
        point_id, x, y, z = _numbers(path, n, tokens[:4], "ifff", "3-D point")
        points[point_id] = np.array([x, y, z])
    return points


class _Binary:
    """A cursor over a COLMAP binary file; reading past its end is one line naming the file and offset."""

    def __init__(self, path: Path):
        self.path = path
        try:
            self.data = path.read_bytes()
        except FileNotFoundError:
            raise PygmatchError(f"{path}: missing (a COLMAP binary model needs cameras.bin and images.bin)") from None
        except OSError as e:
            raise PygmatchError(f"{path}: cannot read ({e.strerror or e})") from None
        self.offset = 0

    def read(self, fmt: str, what: str) -> tuple:
        size = struct.calcsize("<" + fmt)
        if self.offset + size > len(self.data):
            raise PygmatchError(f"{self.path}: truncated at byte {self.offset} (reading {what}); not a COLMAP binary model file?")
        values = struct.unpack_from("<" + fmt, self.data, self.offset)
        self.offset += size
        return values

    def name(self) -> str:
        end = self.data.find(b"\0", self.offset)
        if end < 0:
            raise PygmatchError(f"{self.path}: truncated at byte {self.offset} (reading an image name); not a COLMAP binary model file?")
        name = self.data[self.offset:end].decode("utf-8", errors="replace")
        self.offset = end + 1
        return name

    def count(self, what: str, item_size: int) -> int:
        """A uint64 count of items of at least ``item_size`` bytes each, checked against the file's size."""
        at = self.offset
        n, = self.read("Q", f"the number of {what}")
        if n * item_size > len(self.data) - self.offset:
            raise PygmatchError(f"{self.path}: byte {at}: {n} {what} cannot fit in the file; not a COLMAP binary model file?")
        return n

    def end(self) -> None:
        if self.offset != len(self.data):
            raise PygmatchError(f"{self.path}: {len(self.data) - self.offset} bytes left over after the last entry; "
                                f"not a COLMAP binary model file?")


def _camera(path, where: str, cam_id: int, model: str, width: int, height: int, params: list, cameras: dict) -> Camera:
    """A checked ``Camera`` (``where``: ``:LINE`` of a text file, `` byte N`` of a binary one)."""
    malformed = "malformed camera line" if where.startswith(":") else "malformed camera"
    ifx, ify, icx, icy = CAMERA_MODELS[model][1]
    if not all(np.isfinite(params)):
        raise PygmatchError(f"{path}{where}: {malformed}: a parameter is not finite")
    fx, fy = params[ifx], params[ify]
    if width < 1 or height < 1 or fx <= 0 or fy <= 0:
        raise PygmatchError(f"{path}{where}: {malformed}: width, height and focal length must be positive")
    if cam_id in cameras:
        raise PygmatchError(f"{path}{where}: camera {cam_id} is defined twice")
    K = np.array([[fx, 0.0, params[icx]], [0.0, fy, params[icy]], [0.0, 0.0, 1.0]])
    return Camera(cam_id, model, width, height, K)


def read_cameras_binary(path: str | os.PathLike) -> dict[int, Camera]:
    """``{camera id: Camera}`` from a COLMAP ``cameras.bin``."""
    path = Path(path)
    f = _Binary(path)
    cameras = {}
    for _ in range(f.count("cameras", 24)):
        at = f.offset
        cam_id, model_id, width, height = f.read("IiQQ", "a camera")
        model = CAMERA_MODEL_IDS.get(model_id)
        if model is None:
            raise PygmatchError(f"{path} byte {at}: camera model id {model_id} is not a COLMAP camera model (supported: "
                                f"{', '.join(CAMERA_MODELS)})")
        if model not in CAMERA_MODELS:
            raise PygmatchError(f"{path} byte {at}: camera model {model!r} is not supported (supported: {', '.join(CAMERA_MODELS)})")
        params = list(f.read("d" * CAMERA_MODELS[model][0], f"camera {cam_id}'s parameters"))
        cameras[cam_id] = _camera(path, f" byte {at}", cam_id, model, width, height, params, cameras)
    f.end()
    if not cameras:
        raise PygmatchError(f"{path}: no camera in the file")
    return cameras


def read_images_binary(path: str | os.PathLike, cameras: dict[int, Camera]) -> dict[str, SceneImage]:
    """``{name: SceneImage}`` from a COLMAP ``images.bin`` (the 2D points are skipped)."""
    path = Path(path)
    f = _Binary(path)
    images: dict[str, SceneImage] = {}
    for _ in range(f.count("images", 69)):
        at = f.offset
        image_id, qw, qx, qy, qz, tx, ty, tz, cam_id = f.read("I7dI", "an image")
        name = f.name()
        if not np.all(np.isfinite([qw, qx, qy, qz, tx, ty, tz])):
            raise PygmatchError(f"{path} byte {at}: image {name!r}: its pose is not finite")
        image = _image(path, f" byte {at}", image_id, (qw, qx, qy, qz), (tx, ty, tz), cam_id, name, cameras, images)
        points = f.count(f"2D points of image {name!r}", 24)  # each x, y (double), point3D id (int64): skipped
        f.offset += 24 * points
        images[name] = image
    f.end()
    if not images:
        raise PygmatchError(f"{path}: no image in the file")
    return images


def model_folder(scene: Path) -> Path:
    """Where a scene's COLMAP model is: ``SCENE/gt/``, else SCENE itself."""
    return scene / "gt" if (scene / "gt").is_dir() else scene


def read_colmap_text(folder: str | os.PathLike) -> dict[str, SceneImage]:
    """``{name: SceneImage}`` of a COLMAP text model folder (``cameras.txt``, ``images.txt``)."""
    folder = Path(folder)
    return read_images_text(folder / "images.txt", read_cameras_text(folder / "cameras.txt"))


def read_colmap_binary(folder: str | os.PathLike) -> dict[str, SceneImage]:
    """``{name: SceneImage}`` of a COLMAP binary model folder (``cameras.bin``, ``images.bin``)."""
    folder = Path(folder)
    return read_images_binary(folder / "images.bin", read_cameras_binary(folder / "cameras.bin"))


def images_file(folder: Path) -> Path:
    """The model's image file: ``images.txt`` when the folder has a text model, else ``images.bin``."""
    text = (folder / "images.txt").is_file() or (folder / "cameras.txt").is_file()
    return folder / ("images.txt" if text or not ((folder / "images.bin").is_file() or (folder / "cameras.bin").is_file()) else "images.bin")


def read_colmap_model(folder: str | os.PathLike) -> dict[str, SceneImage]:
    """``{name: SceneImage}`` of a COLMAP model folder, text (read when there) or binary."""
    folder = Path(folder)
    return read_colmap_text(folder) if images_file(folder).suffix == ".txt" else read_colmap_binary(folder)


def read_pairs(path: str | os.PathLike, names, model: str = "images.txt") -> list[tuple[str, str]]:
    """Pairs ``name0 name1`` per line (further columns ignored; ``#`` comments and blank lines skipped),
    every name checked against ``names`` (the images of ``model``)."""
    path = Path(path)
    pairs = []
    for n, tokens in _records(path):
        if len(tokens) < 2:
            raise PygmatchError(f"{path}:{n}: malformed pair line (expected: name0 name1)")
        a, b = tokens[:2]
        for name in (a, b):
            if name not in names:
                raise PygmatchError(f"{path}:{n}: image {name!r} is not in the scene's {model}")
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
    return any((model_folder(folder) / f"{kind}.{ext}").is_file() for kind in ("images", "cameras") for ext in ("txt", "bin"))


def _check_images(image_folder: Path, pairs, source: Path) -> None:
    for name in sorted({name for pair in pairs for name in pair}):
        if not (image_folder / name).is_file():
            raise PygmatchError(f"{image_folder / name}: missing (named in {source})")


def load_scene(folder: str | os.PathLike, max_pairs: int | None = None) -> Scene:
    """A scene folder (see the module's docstring); ``max_pairs``: only the first N pairs."""
    folder = Path(folder)
    if not folder.is_dir():
        raise PygmatchError(f"{folder}: not a folder")
    model = images_file(model_folder(folder))
    images = read_colmap_model(model_folder(folder))
    image_folder = folder / "images"
    if not image_folder.is_dir():
        raise PygmatchError(f"{folder}: no images/ folder (a scene is SCENE/images/ and SCENE/gt/cameras.txt, images.txt or "
                            f"cameras.bin, images.bin)")
    pairs = read_pairs(folder / PAIRS_FILE, images, model.name) if (folder / PAIRS_FILE).is_file() else all_pairs(images)
    if max_pairs is not None:
        pairs = pairs[:max_pairs]
    _check_images(image_folder, pairs, model)
    return Scene(folder.name, folder, image_folder, images, pairs)


def read_pair_file(path: str | os.PathLike, image_folder: str | os.PathLike | None = None, max_pairs: int | None = None) -> Scene:
    """A scene from a SuperGlue-style pair file (see the module's docstring), its images under
    ``image_folder`` (default: the file's folder); ``max_pairs``: only the first N pairs. The K are
    shifted by +0.5 px to COLMAP's pixel convention; ``rot0`` / ``rot1`` are not applied."""
    path = Path(path)
    image_folder = path.parent if image_folder is None else Path(image_folder)
    if not image_folder.is_dir():
        raise PygmatchError(f"{image_folder}: not a folder (the images of {path})")
    shift = np.array([[1.0, 0, 0.5], [0, 1, 0.5], [0, 0, 1]])
    truths: dict[tuple[str, str], PairTruth] = {}
    for n, tokens in _records(path):
        if len(tokens) != PAIR_FILE_COLUMNS:
            raise PygmatchError(f"{path}:{n}: malformed pair line: expected {PAIR_FILE_COLUMNS} columns (name0 name1 rot0 rot1, K0 "
                                f"and K1 9 values each, T_0to1 16), got {len(tokens)}")
        a, b = tokens[:2]
        _numbers(path, n, tokens[2:4], "ii", "pair")
        values = np.array(_numbers(path, n, tokens[4:], "f" * 34, "pair"))
        K0, K1, T = values[:9].reshape(3, 3), values[9:18].reshape(3, 3), values[18:].reshape(4, 4)
        for which, K in (("K0", K0), ("K1", K1)):
            if not (K[0, 0] > 0 and K[1, 1] > 0 and np.allclose(K[2], [0, 0, 1]) and K[1, 0] == 0):
                raise PygmatchError(f"{path}:{n}: {which} is not a camera matrix [[fx, s, cx], [0, fy, cy], [0, 0, 1]] with fx, fy > 0")
        R = T[:3, :3]
        if not np.allclose(R @ R.T, np.eye(3), atol=1e-4) or np.linalg.det(R) < 0 or not np.allclose(T[3], [0, 0, 0, 1]):
            raise PygmatchError(f"{path}:{n}: T_0to1 is not a rigid motion [[R, t], [0 0 0 1]] with R a rotation")
        if a == b:
            raise PygmatchError(f"{path}:{n}: a pair of an image with itself ({a!r})")
        if (a, b) in truths:
            raise PygmatchError(f"{path}:{n}: the pair {a} {b} is listed twice")
        truths[(a, b)] = PairTruth(shift @ K0, shift @ K1, R, T[:3, 3].copy())
    if not truths:
        raise PygmatchError(f"{path}: no pair in the file")
    pairs = list(truths)[:max_pairs]
    _check_images(image_folder, pairs, path)
    return Scene(path.stem, path.parent, image_folder, {}, pairs, {p: truths[p] for p in pairs})


def load_scenes(data: str | os.PathLike, max_pairs_per_scene: int | None = None, image_folder: str | os.PathLike | None = None) -> list[Scene]:
    """One scene folder, a folder of scene folders (sorted by name; folders without a model skipped),
    or a SuperGlue-style pair file (``read_pair_file``, its images under ``image_folder``)."""
    data = Path(data)
    if data.is_file():
        return [read_pair_file(data, image_folder, max_pairs_per_scene)]
    if image_folder is not None:
        raise PygmatchError(f"{data}: an image folder goes with a pair file; a scene folder has its own images/")
    if not data.is_dir():
        raise PygmatchError(f"{data}: not a folder (give a scene folder or a folder of scene folders) nor a pair file")
    if is_scene(data):
        return [load_scene(data, max_pairs_per_scene)]
    folders = sorted(p for p in data.iterdir() if p.is_dir() and is_scene(p))
    if not folders:
        raise PygmatchError(f"{data}: no scene (a scene folder holds images/ and gt/cameras.txt, gt/images.txt or the binary "
                            f"cameras.bin, images.bin)")
    return [load_scene(p, max_pairs_per_scene) for p in folders]


def relative_pose(image0: SceneImage, image1: SceneImage) -> tuple[np.ndarray, np.ndarray]:
    """The true pose of camera 1 relative to camera 0: x1 = R x0 + t (camera coordinates)."""
    R = image1.R @ image0.R.T
    return R, image1.t - R @ image0.t
