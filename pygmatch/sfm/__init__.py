"""Structure from motion with pycolmap, one step per module: which pairs to match (``pairs``, with
``retrieval``'s global descriptor), the store of features and matches (``store``: hloc's
``features.h5`` / ``matches.h5``, resumable), where the work runs (``distributed``: in-process or
Dask), the collection's features and matches (``collection``), one position per keypoint from the
refined matches (``adjustment``), the COLMAP database, verification and mapping (``colmap``), and
all of them in order (``run``: ``pygmatch sfm``). ``pygmatch.evaluation.sfm`` runs them for
several methods, beside COLMAP's own SIFT pipeline, and writes a report.

::

    from pygmatch import Pipeline, sfm

    names = sfm.list_collection("photos/")                          # image names, every one readable
    pairs = sfm.exhaustive_pairs(names)                             # or sfm.read_pairs("pairs.txt", names)
    pipe = Pipeline.load("default", max_keypoints=4096, match_threshold=0.1)
    store = sfm.Store("out/", sfm.pipeline_config(pipe))             # features.h5, matches.h5: what is there is skipped
    matched = sfm.match_collection(pipe, "photos/", names, pairs, store)   # executor=sfm.DaskExecutor(workers=2): on Dask
    keypoints = sfm.adjust_keypoints(matched.keypoints, matched.pairs).keypoints   # one position per keypoint
    sfm.write_database("out/database.db", "photos/", names, keypoints, matched.pairs)
    sfm.verify("out/database.db")                                   # two-view geometries
    rec = sfm.reconstruct("out/database.db", "photos/", "out/sparse")   # the largest pycolmap.Reconstruction
    sfm.reconstruction_metrics(rec, len(names))                     # registered, points, track length, error

    sfm.run_collection("photos/", "out/", pipe, "retrieval")           # all of it: what ``pygmatch sfm`` runs

The names are imported on first use (``pygmatch sfm --help`` answers without loading torch).
"""
from ..lazy import lazy_attributes

_WHERE = {
    **dict.fromkeys(["Adjustment", "adjust_keypoints", "conjugate_gradient"], ".adjustment"),
    **dict.fromkeys(["MatchedCollection", "PairMatches", "extract_collection", "list_collection", "match_collection"], ".collection"),
    **dict.fromkeys(["CAMERA_MODES", "COLMAP_MAX_IMAGE_SIZE", "INSTALL", "MIN_MATCHES", "colmap_features", "database_metrics",
                     "mapping_options", "pycolmap_module", "reconstruct", "reconstruct_models", "reconstruction_metrics",
                     "verified_pairs", "verify", "write_database"], ".colmap"),
    **dict.fromkeys(["DaskExecutor", "InProcess", "executor"], ".distributed"),
    **dict.fromkeys(["DEFAULT_TOP", "PAIRINGS", "covisibility_pairs", "exhaustive_pairs", "read_pairs", "sequential_pairs", "top_pairs",
                     "write_pairs"], ".pairs"),
    **dict.fromkeys(["collection_pairs", "run_collection"], ".run"),
    **dict.fromkeys(["Store", "pipeline_config", "same_contents"], ".store"),
}
__all__ = list(_WHERE)

__getattr__, __dir__ = lazy_attributes(__name__, _WHERE)
