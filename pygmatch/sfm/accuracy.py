"""How accurate a reconstruction's cameras are, against true cameras (a COLMAP model of the same
photographs): the estimated camera centres are aligned to the true ones by the similarity
(scale, rotation, translation) that fits them best in the least-squares sense (Umeyama 1991),
then each camera's centre error (in the true model's units) is measured. The rotation errors use
the world rotation that best fits the cameras' orientations instead: the centres of a few cameras,
nearly on a line, leave the rotation about that line to noise. Reprojection error alone is no
quality claim: a reconstruction that keeps fewer, cleaner points has a lower one with cameras no
better; these errors are what a user's model gets right.

Cameras are given as ``{name: (R, C)}``: the world-to-camera rotation (3, 3) and the camera centre
(3,) in world coordinates (``x_cam = R (X − C)``)."""
from __future__ import annotations

import numpy as np

from ..data.epipolar import rotation_angle
from ..data.scenes import SceneImage
from ..errors import PygmatchError

Cameras = dict[str, tuple[np.ndarray, np.ndarray]]


def scene_cameras(images: dict[str, SceneImage]) -> Cameras:
    """The cameras of a scene read by ``pygmatch.data.scenes`` (the true ones)."""
    return {name: (im.R, -im.R.T @ im.t) for name, im in images.items()}


def reconstruction_cameras(rec) -> Cameras:
    """The registered cameras of a ``pycolmap.Reconstruction``."""
    out = {}
    for image in rec.images.values():
        if image.has_pose:
            pose = image.cam_from_world()
            R = np.asarray(pose.rotation.matrix(), np.float64)
            out[image.name] = (R, -R.T @ np.asarray(pose.translation, np.float64))
    return out


def fit_similarity(src: np.ndarray, dst: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
    """``(s, R, t)`` minimising Σ‖dst − (s R src + t)‖² over rotations R (no reflection) for
    points src, dst (N, 3), N ≥ 3 not all on a line (Umeyama's closed form)."""
    mu_s, mu_d = src.mean(0), dst.mean(0)
    a, b = src - mu_s, dst - mu_d
    var = (a ** 2).sum() / len(src)
    if var <= 0:
        raise PygmatchError("camera alignment: the camera centres all coincide")
    U, S, Vt = np.linalg.svd(b.T @ a / len(src))
    D = np.diag([1.0, 1.0, np.sign(np.linalg.det(U @ Vt)) or 1.0])
    R = U @ D @ Vt
    s = float(np.trace(np.diag(S) @ D) / var)
    return s, R, mu_d - s * R @ mu_s


def fit_rotation(estimated: list[np.ndarray], true: list[np.ndarray]) -> np.ndarray:
    """The world rotation R minimising Σ‖R_est,i R − R_true,i‖² (chordal L2 mean): with it, camera
    i's rotation error is the angle of R_est,i R R_true,iᵀ."""
    U, _, Vt = np.linalg.svd(sum(Re.T @ Rt for Re, Rt in zip(estimated, true)))
    D = np.diag([1.0, 1.0, np.sign(np.linalg.det(U @ Vt)) or 1.0])
    return U @ D @ Vt


def camera_errors(estimated: Cameras, truth: Cameras) -> dict:
    """The estimated cameras (those with a true one; at least 3) aligned to the true ones, their
    centres by ``fit_similarity``, their orientations by ``fit_rotation``; per camera the centre
    error (true units) and the rotation error (degrees): ``{"aligned": N, "centre_rmse", "centre_median", "centre_max",
    "rotation_median_deg", "rotation_max_deg", "scene_size": median distance of the true centres
    to their centroid (to read the centre errors against), "per_image": {name: (centre, rotation)}}``."""
    names = sorted(set(estimated) & set(truth))
    if len(names) < 3:
        raise PygmatchError(f"camera alignment: {len(names)} reconstructed images have a true camera; at least 3 are needed")
    C_true = np.array([truth[n][1] for n in names])
    s, R_s, t_s = fit_similarity(C_true, np.array([estimated[n][1] for n in names]))  # true world -> estimated world
    R_w = fit_rotation([estimated[n][0] for n in names], [truth[n][0] for n in names])  # the same rotation, from the orientations
    per_image = {}
    for n in names:
        R_est, C_est = estimated[n]
        centre = np.linalg.norm(R_s.T @ (C_est - t_s) / s - truth[n][1])
        # true world -> estimated world -> camera, against true world -> camera
        per_image[n] = (float(centre), rotation_angle(R_est @ R_w @ truth[n][0].T))
    centres, rotations = np.array([v[0] for v in per_image.values()]), np.array([v[1] for v in per_image.values()])
    return {"aligned": len(names), "centre_rmse": float(np.sqrt(np.mean(centres ** 2))), "centre_median": float(np.median(centres)),
            "centre_max": float(centres.max()), "rotation_median_deg": float(np.median(rotations)),
            "rotation_max_deg": float(rotations.max()),
            "scene_size": float(np.median(np.linalg.norm(C_true - C_true.mean(0), axis=1))), "per_image": per_image}


__all__ = ["Cameras", "camera_errors", "fit_rotation", "fit_similarity", "reconstruction_cameras", "scene_cameras"]
