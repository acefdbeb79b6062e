from pathlib import Path

import numpy as np
import pytest

from pygmatch.data import EMBEDDED_IMAGES, list_images, read_gray

ROOT = Path(__file__).resolve().parents[1]
COCO = ROOT.parent / "shared" / "data" / "coco"


@pytest.fixture(scope="session")
def embedded_dir() -> Path:
    return EMBEDDED_IMAGES


@pytest.fixture(scope="session")
def coco_val() -> Path:
    """The shared COCO val images when present (CI has them), else the embedded set."""
    return COCO / "val" if (COCO / "val").is_dir() else EMBEDDED_IMAGES


@pytest.fixture(scope="session")
def image() -> np.ndarray:
    return read_gray(list_images(EMBEDDED_IMAGES)[0])
