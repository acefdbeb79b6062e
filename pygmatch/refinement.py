"""Sub-pixel refinement of matched positions: the last stage, after matching and verification.

Why. SIFT keypoints of the two images are detected independently, so even a correct match is
typically 0.3–2 px off the true correspondence, and RANSAC's 3 px refit averages those errors into
the homography. Moving each match's image-1 position to where image 0's patch around it lands
raises RANSAC AUC@3 more than any matcher change measured in this project (for every matcher).

How (``PatchRefiner``, classical). For each match ``p0 -> p1``:

1. the linear part ``L`` of the affine motion around it is fitted to its neighbouring matches
   (``verifier.fit_local_motion``, robust to the wrong ones);
2. a template: image 0 sampled around ``p0`` through ``L⁻¹`` on a (2·half+1)² grid, so it looks as
   the patch should look in image 1;
3. a window: image 1 around ``p1``, ``search`` pixels wider on each side;
4. normalised cross-correlation of the template at every integer shift of the window, the best
   shift and a parabola through the peak for the sub-pixel part.

A match is left where it is when its patch is flat, its best correlation is below ``min_ncc``, the
peak lies on the search border, or its patches leave an image. ``LearnedRefiner``
(``refinement_model.py``) replaces step 4 by a small trained network on the same patches.

Inputs / outputs: ``refiner(image0, image1, points0, points1)`` with two gray images (H, W) uint8
or float and the matched positions (K, 2) in pixels → refined ``points1`` (K, 2) float64.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from .verifier import fit_local_motion

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
    if image.ndim != 2:
        raise ValueError(f"refinement needs gray images (H, W), got shape {image.shape}")
    return torch.from_numpy(np.ascontiguousarray(image, np.float32))[None, None]


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


class PatchRefiner:
    """Classical refinement by normalised cross-correlation (see the module's docstring).

    ``half``: template half-size (15×15 at 7); ``search``: ± pixels searched; ``min_ncc``: the
    least correlation at which a match is moved."""

    def __init__(self, half: int = 7, search: int = 3, min_ncc: float = 0.8, min_contrast: float = 2.0):
        if half < 1 or search < 1 or not -1.0 <= min_ncc <= 1.0:
            raise ValueError("PatchRefiner: half and search must be >= 1 and min_ncc in [-1, 1]")
        self.half, self.search, self.min_ncc, self.min_contrast = half, search, min_ncc, min_contrast

    def patches(self, image0, image1, points0: np.ndarray, points1: np.ndarray) -> tuple[torch.Tensor, torch.Tensor, np.ndarray]:
        """``(templates (K, t, t), windows (K, w, w), usable (K,) bool)``: image 0's patches warped
        into image 1's frame around ``points1`` and image 1's search windows; usable: both inside
        their images and a local motion that can be inverted."""
        points0, points1 = np.asarray(points0, np.float64), np.asarray(points1, np.float64)
        maps = local_linear_maps(points0, points1)
        invertible = np.abs(np.linalg.det(maps)) > 1e-6
        inverse = np.linalg.inv(np.where(invertible[:, None, None], maps, np.eye(2)))
        templates, inside0 = sample_patches(as_image_tensor(image0), points0, inverse, self.half)
        windows, inside1 = sample_patches(as_image_tensor(image1), points1, None, self.half + self.search)
        return templates, windows, invertible & inside0 & inside1

    @torch.no_grad()
    def __call__(self, image0, image1, points0: np.ndarray, points1: np.ndarray) -> np.ndarray:
        points1 = np.array(points1, np.float64).reshape(-1, 2)
        if len(points1) == 0:
            return points1
        templates, windows, usable = self.patches(image0, image1, points0, points1)
        offset, peak, interior = parabola_peak(normalized_cross_correlation(templates, windows))
        textured = templates.reshape(len(points1), -1).std(1).numpy() >= self.min_contrast
        move = usable & interior & textured & (peak >= self.min_ncc)
        points1[move] += offset[move]
        return points1

    def __repr__(self) -> str:
        return f"{type(self).__name__}(half={self.half}, search={self.search}, min_ncc={self.min_ncc})"
