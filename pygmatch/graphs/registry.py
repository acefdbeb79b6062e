"""Graph names -> transforms, for ``--graph NAME`` flags and for Python (``make_graph("knn", k=16)``)."""
from __future__ import annotations

import argparse
from dataclasses import dataclass

from ..cli import int_pair, positive
from ..errors import PygmatchError
from .complete import CompleteGraph
from .cross import CompleteCross, DescriptorKNNCross
from .descriptor_knn import DescriptorKNNGraph
from .knn import KNNGraph
from .mst import MSTGraph
from .multiscale import MODES, MultiScaleGraph
from .partition import METHODS, PartitionGraph
from .radius import RadiusGraph


@dataclass(frozen=True)
class GraphSpec:
    """Which flags a graph name reads, and how to build it from them."""

    build: callable
    flags: tuple[str, ...]
    example: str
    summary: str


GRAPHS: dict[str, GraphSpec] = {
    "knn": GraphSpec(lambda a: KNNGraph(a.k), ("k",), "--graph knn --k 16", "k nearest keypoints in the image"),
    "radius": GraphSpec(lambda a: RadiusGraph(a.radius, a.max_neighbors), ("radius", "max_neighbors"),
                        "--graph radius --radius 0.05 --max-neighbors 32", "keypoints within a radius (fraction of the longer image side)"),
    "mst": GraphSpec(lambda a: MSTGraph(), (), "--graph mst", "Euclidean minimum spanning tree, undirected"),
    "partition": GraphSpec(lambda a: PartitionGraph(a.cells, a.partition, a.clusters), ("cells", "partition", "clusters"),
                           "--graph partition --cells 4x4  (or --partition kmeans --clusters 16)", "disjoint groups, complete inside each"),
    "complete": GraphSpec(lambda a: CompleteGraph(), (), "--graph complete", "every keypoint to every keypoint (SuperGlue; dense path)"),
    "multiscale": GraphSpec(lambda a: MultiScaleGraph(a.ks, a.rings), ("ks", "rings"),
                            "--graph multiscale --ks 8,16,32,all --rings disjoint", "several kNN edge sets, nested or disjoint rings"),
    "descriptor-knn": GraphSpec(lambda a: DescriptorKNNGraph(a.k), ("k",), "--graph descriptor-knn --k 16",
                                "k nearest descriptors in the same image"),
}
CROSS: dict[str, callable] = {
    "complete": lambda a: CompleteCross(),
    "descriptor-knn": lambda a: DescriptorKNNCross(a.cross_k),
}
DEFAULTS = dict(graph="knn", k=16, radius=0.05, max_neighbors=32, cells=(4, 4), partition="grid", clusters=16,
                ks=(8, 16, 32, "all"), rings="nested", cross="complete", cross_k=16)


def _ks(text: str) -> tuple:
    try:
        ks = tuple("all" if v.strip() == "all" else int(v) for v in text.split(","))
        MultiScaleGraph(ks)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected increasing positive integers, optionally ending in 'all', e.g. 8,16,32,all; got {text!r}") from None
    return ks


def add_graph_args(parser: argparse.ArgumentParser) -> None:
    """The graph flags shared by ``train.run``, ``eval`` tools and ``pygmatch.viz``."""
    g = parser.add_argument_group("graph construction")
    g.add_argument("--graph", choices=list(GRAPHS), default=DEFAULTS["graph"], help="intra-image edge set")
    g.add_argument("--k", type=positive(int), default=DEFAULTS["k"], help="neighbours for knn / descriptor-knn")
    g.add_argument("--radius", type=positive(float), default=DEFAULTS["radius"], help="radius graph: fraction of the longer image side")
    g.add_argument("--max-neighbors", type=positive(int), default=DEFAULTS["max_neighbors"], help="radius graph: cap per keypoint")
    g.add_argument("--cells", type=int_pair("COLUMNSxROWS", 1, "4x4"), default=DEFAULTS["cells"], help="partition grid COLSxROWS")
    g.add_argument("--partition", choices=METHODS, default=DEFAULTS["partition"], help="partition by grid cells or k-means")
    g.add_argument("--clusters", type=positive(int), default=DEFAULTS["clusters"], help="partition kmeans: number of groups")
    g.add_argument("--ks", type=_ks, default=DEFAULTS["ks"], help="multiscale: comma-separated k values, optionally ending in 'all'")
    g.add_argument("--rings", choices=MODES, default=DEFAULTS["rings"], help="multiscale: nested sets or disjoint rings")
    g.add_argument("--cross", choices=list(CROSS), default=DEFAULTS["cross"], help="inter-image edge set")
    g.add_argument("--cross-k", type=positive(int), default=DEFAULTS["cross_k"], help="descriptor-knn cross edges: neighbours")


def make_graph(name: str = "knn", **params):
    """``make_graph("knn", k=16)`` -> ``KNNGraph(k=16)``; unknown names or parameters raise a
    ``PygmatchError`` that lists the valid choices."""
    if name not in GRAPHS:
        raise PygmatchError(f"unknown graph {name!r}; choose from {', '.join(GRAPHS)}")
    spec = GRAPHS[name]
    unknown = set(params) - set(spec.flags)
    if unknown:
        raise PygmatchError(f"graph {name!r} takes {', '.join(spec.flags) or 'no parameters'}; got {', '.join(sorted(unknown))}")
    args = argparse.Namespace(**{**DEFAULTS, **params})
    try:
        return spec.build(args)
    except ValueError as e:
        raise PygmatchError(f"graph {name!r}: {e}") from None


def make_cross(name: str = "complete", k: int = 16):
    if name not in CROSS:
        raise PygmatchError(f"unknown cross graph {name!r}; choose from {', '.join(CROSS)}")
    try:
        return CROSS[name](argparse.Namespace(cross_k=k))
    except ValueError as e:
        raise PygmatchError(f"cross graph {name!r}: {e}") from None


def graph_from_args(args: argparse.Namespace):
    """(intra-image transform, cross transform) from parsed ``add_graph_args`` flags."""
    params = {f: getattr(args, f) for f in GRAPHS[args.graph].flags}
    return make_graph(args.graph, **params), make_cross(args.cross, args.cross_k)


def graph_config(args: argparse.Namespace) -> dict:
    """The graph flags as a plain dict (saved with checkpoints so a run can be rebuilt)."""
    return {key: list(v) if isinstance(v, tuple) else v for key, v in ((k, getattr(args, k)) for k in DEFAULTS)}


def graph_from_config(config: dict):
    """(intra, cross) transforms from a saved ``graph_config`` dict (as stored in model configs)."""
    args = argparse.Namespace(**{**DEFAULTS, **config})
    if args.graph not in GRAPHS:
        raise PygmatchError(f"unknown graph {args.graph!r} in the model config; choose from {', '.join(GRAPHS)}")
    args.ks = tuple(args.ks)
    args.cells = tuple(args.cells)
    return graph_from_args(args)


def num_edge_sets(config: dict) -> int:
    """How many edge sets (model branches) the configured graph produces."""
    return len(config.get("ks", DEFAULTS["ks"])) if config.get("graph") == "multiscale" else 1
