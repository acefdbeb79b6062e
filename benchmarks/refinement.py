"""Headroom of sub-pixel refinement of matched positions, measured before building it into the
matchers: each match's image-1 position is moved to where image 0's patch around it (warped by
the affine motion fitted to its neighbouring matches) correlates best in image 1 (normalised
cross-correlation, ±3 px search, parabola through the peak; matches whose best correlation is
below 0.8 are left where they are). Held-out pairs of ``--data`` (never coco/val), RANSAC 3 px.
Classical, not learned: the same step is applied to every matcher, so the table says both how
much refinement gives and whether the verifier's lead survives it.

    python benchmarks/refinement.py --images 100
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2
import numpy as np
import torch
from tqdm import tqdm

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pygmatch.data.features import extract  # noqa: E402
from pygmatch.data.geometry import corner_error, warp_points  # noqa: E402
from pygmatch.data.pairs import make_pairs  # noqa: E402
from pygmatch.evaluation.baselines import match_nn, match_nn_ratio  # noqa: E402
from pygmatch.evaluation.metrics import error_auc, estimate_homography  # noqa: E402
from pygmatch.verifier import CandidateVerifier, fit_local_motion  # noqa: E402


def local_affines(p0: np.ndarray, p1: np.ndarray, k: int = 12) -> np.ndarray:
    """(n, 2, 2): the linear part of the affine motion around each match, fitted to it and its k
    nearest matches (the verifier's ``fit_local_motion``)."""
    A, _, _ = fit_local_motion(p0, p1, np.arange(len(p0)), k, exclude_self=False)
    return A[:, :2, :].transpose(0, 2, 1) / 50.0


def refine(im0, im1, p0, p1, half: int = 7, search: int = 3, min_ncc: float = 0.8) -> np.ndarray:
    """Refined image-1 positions of the matches ``p0 -> p1`` (float64 pixels)."""
    out = p1.copy()
    if len(p0) < 4:
        return out
    size, s = 2 * half + 1, half + search
    for i, L in enumerate(local_affines(p0, p1)):
        if abs(np.linalg.det(L)) < 1e-6:
            continue
        Li = np.linalg.inv(L)
        # template pixel u (image-1 frame, centred on the match) samples image 0 at x0 + Li (u - c)
        M = np.concatenate([Li, (p0[i] - Li @ np.array([half, half], float))[:, None]], 1)
        template = cv2.warpAffine(im0, M, (size, size), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP).astype(np.float32)
        if template.std() < 2:  # flat: nothing to correlate
            continue
        crop = np.array([[1, 0, p1[i, 0] - s], [0, 1, p1[i, 1] - s]], float)
        window = cv2.warpAffine(im1, crop, (2 * s + 1, 2 * s + 1), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP).astype(np.float32)
        r = cv2.matchTemplate(window, template, cv2.TM_CCOEFF_NORMED)
        y, x = np.unravel_index(r.argmax(), r.shape)
        if r[y, x] < min_ncc or not (0 < x < r.shape[1] - 1 and 0 < y < r.shape[0] - 1):
            continue
        dx = 0.5 * (r[y, x - 1] - r[y, x + 1]) / (r[y, x - 1] - 2 * r[y, x] + r[y, x + 1])
        dy = 0.5 * (r[y - 1, x] - r[y + 1, x]) / (r[y - 1, x] - 2 * r[y, x] + r[y + 1, x])
        out[i] = p1[i] + np.array([x + dx - search, y + dy - search])
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "extra" / "coco-mini"))
    p.add_argument("--images", type=int, default=100, help="pairs per difficulty (one per image)")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "refinement.md")
    args = p.parse_args()
    torch.set_num_threads(1)
    verifier = CandidateVerifier.load("default")
    methods = {"nn": match_nn, "nn-ratio": match_nn_ratio, "verifier": verifier.match}
    errors, precise = {}, {}
    for d in (1.0, 2.0):
        pairs = make_pairs(args.data, seed=args.seed, difficulty=d, max_images=args.images)
        for k in tqdm(range(len(pairs)), desc=f"difficulty {d:g}", unit="pair"):
            im0, im1, H = pairs.image0[k], pairs.image1[k], pairs.H_0to1[k]
            kp0, kp1 = extract(im0), extract(im1)
            for name, fn in methods.items():
                m, _ = fn(kp0, kp1)
                p0, p1 = kp0.xy[m[:, 0]].astype(np.float64), kp1.xy[m[:, 1]].astype(np.float64)
                for tag, q1 in ((name, p1), (f"{name} + refinement", refine(im0, im1, p0, p1))):
                    H_est = estimate_homography(p0, q1) if len(p0) >= 4 else None
                    errors.setdefault((tag, d), []).append(corner_error(H_est, H, pairs.size))
                    err = np.linalg.norm(warp_points(p0, H) - q1, axis=1)
                    precise.setdefault((tag, d), []).append(np.mean(err < 1) if len(err) else np.nan)
    lines = [f"Held-out: {args.images} images of {Path(args.data).name} per difficulty (seed {args.seed}), SIFT 1024, "
             "RANSAC 3 px. P@1: share of the matches within 1 px of the truth.", "",
             "| method | d1 AUC@1 | d1 AUC@3 | d1 P@1 | d2 AUC@1 | d2 AUC@3 | d2 P@1 |", "|---|---:|---:|---:|---:|---:|---:|"]
    for tag in dict.fromkeys(t for t, _ in errors):
        cells = []
        for d in (1.0, 2.0):
            a1, a3 = error_auc(np.array(errors[(tag, d)]), (1, 3))
            cells += [f"{100 * a1:.1f}", f"{100 * a3:.1f}", f"{100 * np.nanmean(precise[(tag, d)]):.1f}"]
        lines.append(f"| {tag} | " + " | ".join(cells) + " |")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
