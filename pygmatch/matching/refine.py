"""Sub-pixel refinement of matched positions: the last stage, after matching and verification.

Why. SIFT keypoints of the two images are detected independently, so even a correct match is
typically 0.3–2 px off the true correspondence, and RANSAC's 3 px refit averages those errors into
the homography. Moving each match's image-1 position to where image 0's patch around it lands
raises RANSAC AUC@3 more than any matcher change measured in this project (for every matcher).

How (``PatchRefiner``, classical). For each match ``p0 -> p1``:

1. the linear part ``L`` of the affine motion around it is fitted to its neighbouring matches
   (``pygmatch.data.geometry.fit_local_motion``, robust to the wrong ones);
2. a template: image 0 sampled around ``p0`` through ``L⁻¹`` on a (2·half+1)² grid, so it looks as
   the patch should look in image 1;
3. a window: image 1 around ``p1``, ``search`` pixels wider on each side;
4. normalised cross-correlation of the template at every integer shift of the window, the best
   shift and a parabola through the peak for the sub-pixel part.

A match is left where it is when its patch is flat, its best correlation is below ``min_ncc``, the
peak lies on the search border, or its patches leave an image. ``LearnedRefiner`` (below)
replaces step 4 by a small network trained on bank pairs, on the same patches.

Both leave a match exactly where it is when image 1 around ``p1`` holds the same pixels as image 0
around ``p0`` (``exact_matches``; two identical images, say): the match is already perfect, and
a sub-pixel peak estimate would only move it (the parabola through an asymmetric correlation
peak, the learned soft arg-max and the local motion's fit are each a little biased: on identical
photographs they moved perfect matches by 0.05 px on average and up to 0.9 px).

Inputs / outputs: ``refiner.refine(image0, image1, points0, points1)`` with two gray images (H, W) uint8
or float and the matched positions (K, 2) in pixels → refined ``points1`` (K, 2) float64. Positions
that are not finite, or ``points0`` and ``points1`` of different lengths, are one ``PygmatchError``.
"""
from __future__ import annotations

import functools
import os
from dataclasses import asdict, dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..data.geometry import fit_local_motion
from ..errors import PygmatchError
from ..weights import WEIGHTS_DIR, config_from_dict, read_model_file

NEIGHBOURS = 12  # matches the local motion is fitted to


def local_linear_maps(points0: np.ndarray, points1: np.ndarray, k: int = NEIGHBOURS) -> np.ndarray:
    """(K, 2, 2): the linear part of the affine motion image 0 → image 1 around each match, fitted
    to it and its ``k`` nearest matches (identity for fewer than 4 matches)."""
    n = len(points0)
    if n < 4:
        return np.tile(np.eye(2), (n, 1, 1))
    A, _, _ = fit_local_motion(points0, points1, np.arange(n), k, exclude_self=False)
    return A[:, :2, :].transpose(0, 2, 1) / 50.0


def as_image_tensor(image: np.ndarray) -> torch.Tensor:
    """(1, 1, H, W) float32 from a gray image (uint8 or float)."""
    image = np.asarray(image)
    if image.ndim != 2 or min(image.shape) < 1:
        raise PygmatchError(f"refinement needs gray images (H, W), got an array of shape {image.shape}")
    if not (np.issubdtype(image.dtype, np.number) or image.dtype == bool):
        raise PygmatchError(f"refinement needs gray images of numbers, got an array of {image.dtype}")
    return torch.from_numpy(np.ascontiguousarray(image, np.float32))[None, None]


def check_points(points0, points1) -> tuple[np.ndarray, np.ndarray]:
    """The matched positions as two (K, 2) float64 arrays, or one ``PygmatchError`` saying what is
    wrong with them (not (K, 2) numbers, not finite, not one row per match in both)."""
    out = []
    for name, points in (("points0", points0), ("points1", points1)):
        try:
            a = np.array(points, np.float64)
        except (TypeError, ValueError):
            raise PygmatchError(f"refine: {name} must be a (K, 2) array of pixel positions, got {type(points).__name__}") from None
        if a.size == 0:
            a = a.reshape(0, 2)
        if a.ndim != 2 or a.shape[1] != 2:
            raise PygmatchError(f"refine: {name} must be a (K, 2) array of pixel positions, got shape {a.shape}")
        bad = np.nonzero(~np.isfinite(a).all(1))[0]
        if len(bad):
            raise PygmatchError(f"refine: {name} has {len(bad)} position(s) that are NaN or infinite (the first: row {bad[0]}, "
                                f"{a[bad[0]].tolist()})")
        out.append(a)
    if len(out[0]) != len(out[1]):
        raise PygmatchError(f"refine: points0 and points1 must have one row per match, got {len(out[0])} and {len(out[1])} rows")
    return out[0], out[1]


def sample_patches(image: torch.Tensor, centers: np.ndarray, maps: np.ndarray | None, half: int) -> tuple[torch.Tensor, np.ndarray]:
    """Bilinear patches (K, 2·half+1, 2·half+1) of ``image`` (1, 1, H, W): pixel ``u`` (offset from
    the patch centre, in the patch's frame) samples ``centers + maps @ u`` (``maps`` None: the
    identity). Also returns which patches lie wholly inside the image (K,) bool."""
    h, w = image.shape[-2:]
    offsets = np.arange(-half, half + 1, dtype=np.float64)
    u = np.stack(np.meshgrid(offsets, offsets, indexing="xy"), -1).reshape(-1, 2)  # (P, 2) as (x, y)
    where = centers[:, None, :] + (u[None] if maps is None else np.einsum("kij,pj->kpi", maps, u))
    inside = ((where >= 0) & (where <= np.array([w - 1, h - 1]))).all(axis=(1, 2))
    grid = torch.from_numpy(where * (2.0 / np.array([w - 1, h - 1])) - 1.0).float()
    size = 2 * half + 1
    patches = F.grid_sample(image.expand(len(centers), -1, -1, -1), grid.view(len(centers), size, size, 2),
                            mode="bilinear", padding_mode="zeros", align_corners=True)
    return patches[:, 0], inside


def normalized_cross_correlation(templates: torch.Tensor, windows: torch.Tensor) -> torch.Tensor:
    """(K, S, S) correlation coefficient of each template (K, t, t) with its window (K, w, w) at
    each of the S = w − t + 1 integer shifts per axis (OpenCV's ``TM_CCOEFF_NORMED``)."""
    k, t = templates.shape[0], templates.shape[-1]
    tc = templates.reshape(k, -1)
    tc = tc - tc.mean(1, keepdim=True)
    tc = tc / tc.norm(dim=1, keepdim=True).clamp_min(1e-6)
    # Σ (w − mean w)·t = Σ w·t for a zero-mean t: one grouped convolution gives every numerator,
    # box sums of w and w² every window norm.
    numerator = F.conv2d(windows[None], tc.view(k, 1, t, t), groups=k)[0]
    count = t * t
    sums = F.avg_pool2d(windows[:, None], t, stride=1)[:, 0] * count
    squares = F.avg_pool2d(windows[:, None] ** 2, t, stride=1)[:, 0] * count
    return numerator / (squares - sums**2 / count).clamp_min(1e-6).sqrt()


def parabola_peak(r: torch.Tensor) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sub-pixel peaks of correlation maps (K, S, S): ``(offset (K, 2) as (x, y) from the map's
    centre, peak value (K,), interior (K,) bool: the integer peak is not on the border)."""
    k, s, _ = r.shape
    flat = r.reshape(k, -1).argmax(1)
    y, x = (flat // s).numpy(), (flat % s).numpy()
    r = r.numpy().astype(np.float64)
    peak = r[np.arange(k), y, x]
    interior = (x > 0) & (x < s - 1) & (y > 0) & (y < s - 1)
    xc, yc = np.clip(x, 1, s - 2), np.clip(y, 1, s - 2)
    rows = np.arange(k)

    def vertex(minus, centre, plus):
        curvature = minus - 2 * centre + plus
        return np.where(curvature < -1e-9, 0.5 * (minus - plus) / np.where(curvature < -1e-9, curvature, -1.0), 0.0)

    dx = vertex(r[rows, yc, xc - 1], r[rows, yc, xc], r[rows, yc, xc + 1])
    dy = vertex(r[rows, yc - 1, xc], r[rows, yc, xc], r[rows, yc + 1, xc])
    centre = (s - 1) / 2
    return np.stack([x + dx - centre, y + dy - centre], 1), peak, interior


def match_patches(image0, image1, points0: np.ndarray, points1: np.ndarray, half: int, search: int
                  ) -> tuple[torch.Tensor, torch.Tensor, np.ndarray]:
    """``(templates (K, t, t), windows (K, w, w), usable (K,) bool)`` with t = 2·half+1 and
    w = t + 2·search: image 0's patches warped into image 1's frame (through the inverse local
    motion) and image 1's search windows around ``points1``; usable: both inside their images and
    a local motion that can be inverted."""
    points0, points1 = np.asarray(points0, np.float64), np.asarray(points1, np.float64)
    maps = local_linear_maps(points0, points1)
    invertible = np.abs(np.linalg.det(maps)) > 1e-6
    inverse = np.linalg.inv(np.where(invertible[:, None, None], maps, np.eye(2)))
    templates, inside0 = sample_patches(as_image_tensor(image0), points0, inverse, half)
    windows, inside1 = sample_patches(as_image_tensor(image1), points1, None, half + search)
    return templates, windows, invertible & inside0 & inside1


def exact_matches(image0, image1, points0: np.ndarray, points1: np.ndarray, half: int) -> np.ndarray:
    """(K,) bool: image 1's (2·half+1)² patch around ``points1`` holds the same pixels as image 0's
    around ``points0`` (to float32 rounding; both inside their images): the match is perfect as it is."""
    if len(points0) == 0:
        return np.zeros(0, bool)
    a, inside0 = sample_patches(as_image_tensor(image0), points0, None, half)
    b, inside1 = sample_patches(as_image_tensor(image1), points1, None, half)
    a, b = a.reshape(len(a), -1).double(), b.reshape(len(b), -1).double()
    same = ((a - b).abs().amax(1) <= 1e-5 * (1.0 + a.abs().amax(1))).numpy()
    return same & inside0 & inside1


class PatchStage:
    """What both refiners share: ``iterations`` passes of cutting the patches around the current
    positions and moving each usable match by the refiner's ``offsets`` of its patches."""

    half: int
    search: int
    iterations: int

    def offsets(self, templates: torch.Tensor, windows: torch.Tensor) -> np.ndarray:
        """(K, 2) float64: how far to move each match (0 where it should stay)."""
        raise NotImplementedError

    @torch.no_grad()
    def refine(self, image0, image1, points0: np.ndarray, points1: np.ndarray) -> np.ndarray:
        """Refined ``points1`` (K, 2) float64; a match whose patches leave an image stays, and so
        does one whose two patches hold the same pixels (``exact_matches``)."""
        points0, points1 = check_points(points0, points1)
        as_image_tensor(image0), as_image_tensor(image1)  # bad images: one line, also without matches
        if len(points1) == 0:
            return points1
        moving = ~exact_matches(image0, image1, points0, points1, self.half)
        for _ in range(self.iterations if moving.any() else 0):
            templates, windows, usable = match_patches(image0, image1, points0, points1, self.half, self.search)
            move = usable & moving
            if move.any():
                chosen = torch.from_numpy(np.nonzero(move)[0])
                points1[move] += self.offsets(templates[chosen], windows[chosen])
        return points1


class PatchRefiner(PatchStage):
    """Classical refinement by normalised cross-correlation (see the module's docstring).

    ``half``: template half-size (15×15 at 7); ``search``: ± pixels searched; ``min_ncc``: the
    least correlation at which a match is moved; ``iterations``: passes, each with the local motion
    fitted to the previous pass's positions (a second pass raised held-out RANSAC AUC@3 by ~1 point
    at both difficulties; the template then follows the motion more exactly)."""

    def __init__(self, half: int = 7, search: int = 3, min_ncc: float = 0.8, iterations: int = 2, min_contrast: float = 2.0):
        if half < 1 or search < 1 or iterations < 1 or not -1.0 <= min_ncc <= 1.0:
            raise PygmatchError("PatchRefiner: half, search and iterations must be >= 1 and min_ncc in [-1, 1]")
        self.half, self.search, self.min_ncc, self.iterations, self.min_contrast = half, search, min_ncc, iterations, min_contrast

    def offsets(self, templates: torch.Tensor, windows: torch.Tensor) -> np.ndarray:
        offset, peak, interior = parabola_peak(normalized_cross_correlation(templates, windows))
        textured = templates.reshape(len(templates), -1).std(1).numpy() >= self.min_contrast
        return np.where((interior & textured & (peak >= self.min_ncc))[:, None], offset, 0.0)

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(half={self.half}, search={self.search}, min_ncc={self.min_ncc}, "
                f"iterations={self.iterations})")


FORMAT, VERSION = "pygmatch-refiner", 1
WEIGHTS = WEIGHTS_DIR / "refiner.pt"


@dataclass
class RefinerConfig:
    half: int = 7  # template half-size, as PatchRefiner's
    search: int = 3  # ± pixels searched
    channels: int = 8  # of the patch features
    layers: int = 2  # 3×3 convolutions of the patch features
    hidden: int = 32  # channels of the shift scorer
    iterations: int = 1  # inference: passes (see PatchRefiner)

    def __post_init__(self):
        if min(self.half, self.search, self.channels, self.layers, self.hidden, self.iterations) < 1:
            raise PygmatchError(f"refiner: every size must be >= 1, got {asdict(self)}")
        if 2 * self.layers >= 2 * self.half + 1:
            raise PygmatchError(f"refiner: {self.layers} unpadded 3x3 layers leave nothing of a {2 * self.half + 1}-pixel template")


def standardize(patches: torch.Tensor) -> torch.Tensor:
    """Each patch to zero mean and unit deviation: brightness and contrast changes drop out."""
    flat = patches.reshape(len(patches), -1)
    mean, std = flat.mean(1), flat.std(1).clamp_min(1.0)  # gray levels 0-255: below 1 is flat
    return (patches - mean[:, None, None]) / std[:, None, None]


class LearnedRefiner(nn.Module, PatchStage):
    """Step 4 of the module's docstring learned: both patches pass a small shared CNN, the template's
    features are correlated with the window's at every integer shift, a small CNN scores every shift
    from that map and the plain NCC map, and the offset is the soft arg-max of the scores. Trained on bank pairs, whose true offsets
    are exact (``python -m train.refiner``).

    ``forward``: templates (K, t, t), windows (K, w, w) gray levels → offsets (K, 2) in pixels,
    (x, y), from ``points1`` to the refined position."""

    def __init__(self, cfg: RefinerConfig | None = None):
        super().__init__()
        self.cfg = cfg = cfg or RefinerConfig()
        convs: list[nn.Module] = []
        for i in range(cfg.layers):
            convs += [nn.Conv2d(1 if i == 0 else cfg.channels, cfg.channels, 3), nn.GELU()]
        # unpadded ("valid") convolutions: each layer trims a pixel per side, so the template's
        # features cover its centre with context from the whole patch, and the correlation costs
        # (t − 2·layers)² taps instead of t² (the refiner runs on every match of a pair)
        self.features = nn.Sequential(*convs[:-1])  # linear last layer: correlations may be negative
        # scores of every shift from the learned and the NCC map around it; a soft arg-max of
        # them is the offset (translation-equivariant, and sub-pixel by weighting neighbours)
        self.score = nn.Sequential(nn.Conv2d(2, cfg.hidden, 3, padding=1), nn.GELU(), nn.Conv2d(cfg.hidden, 1, 3, padding=1))
        shifts = torch.arange(-cfg.search, cfg.search + 1, dtype=torch.float32)
        self.register_buffer("shifts", torch.stack(torch.meshgrid(shifts, shifts, indexing="xy"), -1).reshape(-1, 2), persistent=False)

    def forward(self, templates: torch.Tensor, windows: torch.Tensor) -> torch.Tensor:
        k = len(templates)
        if k == 0:
            return templates.new_zeros(0, 2)
        ft = self.features(standardize(templates)[:, None])  # (K, C, t', t'), t' = t − 2·layers
        fw = self.features(standardize(windows)[:, None])  # (K, C, w', w'), w' − t' + 1 = S
        c, t, w = ft.shape[1], ft.shape[-1], fw.shape[-1]
        learned = F.conv2d(fw.reshape(1, k * c, w, w), ft, groups=k)[0] / (c * t * t)  # (K, S, S)
        ncc = normalized_cross_correlation(templates, windows)
        scores = self.score(torch.stack([learned, ncc], 1)).reshape(k, -1)
        return scores.softmax(1) @ self.shifts

    @property
    def half(self) -> int:
        return self.cfg.half

    @property
    def search(self) -> int:
        return self.cfg.search

    @property
    def iterations(self) -> int:
        return self.cfg.iterations

    @torch.no_grad()
    def offsets(self, templates: torch.Tensor, windows: torch.Tensor, chunk: int = 2048) -> np.ndarray:
        if len(templates) == 0:
            return np.zeros((0, 2))
        device = self.shifts.device  # patches are cut on the CPU; the network may sit on a GPU
        # a soft arg-max stays within the search range: no offset needs checking
        return torch.cat([self(a.to(device).float(), b.to(device).float()).cpu()
                          for a, b in zip(templates.split(chunk), windows.split(chunk))]).double().numpy()


    def save(self, path: str | os.PathLike, **extra) -> None:
        torch.save({"format": FORMAT, "version": VERSION, "config": asdict(self.cfg), "state_dict": self.state_dict(), **extra}, path)

    @classmethod
    def load(cls, path: str | os.PathLike = "default", **overrides) -> "LearnedRefiner":
        """``"default"`` (the shipped weights) or a file written by ``save`` / ``train.refiner``;
        ``overrides``: inference options (``iterations``)."""
        _, ckpt = read_model_file(path, WEIGHTS, FORMAT, VERSION, "refiner")
        model = cls(config_from_dict(RefinerConfig, ckpt["config"], "refiner", overrides, ("iterations",)))
        model.load_state_dict(ckpt["state_dict"])
        return model.eval()


REFINEMENTS = ("refiner", "ncc")  # the names ``load_refiner`` (and eval's ``METHOD+NAME``) know


def load_refiner(name: str | os.PathLike) -> PatchStage:
    """A refiner (``refine(image0, image1, points0, points1) -> points1``) by name: ``"refiner"``
    (the shipped ``LearnedRefiner``), ``"ncc"`` (``PatchRefiner``) or the path of a ``train.refiner`` file.
    Loaded once per name (a file: once per version of it on disk)."""
    name = str(name)
    version = os.stat(name).st_mtime_ns if name not in REFINEMENTS and os.path.isfile(name) else None
    return _load_refiner(name, version)


@functools.lru_cache(maxsize=8)
def _load_refiner(name: str, version: int | None):
    if name == "ncc":
        return PatchRefiner()
    return LearnedRefiner.load("default" if name == "refiner" else name)
