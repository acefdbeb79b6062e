"""Seeded photometric changes applied to the second image of a pair."""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np


@dataclass(frozen=True)
class Photometric:
    """Ranges at ``difficulty=1`` (each scales with difficulty).

    brightness: additive offset, uniform in ±``brightness`` grey levels.
    contrast: multiplicative factor ``exp(u)``, ``u`` uniform in ±``log_contrast``.
    blur: Gaussian blur with sigma uniform in [0, ``blur_sigma``] px, applied with probability 0.5.
    noise: Gaussian noise with std uniform in [0, ``noise_std``] grey levels.
    """

    brightness: float = 25.0
    log_contrast: float = 0.25
    blur_sigma: float = 1.5
    noise_std: float = 5.0

    def __call__(self, image: np.ndarray, rng: np.random.Generator, difficulty: float = 1.0) -> np.ndarray:
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
