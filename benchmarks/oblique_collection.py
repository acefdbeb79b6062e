"""A small collection of extreme viewpoints with nothing else to match: one photograph as a flat
poster seen by one pinhole camera (1024×768, focal length 900 px) from six directions, tilted 0,
30, 50, 65, 72 and 78 degrees from its normal (affine tilts 1 to 4.8) at different azimuths, on a
grey background; to compare ``pygmatch sfm`` with and without ``--views auto``.

    python -m benchmarks.oblique_collection --image ../shared/data/coco/val/000000086408.jpg --out DIR/images
    pygmatch sfm DIR/images --out DIR/plain --pairs exhaustive --camera-mode single
    pygmatch sfm DIR/images --out DIR/auto --pairs exhaustive --camera-mode single --views auto
"""
from __future__ import annotations

import argparse
import math
from pathlib import Path

import cv2
import numpy as np

VIEWS = ((0, 0), (30, 20), (50, 200), (65, 100), (72, 300), (78, 40))  # (tilt from the normal, azimuth), degrees
SIZE, FOCAL, DISTANCE = (1024, 768), 900.0, 900.0  # image, focal length (px), distance to the poster's centre (poster px)


def view_homography(poster_size: tuple[int, int], tilt_deg: float, azimuth_deg: float) -> np.ndarray:
    """Poster pixels → image pixels of a camera at ``DISTANCE`` from the poster's centre, looking at it."""
    (pw, ph), (w, h) = poster_size, SIZE
    K = np.array([[FOCAL, 0, w / 2], [0, FOCAL, h / 2], [0, 0, 1]])
    centre = np.array([[1, 0, -pw / 2], [0, 1, -ph / 2], [0, 0, 1]])
    th, az = math.radians(tilt_deg), math.radians(azimuth_deg)
    camera = DISTANCE * np.array([math.sin(th) * math.cos(az), math.sin(th) * math.sin(az), -math.cos(th)])
    z = -camera / np.linalg.norm(camera)
    up = np.array([0.0, 1.0, 0.0]) if abs(z[1]) < 0.9 else np.array([1.0, 0.0, 0.0])
    x = np.cross(up, z)
    x /= np.linalg.norm(x)
    R = np.stack([x, np.cross(z, x), z])  # world → camera
    return K @ np.column_stack([R[:, 0], R[:, 1], -R @ camera]) @ centre


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.oblique_collection", description=__doc__.split("\n\n")[0])
    ap.add_argument("--image", required=True)
    ap.add_argument("--out", required=True)
    args = ap.parse_args(argv)
    poster = cv2.imread(args.image)
    if poster is None:
        raise SystemExit(f"error: {args.image}: not a readable image")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for k, (tilt, azimuth) in enumerate(VIEWS):
        H = view_homography((poster.shape[1], poster.shape[0]), tilt, azimuth)
        background = np.full((SIZE[1], SIZE[0], 3), rng.integers(90, 140), np.uint8)
        image = cv2.warpPerspective(poster, H, SIZE, dst=background, borderMode=cv2.BORDER_TRANSPARENT, flags=cv2.INTER_AREA)
        cv2.imwrite(str(out / f"view{k}_tilt{tilt}.jpg"), image, [cv2.IMWRITE_JPEG_QUALITY, 95])
    print(f"{len(VIEWS)} views in {out}")


if __name__ == "__main__":
    main()
