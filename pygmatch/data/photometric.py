"""Seeded photometric changes applied to the second image of a pair."""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

# The difficulties whose photometric changes are those of real photographs (``RealPhotometric``):
# 3 (real pairs) and 4 (extreme viewpoints; ``geometry.DIFFICULTY_PRESETS``).
REAL_PHOTOMETRY = (3.0, 4.0)


@dataclass(frozen=True)
class RealPhotometric:
    """The changes of real photograph pairs (``difficulty=3``; measured in
    ``benchmarks/results/real_ranges.md``, reasons in ``docs/training-data.md``), applied in this order:

    gamma: grey levels ``255·(g/255)^γ``, ``γ = exp(u)``, ``u`` uniform in ±``log_gamma`` (real: 0.53–1.51).
    exposure: gain ``exp(u)``, ``u`` uniform in [``log_exposure_min``, ``log_exposure_max``] (real: 0.29–1.26).
    brightness, log_contrast: as ``Photometric`` at difficulty 1 (a residual offset and contrast).
    blur: with probability ``p_defocus`` a disk (defocus) of radius uniform in [0.5, ``defocus_radius``] px;
        otherwise with probability ``p_motion`` a line (motion) of length uniform in [2, ``motion_length``]
        px at any angle; otherwise with probability 0.5 a Gaussian of sigma uniform in [0, ``blur_sigma``]
        (real: the second image's sharpness down to 0.19 of the first's).
    noise: Gaussian, std uniform in [0, ``noise_std``] grey levels.
    jpeg: with probability ``p_jpeg`` re-encoded at a quality uniform in [``jpeg_quality_min``, 95].
    """

    log_gamma: float = 0.45
    log_exposure_min: float = -1.3
    log_exposure_max: float = 0.35
    brightness: float = 25.0
    log_contrast: float = 0.25
    p_defocus: float = 0.3
    defocus_radius: float = 2.5
    p_motion: float = 0.2
    motion_length: float = 7.0
    blur_sigma: float = 1.5
    noise_std: float = 6.0
    p_jpeg: float = 0.7
    jpeg_quality_min: int = 30

    def __call__(self, image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        img = image.astype(np.float32) / 255.0
        img = np.power(np.clip(img, 0, 1), np.exp(rng.uniform(-1, 1) * self.log_gamma)) * 255.0
        img = img * np.exp(rng.uniform(self.log_exposure_min, self.log_exposure_max))
        mean = img.mean()
        img = (img - mean) * np.exp(rng.uniform(-1, 1) * self.log_contrast) + mean + rng.uniform(-1, 1) * self.brightness
        img = np.clip(img, 0, 255)  # a sensor saturates before it blurs
        kind = rng.random()
        if kind < self.p_defocus:
            img = cv2.filter2D(img, -1, disk_kernel(rng.uniform(0.5, self.defocus_radius)))
        elif kind < self.p_defocus + self.p_motion:
            img = cv2.filter2D(img, -1, line_kernel(rng.uniform(2.0, self.motion_length), rng.uniform(0, np.pi)))
        elif rng.random() < 0.5:
            sigma = rng.uniform(0, self.blur_sigma)
            if sigma > 0.1:
                img = cv2.GaussianBlur(img, (0, 0), sigma)
        img = img + rng.standard_normal(img.shape, dtype=np.float32) * rng.uniform(0, self.noise_std)
        out = np.clip(np.rint(img), 0, 255).astype(np.uint8)
        if rng.random() < self.p_jpeg:
            quality = int(rng.integers(self.jpeg_quality_min, 96))
            ok, buf = cv2.imencode(".jpg", out, [cv2.IMWRITE_JPEG_QUALITY, quality])
            if ok:
                out = cv2.imdecode(buf, cv2.IMREAD_GRAYSCALE)
        return out


def disk_kernel(radius: float) -> np.ndarray:
    """A normalised disk of ``radius`` px (defocus), anti-aliased at its border by supersampling."""
    r = int(np.ceil(radius))
    fine = 4
    y, x = np.mgrid[-r : r + 1 : 1 / fine, -r : r + 1 : 1 / fine] + (0.5 / fine - 0.5)
    inside = (x**2 + y**2 <= radius**2).astype(np.float32)
    k = inside.reshape(2 * r + 1, fine, 2 * r + 1, fine).mean((1, 3))
    return k / k.sum()


def line_kernel(length: float, angle: float) -> np.ndarray:
    """A normalised line of ``length`` px at ``angle`` radians (linear motion blur)."""
    r = int(np.ceil(length / 2))
    k = np.zeros((2 * r + 1, 2 * r + 1), np.float32)
    for t in np.linspace(-length / 2, length / 2, int(4 * length) + 1):
        x, y = r + t * np.cos(angle), r + t * np.sin(angle)
        x0, y0 = int(np.floor(x)), int(np.floor(y))
        fx, fy = x - x0, y - y0
        for dx, dy, w in ((0, 0, (1 - fx) * (1 - fy)), (1, 0, fx * (1 - fy)), (0, 1, (1 - fx) * fy), (1, 1, fx * fy)):
            if 0 <= y0 + dy <= 2 * r and 0 <= x0 + dx <= 2 * r:
                k[y0 + dy, x0 + dx] += w
    return k / k.sum()


@dataclass(frozen=True)
class Photometric:
    """Ranges at ``difficulty=1`` (each scales with difficulty).

    brightness: additive offset, uniform in ±``brightness`` grey levels.
    contrast: multiplicative factor ``exp(u)``, ``u`` uniform in ±``log_contrast``.
    blur: Gaussian blur with sigma uniform in [0, ``blur_sigma``] px, applied with probability 0.5.
    noise: Gaussian noise with std uniform in [0, ``noise_std``] grey levels.

    ``difficulty=3`` (and 4, extreme viewpoints) is the preset of real photograph pairs, ``real``
    (``RealPhotometric``: gamma, exposure, defocus and motion blur, JPEG), not three or four times these ranges.
    """

    brightness: float = 25.0
    log_contrast: float = 0.25
    blur_sigma: float = 1.5
    noise_std: float = 5.0
    real: RealPhotometric = RealPhotometric()

    def __call__(self, image: np.ndarray, rng: np.random.Generator, difficulty: float = 1.0) -> np.ndarray:
        if float(difficulty) in REAL_PHOTOMETRY:
            return self.real(image, rng)
        img = image.astype(np.float32)
        mean = img.mean()
        contrast = np.exp(rng.uniform(-1, 1) * self.log_contrast * difficulty)
        img = (img - mean) * contrast + mean + rng.uniform(-1, 1) * self.brightness * difficulty
        if rng.random() < 0.5:
            sigma = rng.uniform(0, self.blur_sigma * difficulty)
            if sigma > 0.1:
                img = cv2.GaussianBlur(img, (0, 0), sigma)
        std = rng.uniform(0, self.noise_std * difficulty)
        img = img + rng.standard_normal(img.shape, dtype=np.float32) * std
        return np.clip(np.rint(img), 0, 255).astype(np.uint8)
