from .images import DEFAULT_SIZE, EMBEDDED_IMAGES, list_images, read_gray, resize_crop
from .pairs import PairSet, make_pair, make_pairs, pair_rng
from .photometric import Photometric

__all__ = ["DEFAULT_SIZE", "EMBEDDED_IMAGES", "list_images", "read_gray", "resize_crop",
           "PairSet", "make_pair", "make_pairs", "pair_rng", "Photometric"]
