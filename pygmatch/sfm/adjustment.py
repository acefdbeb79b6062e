"""How refinement enters. COLMAP takes one position per keypoint and image, but a refiner moves a
matched keypoint once per pair: in pair (i, j) it says where keypoint a of image i lands in image j
(``d``: the refined position minus keypoint b's). ``adjust_keypoints`` turns those per-pair offsets
into one offset ``u`` per keypoint, as Pixel-Perfect SfM's keypoint adjustment does with features:
every match asks ``u_b − L·u_a = d`` (``L``: the local linear motion i → j around the match, as the
refiner used it), solved by linear least squares over all keypoints at once with a small damping
toward 0 (which fixes the free shift of a whole track: a two-view track moves each end half-way).
The solve is first reweighted (Cauchy weights) so that one wrong refined position does not pull
its whole track; matches whose equation then stays violated by more than ``max_residual`` pixels
(the refiner and the other matches of the track disagree) are dropped and the rest solved again; a
keypoint none of whose matches survive keeps its detected position. Methods without a refiner write
the detected keypoints.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..refinement import local_linear_maps
from .collection import PairMatches


@dataclass
class Adjustment:
    """``keypoints``: one (N, 2) array per image, adjusted; ``moved``: keypoints moved;
    ``median_shift``: their median shift (px); ``matches_used`` / ``matches_dropped``: matches whose
    equation was kept / dropped as inconsistent."""

    keypoints: list[np.ndarray] = field(repr=False)
    moved: int
    median_shift: float
    matches_used: int
    matches_dropped: int


def adjust_keypoints(keypoints: list[np.ndarray], pairs: list[PairMatches], max_residual: float = 1.0, damping: float = 1e-3,
                     reweightings: int = 10) -> Adjustment:
    """One offset per keypoint from the per-pair refined positions (the module's docstring):
    least squares of ``u_b − L·u_a = d`` over every match with ``damping``·|u|² toward 0, first
    ``reweightings`` times with Cauchy weights (scale ``max_residual``/2, so that one wrong refined
    position does not pull its whole track), then unweighted on the matches whose residual is at
    most ``max_residual`` px."""
    from scipy.sparse import csr_matrix, diags, identity  # noqa: PLC0415

    base = np.cumsum([0] + [len(k) for k in keypoints])
    a_list, b_list, L_list, d_list = [], [], [], []
    for p in pairs:
        if len(p.matches) == 0:
            continue
        kp0 = keypoints[p.i][p.matches[:, 0]].astype(np.float64)
        kp1 = keypoints[p.j][p.matches[:, 1]].astype(np.float64)
        a_list.append(base[p.i] + p.matches[:, 0])
        b_list.append(base[p.j] + p.matches[:, 1])
        L_list.append(local_linear_maps(kp0, kp1))  # (K, 2, 2): image i displacement -> image j displacement
        d_list.append(np.asarray(p.points1, np.float64) - kp1)
    total = int(base[-1])
    if not a_list:
        return Adjustment([k.copy() for k in keypoints], 0, 0.0, 0, 0)
    a, b = np.concatenate(a_list), np.concatenate(b_list)
    L, d = np.concatenate(L_list), np.concatenate(d_list)
    finite = np.all(np.isfinite(d), 1) & np.all(np.isfinite(L.reshape(len(L), -1)), 1)
    d, L = np.where(finite[:, None], d, 0.0), np.where(finite[:, None, None], L, 0.0)

    u = np.zeros((total, 2))

    def solve(weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        n = len(a)
        w = np.sqrt(np.repeat(weights, 2))
        # rows 2m + c (c = x, y): +1 at u_b[c], -L[c, 0] at u_a[x], -L[c, 1] at u_a[y]
        rows = np.repeat(np.arange(2 * n), 3)
        cols = np.stack([2 * b, 2 * a, 2 * a + 1, 2 * b + 1, 2 * a, 2 * a + 1], 1).reshape(-1)
        vals = (np.stack([np.ones(n), -L[:, 0, 0], -L[:, 0, 1], np.ones(n), -L[:, 1, 0], -L[:, 1, 1]], 1).reshape(-1, 3) * w[:, None]).reshape(-1)
        A = csr_matrix((vals, (rows, cols)), shape=(2 * n, 2 * total))
        normal = (A.T @ A + damping * identity(2 * total)).tocsr()
        x = conjugate_gradient(normal, A.T @ (d.reshape(-1) * w), u.reshape(-1), diags(1.0 / normal.diagonal()))
        u[:] = x.reshape(total, 2)
        return u.copy(), np.linalg.norm(u[b] - np.einsum("kij,kj->ki", L, u[a]) - d, axis=1)

    weights = finite.astype(np.float64)
    for _ in range(reweightings):
        _, residual = solve(weights)
        weights = finite / (1.0 + (residual / (0.5 * max_residual)) ** 2)
    keep = finite & (residual <= max_residual) if reweightings else finite
    u, _ = solve(keep.astype(np.float64))
    used = np.zeros(total, bool)
    used[a[keep]] = used[b[keep]] = True
    u[~used] = 0.0
    shift = np.linalg.norm(u, axis=1)
    moved = used & (shift > 0)
    adjusted = [(k.astype(np.float64) + u[base[i]:base[i + 1]]) for i, k in enumerate(keypoints)]
    return Adjustment(adjusted, int(moved.sum()), float(np.median(shift[moved])) if moved.any() else 0.0,
                      int(keep.sum()), int(len(keep) - keep.sum()))


def conjugate_gradient(matrix, rhs: np.ndarray, x0: np.ndarray, preconditioner, tolerance: float = 1e-6, iterations: int = 2000) -> np.ndarray:
    """``scipy.sparse.linalg.cg`` (its tolerance argument was renamed in SciPy 1.12). A direct
    sparse solve fills in badly once wrong matches join many tracks into one component (600 s for
    56k mutual nearest neighbours); the preconditioned iteration takes well under a second."""
    from scipy.sparse.linalg import cg  # noqa: PLC0415

    try:
        x, _ = cg(matrix, rhs, x0=x0, rtol=tolerance, atol=0.0, maxiter=iterations, M=preconditioner)
    except TypeError:
        x, _ = cg(matrix, rhs, x0=x0, tol=tolerance, atol=0.0, maxiter=iterations, M=preconditioner)
    return x
