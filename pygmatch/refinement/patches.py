"""What both refiners work on: the local linear motion around each match, the patches cut around
the matched positions (image 0's through that motion, image 1's window wider by the search
range), their normalised cross-correlation and its sub-pixel peak, and ``PatchStage``: passes of
cutting patches and moving each usable match by a refiner's ``offsets``."""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from ..data.geometry import fit_local_motion
from ..errors import PygmatchError

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
    """Bilinear patches (K, 2·half+1, 2·half+1) of ``image`` (1, 1, H, W), zero outside it: pixel
    ``u`` (offset from the patch centre, in the patch's frame) samples ``centers + maps @ u``
    (``maps`` None: the identity). Also returns which patches lie wholly inside the image (K,) bool."""
    h, w = image.shape[-2:]
    size = 2 * half + 1
    # a patch's grid, affine in the image, lies inside it when its four corners do
    corners = np.array([[-half, -half], [half, -half], [-half, half], [half, half]], np.float64)
    reach = corners[None] if maps is None else maps[:, None, :, 0] * corners[:, None, 0] + maps[:, None, :, 1] * corners[:, None, 1]
    where = centers[:, None, :] + reach
    inside = ((where >= 0) & (where <= np.array([w - 1, h - 1]))).all(axis=(1, 2))
    if maps is None:
        return translated_patches(image, centers, half), inside
    offsets = np.arange(-half, half + 1, dtype=np.float64)
    u = np.stack(np.meshgrid(offsets, offsets, indexing="xy"), -1).reshape(-1, 2)  # (P, 2) as (x, y)
    # maps @ u in grid_sample's normalised units, written out (the same two products and one sum as
    # np.einsum("kij,pj->kpi"), which loops slowly), in float64 torch: a third of numpy's time
    scale = 2.0 / np.array([w - 1, h - 1])
    c, m, steps = torch.from_numpy(centers * scale - 1.0)[:, None, :], torch.from_numpy(maps * scale[:, None]), torch.from_numpy(u)
    grid = (c + m[:, None, :, 0] * steps[:, None, 0] + m[:, None, :, 1] * steps[:, None, 1]).float()
    patches = F.grid_sample(image.expand(len(centers), -1, -1, -1), grid.view(len(centers), size, size, 2),
                            mode="bilinear", padding_mode="zeros", align_corners=True)
    return patches[:, 0], inside


def translated_patches(image: torch.Tensor, centers: np.ndarray, half: int) -> torch.Tensor:
    """``sample_patches`` through the identity: every pixel of a patch shares its centre's
    sub-pixel part, so each patch is one (2·half+2)² block of whole pixels and two linear blends
    (a third of ``grid_sample``'s time on thousands of windows, and exact in the positions, which
    ``grid_sample`` takes in float32 normalised units)."""
    h, w = image.shape[-2:]
    size = 2 * half + 1
    whole = np.floor(centers)
    fraction = torch.from_numpy(centers - whole).float()
    steps = np.arange(size + 1)
    xs, ys = whole[:, 0, None].astype(np.int64) - half + steps, whole[:, 1, None].astype(np.int64) - half + steps  # (K, size + 1)
    within = torch.from_numpy(((ys >= 0) & (ys < h))[:, :, None] & ((xs >= 0) & (xs < w))[:, None, :])
    index = torch.from_numpy(np.clip(ys, 0, h - 1)[:, :, None] * w + np.clip(xs, 0, w - 1)[:, None, :])
    block = image.reshape(-1)[index] * within  # (K, size + 1, size + 1), zero outside the image
    fx, fy = fraction[:, 0, None, None], fraction[:, 1, None, None]
    rows = block[:, :, :-1] * (1 - fx) + block[:, :, 1:] * fx
    return rows[:, :-1] * (1 - fy) + rows[:, 1:] * fy


def normalized_cross_correlation(templates: torch.Tensor, windows: torch.Tensor) -> torch.Tensor:
    """(K, S, S) correlation coefficient of each template (K, t, t) with its window (K, w, w) at
    each of the S = w − t + 1 integer shifts per axis (OpenCV's ``TM_CCOEFF_NORMED``)."""
    k, t = templates.shape[0], templates.shape[-1]
    tc = templates.reshape(k, -1)
    tc = tc - tc.mean(1, keepdim=True)
    tc = tc / tc.norm(dim=1, keepdim=True).clamp_min(1e-6)
    # Σ (w − mean w)·t = Σ w·t for a zero-mean t: one grouped convolution gives every numerator,
    # box sums of w and w² every window norm, read off an integral image in float64 (exact for gray
    # levels, and faster than pooling each box)
    numerator = F.conv2d(windows[None], tc.view(k, 1, t, t), groups=k)[0]
    integral = F.pad(torch.stack([windows, windows**2], 1).double().cumsum(2).cumsum(3), (1, 0, 1, 0))
    box = integral[..., t:, t:] - integral[..., :-t, t:] - integral[..., t:, :-t] + integral[..., :-t, :-t]  # (K, 2, S, S)
    sums, squares = box[:, 0], box[:, 1]
    return numerator / (squares - sums**2 / (t * t)).clamp_min(1e-6).sqrt().to(numerator.dtype)


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


def match_patches(image0, image1, points0: np.ndarray, points1: np.ndarray, half: int, search: int, maps: np.ndarray | None = None
                  ) -> tuple[torch.Tensor, torch.Tensor, np.ndarray]:
    """``(templates (K, t, t), windows (K, w, w), usable (K,) bool)`` with t = 2·half+1 and
    w = t + 2·search: image 0's patches warped into image 1's frame (through the inverse local
    motion: ``maps`` (K, 2, 2), image 0 → image 1, or else ``local_linear_maps``) and image 1's
    search windows around ``points1``; usable: both inside their images and a local motion that
    can be inverted."""
    points0, points1 = np.asarray(points0, np.float64), np.asarray(points1, np.float64)
    maps = local_linear_maps(points0, points1) if maps is None else np.asarray(maps, np.float64)
    invertible = np.abs(np.linalg.det(maps)) > 1e-6
    inverse = np.linalg.inv(np.where(invertible[:, None, None], maps, np.eye(2)))
    templates, inside0 = sample_patches(as_image_tensor(image0), points0, inverse, half)
    windows, inside1 = sample_patches(as_image_tensor(image1), points1, None, half + search)
    return templates, windows, invertible & inside0 & inside1


def exact_matches(image0, image1, points0: np.ndarray, points1: np.ndarray, half: int) -> np.ndarray:
    """(K,) bool: image 1's (2·half+1)² patch around ``points1`` holds the same pixels as image 0's
    around ``points0`` (to float32 rounding; both inside their images): the match is perfect as it is."""
    same = np.zeros(len(points0), bool)
    if len(points0) == 0:
        return same
    image0, image1 = as_image_tensor(image0), as_image_tensor(image1)
    # a patch with the same pixels has the same centre (the bound below is the widest the whole patches'
    # test allows): only matches whose centres agree are cut whole, few but for identical images
    bound = 1e-5 * (1.0 + 1.001 * image0.abs().max().item())  # 1.001: a blend's rounding above the largest pixel
    centres = (translated_patches(image0, points0, 0).double() - translated_patches(image1, points1, 0).double()).abs().reshape(-1)
    candidates = np.nonzero((centres <= bound).numpy())[0]
    if len(candidates) == 0:
        return same
    a, inside0 = sample_patches(image0, points0[candidates], None, half)
    b, inside1 = sample_patches(image1, points1[candidates], None, half)
    a, b = a.reshape(len(a), -1).double(), b.reshape(len(b), -1).double()
    same[candidates] = ((a - b).abs().amax(1) <= 1e-5 * (1.0 + a.abs().amax(1))).numpy() & inside0 & inside1
    return same


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
    def refine(self, image0, image1, points0: np.ndarray, points1: np.ndarray, maps: np.ndarray | None = None) -> np.ndarray:
        """Refined ``points1`` (K, 2) float64; a match whose patches leave an image stays, and so
        does one whose two patches hold the same pixels (``exact_matches``). ``maps`` (K, 2, 2):
        the local linear motion image 0 → image 1 of each match when known (e.g. from the views
        its keypoints were found on, ``pygmatch.data.views.local_affine``); else it is fitted to
        the neighbouring matches."""
        points0, points1 = check_points(points0, points1)
        if maps is not None and np.shape(maps) != (len(points0), 2, 2):
            raise PygmatchError(f"refine: maps must be (K, 2, 2), one per match, got shape {np.shape(maps)} for {len(points0)} matches")
        as_image_tensor(image0), as_image_tensor(image1)  # bad images: one line, also without matches
        if len(points1) == 0:
            return points1
        moving = ~exact_matches(image0, image1, points0, points1, self.half)
        for _ in range(self.iterations if moving.any() else 0):
            templates, windows, usable = match_patches(image0, image1, points0, points1, self.half, self.search, maps)
            move = usable & moving
            if move.any():
                chosen = torch.from_numpy(np.nonzero(move)[0])
                points1[move] += self.offsets(templates[chosen], windows[chosen])
        return points1
