"""A copy of homography sequences with the photographs degraded, growing along each sequence: how
the matchers and refiners hold up under blur, JPEG compression and exposure change, measured on
the development sequences (the same pairs and homographies, only the pixels changed).

    python -m benchmarks.degraded_sequences ../shared/data/real-pairs --blur 0.75 --out OUT/blurred
    python -m eval.hpatches --data OUT/blurred --methods default,nn-ratio+refiner,nn-ratio,nn --draw 0 --out OUT/blurred-eval

Image 1 of every sequence (the reference) is copied as it is; image k (2, 3, ...) is
- ``--blur S``: blurred by a Gaussian of σ = S·(k − 1) px, at the image's own resolution (as a
  defocused or shaken photograph);
- ``--jpeg Q``: compressed once as JPEG at quality Q (every image k ≥ 2; with ``--blur``, after it);
- ``--exposure F``: its intensities times F^(k − 1), clipped to [0, 255] (over- or under-exposure).
Written in each image's own format (``.ppm`` stays lossless; a JPEG degradation is decoded first),
the homography files copied. Several degradations apply in the order above.
"""
from __future__ import annotations

import argparse
import re
import shutil
import sys
from pathlib import Path

import cv2
import numpy as np

INDEX = re.compile(r"(\d+)\.[A-Za-z]+$")  # img3.ppm (Oxford) or 3.ppm (HPatches)


def degrade(image: np.ndarray, k: int, blur: float = 0.0, jpeg: int | None = None, exposure: float = 1.0) -> np.ndarray:
    """Image ``k`` of a sequence (k = 1 is the reference, returned unchanged) degraded as the
    module says."""
    if k <= 1:
        return image
    out = image
    if blur > 0:
        out = cv2.GaussianBlur(out, (0, 0), blur * (k - 1))
    if jpeg is not None:
        ok, data = cv2.imencode(".jpg", out, [cv2.IMWRITE_JPEG_QUALITY, int(jpeg)])
        if not ok:
            raise ValueError("JPEG encoding failed")
        out = cv2.imdecode(data, cv2.IMREAD_UNCHANGED)
    if exposure != 1.0:
        out = np.clip(out.astype(np.float32) * exposure ** (k - 1), 0, 255).round().astype(np.uint8)
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.degraded_sequences", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("data", type=Path, help="a folder of sequence folders (HPatches or Oxford layout)")
    p.add_argument("--out", type=Path, required=True, help="where the degraded copy goes (a new folder)")
    p.add_argument("--blur", type=float, default=0.0, help="σ per step along the sequence, px")
    p.add_argument("--jpeg", type=int, default=None, help="JPEG quality, 1-100")
    p.add_argument("--exposure", type=float, default=1.0, help="intensity factor per step along the sequence")
    args = p.parse_args(argv)
    if args.blur < 0 or args.exposure <= 0 or (args.jpeg is not None and not 1 <= args.jpeg <= 100):
        p.error("--blur must be >= 0, --exposure > 0 and --jpeg in 1-100")
    if args.blur == 0 and args.jpeg is None and args.exposure == 1.0:
        p.error("nothing to degrade: give --blur, --jpeg or --exposure")
    sequences = sorted(d for d in args.data.iterdir() if d.is_dir()) if args.data.is_dir() else []
    if not sequences:
        print(f"error: {args.data}: no sequence folders", file=sys.stderr)
        return 2
    if args.out.exists() and any(args.out.iterdir()):
        print(f"error: {args.out}: already exists and is not empty; choose a new folder", file=sys.stderr)
        return 2
    for seq in sequences:
        (args.out / seq.name).mkdir(parents=True, exist_ok=True)
        for f in sorted(seq.iterdir()):
            match = INDEX.search(f.name)
            image = cv2.imread(str(f), cv2.IMREAD_UNCHANGED) if match and f.is_file() else None
            if image is None:  # homographies, READMEs: as they are
                if f.is_file():
                    shutil.copy2(f, args.out / seq.name / f.name)
                continue
            if not cv2.imwrite(str(args.out / seq.name / f.name), degrade(image, int(match.group(1)), args.blur, args.jpeg, args.exposure)):
                print(f"error: {args.out / seq.name / f.name}: could not be written", file=sys.stderr)
                return 2
        print(f"{seq.name}: written", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
