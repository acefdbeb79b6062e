"""How much real photograph pairs change: the true homography of every pair (1, N) of the
development sequences, decomposed into the quantities the synthetic sampler draws, plus the
photometric change between the two images. Writes ``benchmarks/results/real_ranges.md``.

    python -m benchmarks.real_ranges [--data ../shared/data/real-pairs] [--out benchmarks/results/real_ranges.md]

Geometry (on the images downscaled to a longer side of 640 px, as ``eval.hpatches`` reads them):
the Jacobian J of H at the centre of image 0 is a local affine map; from it

- zoom: sqrt(det J) (image-1 px per image-0 px; < 1: image 1 is zoomed out);
- rotation: the angle of J's rotation part (polar decomposition), degrees;
- tilt: σ1 / σ2 of J (anisotropy; a plane seen at angle θ away from fronto-parallel gives 1 / cos θ),
  and that viewpoint angle arccos(σ2 / σ1);
- perspective: the projective denominator w(x) = h31·x + h32·y + 1 over image 0's corners, reported
  as p = (max w − min w) / (max w + min w), the quantity the sampler's ``perspective`` bounds
  (``1 + p·x`` varies by ±p across the image);
- overlap: the shared area of warped image 0 and image 1 over the smaller of the two.

Photometry (image 1 warped back onto image 0, on the pixels both see): the ratio of mean grey levels
(exposure), of standard deviations (contrast), the gamma that best maps image 0's grey levels to
image 1's quantiles, and the ratio of the variance of the Laplacian (sharpness; < 1: image 1 is
blurrier than image 0 seen through the same warp).
"""
from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import cv2
import numpy as np

from pygmatch.data.geometry import image_corners, warp_image, warp_points
from pygmatch.data.images import downscale, read_gray
from pygmatch.data.sequences import find_sequences, read_sequence, scale_homography


def jacobian(H: np.ndarray, x: float, y: float) -> np.ndarray:
    """2×2 derivative of the homography at (x, y)."""
    w = H[2, 0] * x + H[2, 1] * y + H[2, 2]
    u = H[0, 0] * x + H[0, 1] * y + H[0, 2]
    v = H[1, 0] * x + H[1, 1] * y + H[1, 2]
    return np.array([[H[0, 0] * w - u * H[2, 0], H[0, 1] * w - u * H[2, 1]],
                     [H[1, 0] * w - v * H[2, 0], H[1, 1] * w - v * H[2, 1]]]) / w**2


def geometry(H: np.ndarray, size0: tuple[int, int], size1: tuple[int, int]) -> dict:
    w, h = size0
    J = jacobian(H, w / 2, h / 2)
    U, s, Vt = np.linalg.svd(J)
    R = U @ Vt
    corners = image_corners(size0)
    den = corners @ H[2, :2] + H[2, 2]
    den = den / H[2, 2]
    # overlap of two differently sized images: warp image 0's outline into image 1
    quad = warp_points(corners, H).astype(np.float32)
    rect = image_corners(size1).astype(np.float32)
    inter, _ = cv2.intersectConvexConvex(quad, rect)
    overlap = float(inter / max(min(cv2.contourArea(quad), cv2.contourArea(rect)), 1e-9))
    return {"zoom": math.sqrt(abs(np.linalg.det(J))), "rotation": math.degrees(math.atan2(R[1, 0], R[0, 0])),
            "tilt": s[0] / s[1], "viewpoint": math.degrees(math.acos(min(1.0, s[1] / s[0]))),
            "perspective": float((den.max() - den.min()) / (den.max() + den.min())), "overlap": overlap}


def photometry(im0: np.ndarray, im1: np.ndarray, H: np.ndarray) -> dict:
    """im1 seen in image 0's frame, compared with im0 on the pixels both cover."""
    back = warp_image(im1, np.linalg.inv(H), (im0.shape[1], im0.shape[0]))
    mask = warp_image(np.full(im1.shape, 255, np.uint8), np.linalg.inv(H), (im0.shape[1], im0.shape[0])) == 255
    mask = cv2.erode(mask.astype(np.uint8), np.ones((9, 9), np.uint8)).astype(bool)
    a, b = im0[mask].astype(np.float64), back[mask].astype(np.float64)
    qs = np.linspace(0.05, 0.95, 19)
    qa, qb = np.quantile(a, qs) / 255, np.quantile(b, qs) / 255
    # image 1 ≈ image 0 ** gamma (after the exposure ratio): fit gamma on log quantiles
    ok = (qa > 0.02) & (qb > 0.02) & (qa < 0.98)
    gamma = float(np.polyfit(np.log(qa[ok]), np.log(qb[ok]), 1)[0]) if ok.sum() >= 3 else float("nan")
    # sharpness: image 0 pushed through the same warp and back, so that the resampling blur is equal
    im0_round = warp_image(warp_image(im0, H, (im1.shape[1], im1.shape[0])), np.linalg.inv(H), (im0.shape[1], im0.shape[0]))
    lap0 = cv2.Laplacian(im0_round.astype(np.float32), cv2.CV_32F)[mask]
    lap1 = cv2.Laplacian(back.astype(np.float32), cv2.CV_32F)[mask]
    return {"exposure": b.mean() / max(a.mean(), 1e-9), "contrast": b.std() / max(a.std(), 1e-9), "gamma": gamma,
            "sharpness": float(lap1.var() / max(lap0.var(), 1e-9))}


def measure(data: Path, max_side: int = 640) -> list[dict]:
    rows = []
    for folder in find_sequences(data):
        pairs, _ = read_sequence(folder)
        for pair in pairs:
            if pair.problem:
                continue
            im0, S0 = downscale(read_gray(pair.image0, None), max_side)
            im1, S1 = downscale(read_gray(pair.image1, None), max_side)
            H = scale_homography(pair.H_0to1, S0, S1)
            size0, size1 = (im0.shape[1], im0.shape[0]), (im1.shape[1], im1.shape[0])
            rows.append({"sequence": pair.sequence, "pair": pair.name, **geometry(H, size0, size1), **photometry(im0, im1, H)})
    return rows


COLUMNS = [("zoom", "{:.2f}"), ("rotation", "{:+.0f}"), ("tilt", "{:.2f}"), ("viewpoint", "{:.0f}"), ("perspective", "{:.3f}"),
           ("overlap", "{:.2f}"), ("exposure", "{:.2f}"), ("contrast", "{:.2f}"), ("gamma", "{:.2f}"), ("sharpness", "{:.2f}")]


def table(rows: list[dict]) -> str:
    head = "| pair | zoom | rotation ° | tilt σ1/σ2 | viewpoint ° | perspective p | overlap | exposure | contrast | gamma | sharpness |"
    lines = [head, "|---|" + "---:|" * len(COLUMNS)]
    for r in rows:
        lines.append(f"| {r['pair']} | " + " | ".join(fmt.format(r[k]) for k, fmt in COLUMNS) + " |")
    return "\n".join(lines)


def summary(rows: list[dict]) -> str:
    lines = ["| sequence | zoom min–max | max abs rotation ° | max tilt | max viewpoint ° | max perspective p | exposure min–max | "
             "gamma min–max | sharpness min |", "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    seqs = sorted({r["sequence"] for r in rows})
    for s in seqs + ["all"]:
        rs = [r for r in rows if s in ("all", r["sequence"])]
        g = lambda k: np.array([r[k] for r in rs])  # noqa: E731
        lines.append(f"| {s} | {g('zoom').min():.2f}–{g('zoom').max():.2f} | {np.abs(g('rotation')).max():.0f} | {g('tilt').max():.2f} | "
                     f"{g('viewpoint').max():.0f} | {g('perspective').max():.3f} | {g('exposure').min():.2f}–{g('exposure').max():.2f} | "
                     f"{np.nanmin(g('gamma')):.2f}–{np.nanmax(g('gamma')):.2f} | {g('sharpness').min():.2f} |")
    return "\n".join(lines)


def synthetic(difficulty: float, pairs: int = 60) -> list[dict]:
    """The same measures on synthetic pairs of the embedded images (``make_pair``) at ``difficulty``."""
    from pygmatch.data import EMBEDDED_IMAGES, list_images  # noqa: PLC0415
    from pygmatch.data.pairs import make_pair, pair_rng  # noqa: PLC0415

    files = list_images(EMBEDDED_IMAGES)
    rows = []
    for k in range(pairs):
        image = read_gray(files[k % len(files)])
        im0, im1, H = make_pair(image, pair_rng(11, k), difficulty)
        size = (im0.shape[1], im0.shape[0])
        rows.append({"sequence": f"synthetic d{difficulty:g}", "pair": str(k), **geometry(H, size, size), **photometry(im0, im1, H)})
    return rows


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.real_ranges", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", type=Path, default=Path("../shared/data/real-pairs"), help="folder of sequence folders")
    p.add_argument("--out", type=Path, default=Path("benchmarks/results/real_ranges.md"))
    args = p.parse_args(argv)
    rows = measure(args.data)
    synth = [r for d in (1.0, 2.0, 3.0) for r in synthetic(d)]
    text = (f"# How much the real development pairs change\n\n`python -m benchmarks.real_ranges --data {args.data}` "
            f"({len(rows)} pairs; images downscaled to a longer side of 640 px; definitions in the script's docstring; "
            f"the viewpoint angle of a σ1/σ2 near 1 is noise: arccos(1/1.01) = 8°).\n\n"
            f"## Per sequence\n\n{summary(rows)}\n\n"
            f"## The synthetic pairs, measured the same way\n\n60 pairs of the embedded images per difficulty (`make_pair`, seed 11). "
            f"Difficulty 3 is the preset of real pairs (`pygmatch.data.geometry.REAL_RANGES`, `pygmatch.data.photometric.RealPhotometric`; "
            f"docs/training-data.md).\n\n{summary(synth)}\n\n## Per pair\n\n{table(rows)}\n")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
