"""The data stage: images, synthetic homography pairs, real sequences, the feature bank. The names
below are imported on first use, so that a command's ``--help`` answers without loading torch."""
from ..lazy import lazy_attributes

_WHERE = {
    **dict.fromkeys(["DEFAULT_SIZE", "EMBEDDED_IMAGES", "list_images", "read_gray", "resize_crop"], ".images"),
    **dict.fromkeys(["PairSet", "make_pair", "make_pairs", "pair_rng"], ".pairs"),
    "Photometric": ".photometric",
    **dict.fromkeys(["EMBEDDED_SEQUENCES", "SequencePairs", "load_sequences"], ".sequences"),
    **dict.fromkeys(["FeatureBank", "build_bank"], ".bank"),
}
__all__ = list(_WHERE)

__getattr__, __dir__ = lazy_attributes(__name__, _WHERE)
