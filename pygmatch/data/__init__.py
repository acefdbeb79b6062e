from .images import DEFAULT_SIZE, EMBEDDED_IMAGES, list_images, read_gray, resize_crop
from .pairs import PairSet, make_pair, make_pairs, pair_rng
from .photometric import Photometric
from .sequences import EMBEDDED_SEQUENCES, SequencePairs, load_sequences
from .pair_data import PairData, keypoints_to_data, make_pair_data
from .dataset import BankPairs, HomographyPairs

__all__ = ["DEFAULT_SIZE", "EMBEDDED_IMAGES", "list_images", "read_gray", "resize_crop",
           "PairSet", "make_pair", "make_pairs", "pair_rng", "Photometric",
           "PairData", "keypoints_to_data", "make_pair_data", "HomographyPairs", "BankPairs",
           "EMBEDDED_SEQUENCES", "SequencePairs", "load_sequences"]

