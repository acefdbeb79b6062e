"""Structure from motion with pycolmap, one step per module: a collection's pairs and their matches
(``collection``), one position per keypoint from the refined matches (``adjustment``), the COLMAP
database, verification and mapping (``colmap``). ``pygmatch.evaluation.sfm`` runs them for several
methods, beside COLMAP's own SIFT pipeline, and writes a report.

::

    from pygmatch import Pipeline, sfm

    names = sfm.list_collection("photos/")                          # image names, every one readable
    pairs = sfm.exhaustive_pairs(names)                             # or sfm.read_pairs("pairs.txt", names)
    matched = sfm.match_collection(Pipeline.load("default", max_keypoints=4096, match_threshold=0.1), "photos/", names, pairs)
    keypoints = sfm.adjust_keypoints(matched.keypoints, matched.pairs).keypoints   # one position per keypoint
    sfm.write_database("out/database.db", "photos/", names, keypoints, matched.pairs)
    sfm.verify("out/database.db")                                   # two-view geometries
    rec = sfm.reconstruct("out/database.db", "photos/", "out/sparse")   # the largest pycolmap.Reconstruction
    sfm.reconstruction_metrics(rec, len(names))                     # registered, points, track length, error
"""
from .adjustment import Adjustment, adjust_keypoints, conjugate_gradient
from .collection import MatchedCollection, PairMatches, exhaustive_pairs, list_collection, match_collection, read_pairs
from .colmap import (CAMERA_MODES, COLMAP_MAX_IMAGE_SIZE, INSTALL, MIN_MATCHES, colmap_features, database_metrics, mapping_options,
                     pycolmap_module, reconstruct, reconstruction_metrics, verify, write_database)

__all__ = ["Adjustment", "adjust_keypoints", "conjugate_gradient", "MatchedCollection", "PairMatches", "exhaustive_pairs", "list_collection",
           "match_collection", "read_pairs", "CAMERA_MODES", "COLMAP_MAX_IMAGE_SIZE", "INSTALL", "MIN_MATCHES", "colmap_features",
           "database_metrics", "mapping_options", "pycolmap_module", "reconstruct", "reconstruction_metrics", "verify", "write_database"]
