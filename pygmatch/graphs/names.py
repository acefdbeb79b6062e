"""The graph names, their options and the flags' defaults, without torch: what the command-line
flags offer before anything is built (``registry.py`` maps the names onto the transforms)."""
from __future__ import annotations

GRAPH_NAMES = ("knn", "radius", "mst", "partition", "complete", "multiscale")
MODES = ("nested", "disjoint")  # multiscale: nested sets or disjoint rings
METHODS = ("grid", "kmeans")  # partition: by grid cells or k-means
# the flags' defaults (the graph network's own graph, knn with k = 8, is in its config)
DEFAULTS = dict(graph="knn", k=8, radius=0.05, max_neighbors=32, cells=(4, 4), partition="grid", clusters=16,
                ks=(8, 16, 32, "all"), rings="nested")


def parse_ks(ks) -> tuple:
    """Multi-scale neighbourhood sizes: increasing positive integers, optionally ending in ``"all"``
    (the complete graph); ``ValueError`` otherwise."""
    try:
        ks = tuple("all" if str(k).strip() == "all" else int(k) for k in ks)
    except ValueError:
        ks = None
    finite = [k for k in ks if k != "all"] if ks else []
    if not ks or any(k < 1 for k in finite) or finite != sorted(set(finite)) or ("all" in ks and ks[-1] != "all") or ks.count("all") > 1:
        raise ValueError(f"ks must be increasing positive integers, optionally ending in 'all'; got {ks}")
    return ks
